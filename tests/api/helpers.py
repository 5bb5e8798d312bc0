"""Upload helpers shared by the API tests (each protocol spelled out as the SDKs send it)."""

from __future__ import annotations

import json

from tests.conftest import H


def resumable_start(client, size: int, mime: str = "image/png", meta: dict | None = None, headers=H, version="v1beta"):
    r = client.post(f"/upload/{version}/files", headers={
        **headers, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size), "X-Goog-Upload-Header-Content-Type": mime,
        "Content-Type": "application/json"}, content=json.dumps({"file": meta or {"displayName": "t"}}))
    return r


def session_path(r) -> str:
    url = r.headers["x-goog-upload-url"]
    return url[url.index("/upload/"):]


def chunk(client, path: str, data: bytes, offset: int, command: str = "upload, finalize"):
    # No API key on purpose: py google-genai sends none on chunk requests.
    return client.post(path, headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset),
                                      "Content-Type": "application/json"}, content=data)


def upload(client, data: bytes, mime: str = "image/png", meta: dict | None = None, headers=H) -> dict:
    r = resumable_start(client, len(data), mime, meta, headers)
    assert r.status_code == 200, r.text
    r = chunk(client, session_path(r), data, 0)
    assert r.status_code == 200, r.text
    assert r.headers["x-goog-upload-status"] == "final"
    return r.json()["file"]


def assert_error(r, code: int, status: str, contains: str = "") -> dict:
    assert r.status_code == code, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == code and err["status"] == status, err
    assert contains.lower() in err["message"].lower(), err["message"]
    return err
