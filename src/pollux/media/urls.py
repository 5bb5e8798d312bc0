"""Media named by URL in `fileData.fileUri`: fetched by the server, as Gemini fetches public URLs.

* http(s): streamed into a scratch file under the upload size limit (`max_file_bytes`), with
  connect/read timeouts and an overall deadline, at most MAX_REDIRECTS redirects. Every hop's host
  is resolved once and the connection made to that address (Host header and TLS SNI keep the name),
  so a DNS answer that changes between the check and the connect (rebinding) cannot reach another
  host. Loopback, private, link-local and other non-public addresses are refused unless
  `allow_private_urls` is on. The MIME type is sniffed like an upload's.
* YouTube links: downloaded by `youtube_downloader` (a yt-dlp binary) when configured, else a 400
  naming that setting.
* gs:// (Vertex AI's Cloud Storage references): a 400.

Errors are INVALID_ARGUMENT with the reason: a URL is never a permission problem of this server.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from pollux.errors import InvalidArgument, PayloadTooLarge, UnsupportedMedia
from pollux.media import mime as mimes

if TYPE_CHECKING:
    from pollux.prompt_types import PreparedMedia
    from pollux.settings import Settings

MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
DEADLINE = 300.0  # seconds for the whole download
YOUTUBE_HOSTS = ("youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be",
                 "www.youtube-nocookie.com")


@dataclass
class Fetched:
    path: Path  # the bytes, in the request's scratch folder
    mime_type: str  # sniffed and checked like an upload's
    prepared: "PreparedMedia | None" = None  # the caller's prepared media, kept with the bytes for the request


def is_url(uri: str) -> bool:
    return uri.split(":", 1)[0].lower() in ("http", "https", "gs")


def is_youtube(uri: str) -> bool:
    host = (urlsplit(uri).hostname or "").lower()
    return host in YOUTUBE_HOSTS


class UrlFetcher:
    """Fetches a request's URLs into its scratch folder, each URL once per request."""

    def __init__(self, settings: "Settings", scratch: Path):
        self.settings = settings
        self.scratch = scratch
        self._cache: dict[str, Fetched] = {}

    def fetch(self, uri: str, declared_mime: str = "") -> Fetched:
        if uri not in self._cache:
            target = self.scratch / f"fetched-{len(self._cache)}"
            target.parent.mkdir(parents=True, exist_ok=True)  # the request's scratch folder is made on first use
            self._cache[uri] = self._fetch(uri, declared_mime, target)
        return self._cache[uri]

    def _fetch(self, uri: str, declared: str, target: Path) -> Fetched:
        scheme = uri.split(":", 1)[0].lower()
        if scheme == "gs":
            raise InvalidArgument(f"{uri}: gs:// URIs name Google Cloud Storage objects (Vertex AI); Pollux cannot "
                                  "read Cloud Storage. Upload the file with the File API, or give an https URL.")
        if is_youtube(uri):
            content_type = self._youtube(uri, target)
        else:
            content_type = self._http(uri, target)
        return Fetched(target, _checked_mime(uri, target, declared, content_type))

    # ------------------------------------------------------------------------------ http(s)

    def _http(self, uri: str, target: Path) -> str:
        deadline = time.monotonic() + DEADLINE
        url = uri
        timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                request = self._pinned_request(client, url)
                try:
                    response = client.send(request, stream=True)
                except httpx.HTTPError as e:
                    raise InvalidArgument(f"Cannot fetch {uri}: {type(e).__name__}: {e}") from None
                try:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise InvalidArgument(f"Cannot fetch {uri}: a redirect without a Location.")
                        url = str(httpx.URL(url).join(location))
                        continue
                    if response.status_code != 200:
                        raise InvalidArgument(f"Cannot fetch {uri}: the server answered HTTP {response.status_code}.")
                    self._save(uri, response, target, deadline)
                    return response.headers.get("content-type", "").split(";")[0].strip()
                except httpx.HTTPError as e:
                    raise InvalidArgument(f"Cannot fetch {uri}: {type(e).__name__}: {e}") from None
                finally:
                    response.close()
        raise InvalidArgument(f"Cannot fetch {uri}: more than {MAX_REDIRECTS} redirects.")

    def _pinned_request(self, client: httpx.Client, url: str) -> httpx.Request:
        """A request to the address the host resolves to now (checked), keeping the name for Host and SNI."""
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise InvalidArgument(f"Cannot fetch {url}: only http and https URLs are fetched.")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        address = self._address(parsed.host, port, url)
        headers = {"Host": parsed.netloc.decode("ascii"), "User-Agent": "pollux (fileData fetch)",
                   "Accept-Encoding": "identity"}
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        return client.build_request("GET", parsed.copy_with(host=address), headers=headers, extensions=extensions)

    def _address(self, host: str, port: int, url: str) -> str:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise InvalidArgument(f"Cannot fetch {url}: the host {host} does not resolve ({e}).") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not self.settings.allow_private_urls:
            for a in addresses:
                if not a.is_global or a.is_multicast:
                    raise InvalidArgument(
                        f"Cannot fetch {url}: {host} is a loopback, private or link-local address ({a}); "
                        "set allow_private_urls (POLLUX_ALLOW_PRIVATE_URLS) to fetch such URLs.")
        return str(addresses[0])

    def _save(self, uri: str, response: httpx.Response, target: Path, deadline: float) -> None:
        limit = self.settings.max_file_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"{uri} is {int(declared)} bytes, over the {limit}-byte file limit.")
        size = 0
        with open(target, "wb") as out:
            for chunk in response.iter_bytes(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"{uri} is over the {limit}-byte file limit.")
                if time.monotonic() > deadline:
                    raise InvalidArgument(f"Cannot fetch {uri}: the download took longer than {DEADLINE:g} s.")
                out.write(chunk)

    # ------------------------------------------------------------------------------ YouTube

    def _youtube(self, uri: str, target: Path) -> str:
        binary = self.settings.youtube_downloader
        if not binary:
            raise InvalidArgument(f"{uri}: YouTube links need a downloader on this server: set youtube_downloader "
                                  "(POLLUX_YOUTUBE_DOWNLOADER) to a yt-dlp binary, or upload the video with the "
                                  "File API.")
        command = [str(binary), "--no-playlist", "--quiet", "--no-progress", "-f", "best[ext=mp4]/best",
                   "--max-filesize", str(self.settings.max_file_bytes), "-o", str(target), "--", uri]
        try:
            done = subprocess.run(command, capture_output=True, timeout=DEADLINE, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise InvalidArgument(f"Cannot fetch {uri}: the YouTube downloader failed ({e}).") from None
        if done.returncode != 0 or not target.exists():
            why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no file written"]
            raise InvalidArgument(f"Cannot fetch {uri}: the YouTube downloader failed ({why[0]}).")
        if os.path.getsize(target) > self.settings.max_file_bytes:
            raise PayloadTooLarge(f"{uri} is over the {self.settings.max_file_bytes}-byte file limit.")
        return ""


def _checked_mime(uri: str, path: Path, declared: str, content_type: str) -> str:
    """The part's declared type, else the server's Content-Type, else the sniffed one; checked like an upload."""
    with open(path, "rb") as fh:
        head = fh.read(mimes.SNIFF_BYTES)
    if not head:
        raise InvalidArgument(f"{uri} is empty.")
    sniffed = mimes.sniff(head)
    for candidate in (declared, content_type):
        if candidate and mimes.kind(mimes.normalize(candidate)) is not None:
            return mimes.check(candidate, head)
    if sniffed is None:
        served = f" (served as {content_type})" if content_type else ""
        raise UnsupportedMedia(f"{uri} is not a supported image, video or audio file{served}. "
                               f"Supported types: {', '.join(mimes.supported())}.")
    return sniffed
