"""Hostile values in list and upload parameters answer 400 in the error envelope, never 500 (issue 15, item 10)."""

import base64
import json

import pytest

from tests.api.helpers import assert_error
from tests.conftest import H


def _token(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize("size", ["inf", "-inf", "1e400", "nan", "2.5", "ten", "1" * 400])
def test_page_size_that_is_not_an_integer(client, size):
    r = client.get("/v1beta/files", params={"pageSize": size}, headers=H)
    if size == "1" * 400:  # an integer, just a large one: clamped like any page size
        assert r.status_code == 200
    else:
        assert_error(r, 400, "INVALID_ARGUMENT", "pageSize")


@pytest.mark.parametrize("token", [
    base64.urlsafe_b64encode(b'[Infinity, "x"]').decode(),
    base64.urlsafe_b64encode(b'[-Infinity, "x"]').decode(),
    base64.urlsafe_b64encode(b'[NaN, "x"]').decode(),
    _token([10**30, "x"]),
    _token([-1, "x"]),
    _token([1.5, "x"]),
    _token([1, 7]),
    _token({"a": 1}),
    "[" * 5000,
])
def test_page_token_that_was_never_issued(client, token):
    assert_error(client.get("/v1beta/files", params={"pageToken": token}, headers=H), 400, "INVALID_ARGUMENT",
                 "pageToken")


def test_googleapiclient_content_range_with_a_huge_total(client):
    start = client.post("/upload/v1beta/files?uploadType=resumable", headers={**H, "X-Upload-Content-Type": "image/png"},
                        json={"file": {}})
    session = start.headers["location"]
    r = client.put(session, headers={"Content-Range": "bytes 0-9/99999999999999999999"}, content=b"0123456789")
    assert_error(r, 400, "INVALID_ARGUMENT")
    r = client.put(session, headers={"Content-Range": "bytes 99999999999999999999-99999999999999999999/*"},
                   content=b"0")
    assert_error(r, 400, "INVALID_ARGUMENT")


def test_huge_declared_sizes_and_offsets(client):
    r = client.post("/upload/v1beta/files", headers={
        **H, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": "9" * 40, "X-Goog-Upload-Header-Content-Type": "image/png"})
    assert_error(r, 400, "INVALID_ARGUMENT")
    r = client.post("/upload/v1beta/files", headers={
        **H, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Type": "image/png"})
    session = r.headers["x-goog-upload-url"]
    r = client.post(session, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "9" * 40},
                    content=b"abc")
    assert_error(r, 400, "INVALID_ARGUMENT", "offset")
