"""kill -9 in the middle of an upload: the SDK's `query` learns the offset and the upload completes."""

import hashlib
import os
import threading

import httpx
import pytest

from tests.fixtures.server import Server

H = {"x-goog-api-key": "test-key"}


def _start(url: str, size: int) -> str:
    r = httpx.post(f"{url}/upload/v1beta/files", headers={
        **H, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size), "X-Goog-Upload-Header-Content-Type": "video/mp4"},
        json={"file": {"displayName": "crash"}})
    r.raise_for_status()
    return r.headers["x-goog-upload-url"]


def test_upload_resumes_after_kill_9(tmp_path):
    payload = os.urandom(6 << 20)
    payload = b"\x00\x00\x00\x18ftypmp42" + payload[12:]  # sniffs as MP4 (it will fail processing, not upload)
    first = 2 << 20
    server = Server(tmp_path / "data", env={"POLLUX_FSYNC": "1"}).start()
    try:
        session = _start(server.url, len(payload))
        r = httpx.post(session, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"},
                       content=payload[:first])
        assert r.headers["x-goog-upload-status"] == "active"

        # A second chunk is half-sent when the server dies.
        sent_half = threading.Event()

        def body():
            yield payload[first:first + (1 << 20)]
            sent_half.set()
            threading.Event().wait(5)  # hang: the kill arrives meanwhile
            yield payload[first + (1 << 20):]

        def doomed():
            try:
                httpx.post(session, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": str(first)},
                           content=body(), timeout=10)
            except httpx.HTTPError:
                pass

        t = threading.Thread(target=doomed)
        t.start()
        assert sent_half.wait(10)
        server.kill()
        t.join()
    finally:
        server.kill()

    with Server(tmp_path / "data", port=server.port, env={"POLLUX_FSYNC": "1"}) as again:
        # No file is visible yet: the interrupted upload never became one.
        assert httpx.get(f"{again.url}/v1beta/files", headers=H).json() == {}
        q = httpx.post(session, headers={"X-Goog-Upload-Command": "query"})
        assert q.headers["x-goog-upload-status"] == "active"
        offset = int(q.headers["x-goog-upload-size-received"])
        assert offset == first  # only acknowledged bytes count
        r = httpx.post(session, headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset":
                                         str(offset)}, content=payload[offset:], timeout=30)
        assert r.headers["x-goog-upload-status"] == "final", r.text
        f = r.json()["file"]
        assert f["sizeBytes"] == str(len(payload))
        import base64

        assert base64.b64decode(f["sha256Hash"]).decode() == hashlib.sha256(payload).hexdigest()
        blob = tmp_path / "data" / "blobs" / f["name"][6:]
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_video_processing_resumes_after_kill_9(tmp_path):
    import time

    from tests.fixtures.media import write_video

    video = write_video(tmp_path / "v.mp4", seconds=30.0, size=(320, 240), fps=25).read_bytes()
    server = Server(tmp_path / "data", env={"POLLUX_PROCESSING_WORKERS": "1"}).start()
    try:
        session = _start(server.url, len(video))
        r = httpx.post(session, headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"},
                       content=video, timeout=30)
        f = r.json()["file"]
        assert f["state"] == "PROCESSING"
        server.kill()  # the job had just started
    finally:
        server.kill()
    with Server(tmp_path / "data", port=server.port) as again:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            f = httpx.get(f"{again.url}/v1beta/{f['name']}", headers=H).json()
            if f["state"] != "PROCESSING":
                break
            time.sleep(0.2)
        assert f["state"] == "ACTIVE", f
        assert float(f["videoMetadata"]["videoDuration"].rstrip("s")) == pytest.approx(30.0, abs=0.5)
