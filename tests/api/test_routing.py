import pytest

from tests.api.helpers import assert_error
from tests.conftest import H


@pytest.mark.parametrize("version", ["v1beta", "v1", "v1alpha"])
def test_every_version_prefix_is_served(client, version):
    assert client.get(f"/{version}/models", headers=H).status_code == 200


def test_repeated_slashes_are_collapsed(client):
    assert client.get("http://testserver//v1beta//models", headers=H).status_code == 200


def test_alt_json_is_ignored(client):
    assert client.get("/v1beta/models?$alt=json;enum-encoding=int&alt=json", headers=H).status_code == 200


def test_unknown_route_and_version_are_not_found(client):
    assert_error(client.get("/v1beta/nothing", headers=H), 404, "NOT_FOUND")
    assert_error(client.get("/v9/models", headers=H), 404, "NOT_FOUND")
    assert_error(client.post("/v1beta/models/gemini-2.0-flash:explode", headers=H, json={}), 404, "NOT_FOUND")


def test_health_and_index(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/").status_code == 200


def test_discovery_document_points_at_this_server(client):
    doc = client.get("/$discovery/rest?version=v1beta&key=test-key").json()
    assert doc["rootUrl"] == "http://testserver/"
    upload = doc["resources"]["media"]["methods"]["upload"]
    assert upload["path"] == "v1beta/files" and upload["supportsMediaUpload"]
    assert upload["mediaUpload"]["protocols"]["resumable"]["path"] == "/resumable/upload/v1beta/files"
