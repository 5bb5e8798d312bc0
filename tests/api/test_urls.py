"""fileData.fileUri URLs, fetched by the server from a real local HTTP server (issue 11, item 5)."""

import http.server
import socket
import stat
import threading
from pathlib import Path

import pytest

from tests.api.helpers import assert_error
from tests.conftest import H, png_bytes
from tests.fixtures.media import write_audio, write_video

URL = "/v1beta/models/gemini-2.5-flash:generateContent"


class Site:
    """A real HTTP server on loopback: path → (status, headers, body); counts hits and records Host headers."""

    def __init__(self):
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.hits: dict[str, int] = {}
        self.hosts: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                site.hits[self.path] = site.hits.get(self.path, 0) + 1
                site.hosts.append(self.headers.get("Host", ""))
                status, headers, body = site.routes.get(self.path, (404, {}, b"not here"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site():
    s = Site()
    yield s
    s.close()


@pytest.fixture
def open_client(make_client):
    return make_client(allow_private_urls=True)


def _ask(client, *uris, mime=""):
    parts = [{"fileData": {"fileUri": u, **({"mimeType": mime} if mime else {})}} for u in uris]
    return client.post(URL, headers=H, json={"contents": [{"parts": parts + [{"text": "What is this?"}]}]})


def _text(r) -> str:
    assert r.status_code == 200, r.text
    return r.json()["candidates"][0]["content"]["parts"][0]["text"]


def test_https_or_http_url_is_fetched_sniffed_and_cached_for_the_request(open_client, site):
    site.routes["/photo"] = (200, {"Content-Type": "application/octet-stream"}, png_bytes(40, 30))
    uri = site.base + "/photo"
    text = _text(_ask(open_client, uri, uri))  # named twice: fetched once
    assert text.count(f"(original 40x30) from {uri}") == 2
    assert site.hits["/photo"] == 1
    count = open_client.post(URL.replace("generateContent", "countTokens"), headers=H,
                             json={"contents": [{"parts": [{"fileData": {"fileUri": uri}}]}]})
    assert count.json()["promptTokensDetails"] == [{"modality": "IMAGE", "tokenCount": 258}]  # no TEXT 0


def test_audio_and_video_urls(open_client, site, tmp_path):
    site.routes["/tone.wav"] = (200, {"Content-Type": "audio/wav"}, write_audio(tmp_path / "t.wav").read_bytes())
    site.routes["/clip"] = (200, {}, write_video(tmp_path / "c.mp4", seconds=2.0).read_bytes())
    text = _text(_ask(open_client, site.base + "/tone.wav", site.base + "/clip", mime=""))
    assert "audio 2.0 s from " + site.base + "/tone.wav" in text
    assert "[00:01] video frame" in text


def test_redirects_are_followed_and_capped(open_client, site):
    site.routes["/a"] = (302, {"Location": "/b"}, b"")
    site.routes["/b"] = (301, {"Location": site.base + "/photo"}, b"")
    site.routes["/photo"] = (200, {"Content-Type": "image/png"}, png_bytes())
    assert "from " + site.base + "/a" in _text(_ask(open_client, site.base + "/a"))
    site.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    assert_error(_ask(open_client, site.base + "/loop"), 400, "INVALID_ARGUMENT", "more than 5 redirects")
    assert site.hits["/loop"] == 6


@pytest.mark.parametrize("route,expected", [
    ((404, {}, b"gone"), "HTTP 404"),
    ((200, {"Content-Type": "text/html"}, b"<html>hello</html>"), "not a supported image, video or audio"),
    ((200, {"Content-Type": "image/png"}, b"GIF89a not a png"), "does not match the content"),
    ((200, {}, b""), "empty"),
])
def test_bad_urls_are_400_never_403(open_client, site, route, expected):
    site.routes["/x"] = route
    assert_error(_ask(open_client, site.base + "/x"), 400, "INVALID_ARGUMENT", expected)


def test_size_limit_applies_while_streaming(make_client, site):
    client = make_client(allow_private_urls=True, max_file_bytes=2000)
    site.routes["/big"] = (200, {"Content-Type": "image/png"}, png_bytes(300, 300, color=None) + b"\0" * 5000)
    assert_error(_ask(client, site.base + "/big"), 400, "INVALID_ARGUMENT", "2000-byte file limit")


def test_private_addresses_are_refused_by_default(client, site, monkeypatch):
    site.routes["/photo"] = (200, {"Content-Type": "image/png"}, png_bytes())
    err = assert_error(_ask(client, site.base + "/photo"), 400, "INVALID_ARGUMENT", "allow_private_urls")
    assert "127.0.0.1" in err["message"]
    assert_error(_ask(client, f"http://localhost:{site.port}/photo"), 400, "INVALID_ARGUMENT", "allow_private_urls")
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("10.1.2.3" if host == "intranet.example"
                                                                          else host, *a, **k))
    assert_error(_ask(client, "http://intranet.example/x.png"), 400, "INVALID_ARGUMENT", "10.1.2.3")
    assert not site.hits  # nothing was fetched


def test_resolved_address_is_pinned_and_the_name_kept(open_client, site, monkeypatch):
    """The host is resolved once, checked, and connected to by address (Host keeps the name): a second,
    different DNS answer (rebinding) is never consulted."""
    site.routes["/photo"] = (200, {"Content-Type": "image/png"}, png_bytes())
    real, answers = socket.getaddrinfo, []

    def rebinding(host, *a, **k):
        if host == "cdn.example":
            answers.append(host)
            return real("127.0.0.1" if len(answers) == 1 else "192.0.2.1", *a, **k)
        return real(host, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    _text(_ask(open_client, f"http://cdn.example:{site.port}/photo"))
    assert answers == ["cdn.example"] and site.hosts == [f"cdn.example:{site.port}"]


def test_gs_and_youtube_without_a_downloader(client):
    assert_error(_ask(client, "gs://bucket/video.mp4"), 400, "INVALID_ARGUMENT", "Cloud Storage")
    err = assert_error(_ask(client, "https://www.youtube.com/watch?v=9hE5-98ZeCg"), 400, "INVALID_ARGUMENT",
                       "youtube_downloader")
    assert "yt-dlp" in err["message"]
    assert_error(_ask(client, "https://youtu.be/9hE5-98ZeCg"), 400, "INVALID_ARGUMENT", "youtube_downloader")


def test_youtube_with_a_downloader(make_client, tmp_path):
    """A stand-in for yt-dlp (same command line): writes the video where `-o` says."""
    clip = write_video(tmp_path / "yt.mp4", seconds=2.0)
    script = tmp_path / "yt-dlp"
    script.write_text('#!/bin/sh\nwhile [ "$#" -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; '
                      f'[ "$1" = "--" ] && url="$2"; shift; done\necho "$url" > "{tmp_path}/asked"\n'
                      f'cp "{clip}" "$out"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    client = make_client(youtube_downloader=str(script))
    uri = "https://www.youtube.com/watch?v=9hE5-98ZeCg"
    text = _text(_ask(client, uri))
    assert "[00:01] video frame" in text and f"from {uri}" in text
    assert Path(tmp_path / "asked").read_text().strip() == uri
