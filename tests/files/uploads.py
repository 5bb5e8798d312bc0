"""HTTP helpers for upload tests against a real server: the X-Goog resumable protocol by hand."""

from __future__ import annotations

import base64
import hashlib
import os

import httpx

H = {"x-goog-api-key": "test-key"}
OTHER = {"x-goog-api-key": "other-key"}


def fake_video(size: int, seed: bytes = b"") -> bytes:
    """Bytes that sniff as MP4 (processing later fails them; uploads and hashes don't care)."""
    body = (hashlib.sha256(seed).digest() * (size // 32 + 1))[:size] if seed else os.urandom(size)
    return b"\x00\x00\x00\x18ftypmp42" + body[12:]


def start(url: str, size: int, headers: dict = H, name: str | None = None, mime: str = "video/mp4",
          display: str = "") -> httpx.Response:
    meta = {"displayName": display, **({"name": name} if name else {})}
    return httpx.post(f"{url}/upload/v1beta/files", headers={
        **headers, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size), "X-Goog-Upload-Header-Content-Type": mime},
        json={"file": meta}, timeout=30)


def session_url(url: str, size: int, **kw) -> str:
    r = start(url, size, **kw)
    r.raise_for_status()
    return r.headers["x-goog-upload-url"]


def send(session: str, offset: int, data, finalize: bool = False, timeout: float = 30) -> httpx.Response:
    command = "upload, finalize" if finalize else "upload"
    return httpx.post(session, headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)},
                      content=data, timeout=timeout)


def finalize(session: str, offset: int, timeout: float = 30) -> httpx.Response:
    return httpx.post(session, headers={"X-Goog-Upload-Command": "finalize", "X-Goog-Upload-Offset": str(offset)},
                      timeout=timeout)


def query(session: str) -> httpx.Response:
    return httpx.post(session, headers={"X-Goog-Upload-Command": "query"}, timeout=30)


def sha_hex(file_json: dict) -> str:
    return base64.b64decode(file_json["sha256Hash"]).decode()


def blob_bytes(data_dir, file_json: dict) -> bytes:
    """The bytes on disk of a file the API returned (found by its recorded hash, whatever its storage key)."""
    from pollux.files.store import MetadataStore
    from pollux.settings import load_settings

    store = MetadataStore(load_settings(data_dir=data_dir).resolved_database_url)  # POLLUX_DATABASE_URL too
    try:
        rows = [r for r in store.all_files() if r.sha256 == sha_hex(file_json) and f"files/{r.id}" == file_json["name"]]
    finally:
        store.engine.dispose()
    assert rows, file_json
    return (data_dir / "blobs" / rows[0].key).read_bytes()
