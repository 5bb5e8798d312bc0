import base64
import hashlib
from datetime import datetime, timedelta

import pytest

from tests.api.helpers import assert_error, upload
from tests.conftest import H, OTHER, ctx_of, png_bytes


def _ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_file_resource_has_every_field(client):
    data = png_bytes()
    f = upload(client, data, meta={"displayName": "tiny"})
    assert f["name"].startswith("files/") and len(f["name"]) == len("files/") + 12
    assert f["displayName"] == "tiny"
    assert f["mimeType"] == "image/png"
    assert f["sizeBytes"] == str(len(data))
    assert f["state"] == "ACTIVE" and f["source"] == "UPLOADED"
    assert f["uri"] == f"http://testserver/v1beta/{f['name']}"
    assert base64.b64decode(f["sha256Hash"]).decode() == hashlib.sha256(data).hexdigest()
    assert _ts(f["expirationTime"]) - _ts(f["createTime"]) == timedelta(hours=48)
    assert "error" not in f and "videoMetadata" not in f


def test_get_returns_the_same_file(client):
    f = upload(client, png_bytes())
    got = client.get(f"/v1beta/{f['name']}", headers=H).json()
    assert got == f


def test_list_is_newest_first_paged_and_empty_is_an_empty_object(client):
    assert client.get("/v1beta/files", headers=H).json() == {}
    names = [upload(client, png_bytes(8 + i))["name"] for i in range(3)]
    page1 = client.get("/v1beta/files?pageSize=2", headers=H).json()
    assert [f["name"] for f in page1["files"]] == names[::-1][:2]
    page2 = client.get(f"/v1beta/files?pageSize=2&pageToken={page1['nextPageToken']}", headers=H).json()
    assert [f["name"] for f in page2["files"]] == names[:1]
    assert "nextPageToken" not in page2
    assert len(client.get("/v1beta/files", headers=H).json()["files"]) == 3


def test_page_size_defaults_to_10_and_is_clamped_to_100(client, monkeypatch):
    svc = ctx_of(client).files
    seen = []
    orig = svc.store.list_files
    monkeypatch.setattr(svc.store, "list_files", lambda p, limit, b, n: seen.append(limit) or orig(p, limit, b, n))
    client.get("/v1beta/files", headers=H)
    client.get("/v1beta/files?pageSize=1000", headers=H)
    assert seen == [11, 101]


@pytest.mark.parametrize("query", ["pageSize=abc", "pageSize=-1", "pageSize=1.5", "pageToken=%%%", "pageToken=bm9wZQ"])
def test_bad_paging_is_invalid_argument(client, query):
    assert_error(client.get(f"/v1beta/files?{query}", headers=H), 400, "INVALID_ARGUMENT")


def test_delete_then_everything_is_permission_denied(client):
    f = upload(client, png_bytes())
    assert client.request("DELETE", f"/v1beta/{f['name']}", headers=H, json={}).json() == {}
    assert_error(client.get(f"/v1beta/{f['name']}", headers=H), 403, "PERMISSION_DENIED", f["name"][6:])
    assert_error(client.delete(f"/v1beta/{f['name']}", headers=H), 403, "PERMISSION_DENIED")
    blobs = ctx_of(client).files.blobs
    assert not blobs.blob_path(f["name"][6:]).exists()


def test_projects_are_walls(client):
    f = upload(client, png_bytes())
    foreign = client.get(f"/v1beta/{f['name']}", headers=OTHER)
    missing = client.get("/v1beta/files/neverexisted", headers=OTHER)
    assert_error(foreign, 403, "PERMISSION_DENIED")
    assert_error(missing, 403, "PERMISSION_DENIED")
    assert foreign.json()["error"]["message"].replace(f["name"][6:], "X") == \
        missing.json()["error"]["message"].replace("neverexisted", "X")
    assert client.get("/v1beta/files", headers=OTHER).json() == {}
    assert_error(client.delete(f"/v1beta/{f['name']}", headers=OTHER), 403, "PERMISSION_DENIED")
    r = client.post("/v1beta/models/gemini-2.0-flash:generateContent", headers=OTHER, json={"contents": [{"parts": [
        {"fileData": {"fileUri": f["uri"], "mimeType": "image/png"}}, {"text": "hi"}]}]})
    assert_error(r, 403, "PERMISSION_DENIED")
    assert client.get(f"/v1beta/{f['name']}", headers=H).status_code == 200


@pytest.mark.parametrize("bad", ["files/UPPER", "files/-dash", "files/" + "a" * 41, "files/a_b"])
def test_bad_file_ids_are_denied_like_missing_ones(client, bad):
    assert_error(client.get(f"/v1beta/{bad}", headers=H), 403, "PERMISSION_DENIED")


def test_expired_files_are_never_served_and_are_swept(client):
    f = upload(client, png_bytes())
    svc = ctx_of(client).files
    file_id = f["name"][6:]
    svc.store.update_file(file_id, expire_us=1)
    assert_error(client.get(f"/v1beta/{f['name']}", headers=H), 403, "PERMISSION_DENIED")
    assert client.get("/v1beta/files", headers=H).json() == {}
    assert svc.sweep() == 1
    assert not svc.blobs.blob_path(file_id).exists()
    assert svc.store.get_file("demo", file_id) is None


def test_metadata_only_create_is_refused_clearly(client):
    assert_error(client.post("/v1beta/files", headers=H, json={"file": {}}), 400, "INVALID_ARGUMENT", "upload")
