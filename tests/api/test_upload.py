import json

import pytest

from tests.api.helpers import assert_error, chunk, resumable_start, session_path, upload
from tests.conftest import H, ctx_of, png_bytes


def _staging_files(client):
    return list(ctx_of(client).files.blobs.staging.iterdir())


def test_resumable_in_several_chunks_without_a_key_on_chunks(client):
    data = png_bytes(64, 64)
    r = resumable_start(client, len(data))
    assert r.headers["x-goog-upload-status"] == "active"
    assert r.headers["x-goog-upload-url"] == r.headers["x-goog-upload-control-url"]
    assert "upload_id=" in r.headers["x-goog-upload-url"]
    path = session_path(r)
    a, b = data[:100], data[100:]
    r1 = chunk(client, path, a, 0, "upload")
    assert r1.headers["x-goog-upload-status"] == "active"
    q = client.post(path, headers={"X-Goog-Upload-Command": "query"})
    assert q.headers["x-goog-upload-size-received"] == "100"
    r2 = chunk(client, path, b, 100, "upload, finalize")
    assert r2.headers["x-goog-upload-status"] == "final"
    f = r2.json()["file"]
    assert f["sizeBytes"] == str(len(data)) and f["state"] == "ACTIVE"


def test_snake_case_metadata_and_client_proposed_name(client):
    f = upload(client, png_bytes(), meta={"name": "files/my-file-1", "display_name": "snake", "mime_type": "image/png"})
    assert f["name"] == "files/my-file-1" and f["displayName"] == "snake"
    r = resumable_start(client, 10, meta={"name": "files/my-file-1"})
    assert_error(r, 409, "ALREADY_EXISTS")


@pytest.mark.parametrize("name", ["files/Bad", "files/-x", "files/" + "a" * 41])
def test_bad_proposed_names(client, name):
    assert_error(resumable_start(client, 10, meta={"name": name}), 400, "INVALID_ARGUMENT", "Invalid file name")


def test_offset_mismatch_is_refused_and_session_survives(client):
    data = png_bytes()
    path = session_path(resumable_start(client, len(data)))
    r = chunk(client, path, data, 5)
    assert_error(r, 400, "INVALID_ARGUMENT", "offset")
    assert r.headers["x-goog-upload-status"] == "final"  # stops the SDK's blind retries
    assert chunk(client, path, data, 0).json()["file"]["sizeBytes"] == str(len(data))


def test_wrong_final_size_discards_the_upload(client):
    data = png_bytes()
    path = session_path(resumable_start(client, len(data) + 10))
    assert_error(chunk(client, path, data, 0), 400, "INVALID_ARGUMENT", "declared")
    assert _staging_files(client) == []
    assert client.get("/v1beta/files", headers=H).json() == {}


def test_more_bytes_than_declared(client):
    data = png_bytes()
    path = session_path(resumable_start(client, 10))
    assert_error(chunk(client, path, data, 0), 400, "INVALID_ARGUMENT", "declared")
    assert _staging_files(client) == []


def test_cancel_then_the_session_is_gone(client):
    data = png_bytes()
    path = session_path(resumable_start(client, len(data)))
    chunk(client, path, data[:10], 0, "upload")
    r = client.post(path, headers={"X-Goog-Upload-Command": "cancel"})
    assert r.headers["x-goog-upload-status"] == "cancelled"
    assert_error(chunk(client, path, data[10:], 10), 404, "NOT_FOUND", "cancelled")
    assert _staging_files(client) == []


def test_unknown_session(client):
    assert_error(chunk(client, "/upload/v1beta/files?upload_id=nope&upload_protocol=resumable", b"x", 0),
                 404, "NOT_FOUND")


def test_retried_finalize_answers_the_same_file(client):
    data = png_bytes()
    path = session_path(resumable_start(client, len(data)))
    first = chunk(client, path, data, 0).json()["file"]
    again = client.post(path, headers={"X-Goog-Upload-Command": "finalize", "X-Goog-Upload-Offset": str(len(data))})
    assert again.json()["file"]["name"] == first["name"]


def test_unsupported_and_mismatched_mime_types(client):
    assert_error(resumable_start(client, 10, mime="application/x-msdownload"), 400, "INVALID_ARGUMENT", "x-msdownload")
    data = png_bytes()
    path = session_path(resumable_start(client, len(data), mime="image/jpeg"))
    err = assert_error(chunk(client, path, data, 0), 400, "INVALID_ARGUMENT")
    assert "image/jpeg" in err["message"] and "png" in err["message"].lower()
    assert client.get("/v1beta/files", headers=H).json() == {}


def test_corrupt_image_is_refused_and_nothing_is_kept(client):
    data = png_bytes()[:40] + b"\x00" * 40
    path = session_path(resumable_start(client, len(data)))
    assert_error(chunk(client, path, data, 0), 400, "INVALID_ARGUMENT")
    assert client.get("/v1beta/files", headers=H).json() == {}
    assert list(ctx_of(client).files.blobs.blobs.iterdir()) == []


def test_empty_upload_is_refused(client):
    path = session_path(resumable_start(client, 0))
    assert_error(chunk(client, path, b"", 0), 400, "INVALID_ARGUMENT", "empty")


def test_per_file_limit_while_streaming(make_client):
    client = make_client(max_file_bytes=100)
    data = png_bytes(64, 64)
    assert len(data) > 100
    assert_error(resumable_start(client, len(data)), 400, "INVALID_ARGUMENT", "limit")
    r = client.post("/upload/v1beta/files", headers={**H, "X-Goog-Upload-Protocol": "raw",
                                                     "Content-Type": "image/png"}, content=data)
    assert_error(r, 400, "INVALID_ARGUMENT", "limit")
    assert _staging_files(client) == []


def test_project_quota_crossed_mid_stream(make_client):
    data = png_bytes(32, 32)
    client = make_client(max_project_bytes=len(data) * 2 + 10)
    upload(client, data)
    upload(client, data)
    # The third upload does not declare its size, so the quota trips while its bytes stream in.
    r = client.post("/upload/v1beta/files", headers={**H, "X-Goog-Upload-Protocol": "raw",
                                                     "Content-Type": "image/png"}, content=data)
    assert_error(r, 429, "RESOURCE_EXHAUSTED", "quota")
    assert _staging_files(client) == []
    assert len(client.get("/v1beta/files", headers=H).json()["files"]) == 2
    # The other project is not affected.
    upload(client, data, headers={"x-goog-api-key": "other-key"})


def test_multipart_related(client):
    data = png_bytes()
    boundary = "1234567890"
    body = (f"--{boundary}\r\nContent-Type: application/json; charset=utf-8\r\n\r\n"
            + json.dumps({"file": {"mimeType": "image/png", "displayName": "tiny"}})
            + f"\r\n--{boundary}\r\nContent-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--".encode()
    r = client.post("/upload/v1beta/files", headers={**H, "X-Goog-Upload-Protocol": "multipart",
                                                     "Content-Type": f"multipart/related; boundary={boundary}"},
                    content=body)
    assert r.status_code == 200, r.text
    f = r.json()["file"]
    assert f["displayName"] == "tiny" and f["sizeBytes"] == str(len(data))


def test_malformed_multipart(client):
    r = client.post("/upload/v1beta/files", headers={**H, "Content-Type": "multipart/related; boundary=zz"},
                    content=b"--zz\r\nContent-Type: application/json\r\n\r\n{not json\r\n--zz\r\n\r\nx")
    assert_error(r, 400, "INVALID_ARGUMENT")
    assert _staging_files(client) == []


def test_googleapiclient_resumable_flow(client):
    data = png_bytes(40, 40)
    r = client.post("/resumable/upload/v1beta/files?uploadType=resumable&alt=json&key=test-key",
                    headers={"X-Upload-Content-Type": "image/png", "X-Upload-Content-Length": str(len(data))},
                    json={"file": {"displayName": "legacy"}})
    assert r.status_code == 200
    location = r.headers["location"]
    path = location[location.index("/upload/"):]
    half = len(data) // 2
    r = client.put(path, headers={"Content-Range": f"bytes 0-{half - 1}/{len(data)}"}, content=data[:half])
    assert r.status_code == 308 and r.headers["range"] == f"bytes=0-{half - 1}"
    r = client.put(path, headers={"Content-Range": f"bytes */{len(data)}"})
    assert r.status_code == 308
    r = client.put(path, headers={"Content-Range": f"bytes {half}-{len(data) - 1}/{len(data)}"}, content=data[half:])
    assert r.status_code == 200, r.text
    assert r.json()["file"]["displayName"] == "legacy"


def test_media_upload_type(client):
    data = png_bytes()
    r = client.post("/upload/v1beta/files?uploadType=media", headers={**H, "Content-Type": "image/png"}, content=data)
    assert r.status_code == 200 and r.json()["file"]["mimeType"] == "image/png"


def test_upload_needs_a_key_on_start(client):
    data = png_bytes()
    assert_error(resumable_start(client, len(data), headers={}), 403, "PERMISSION_DENIED")


def test_upload_without_protocol(client):
    assert_error(client.post("/upload/v1beta/files", headers={**H, "Content-Type": "application/json"}, json={}),
                 400, "INVALID_ARGUMENT", "protocol")
