from tests.api.helpers import assert_error
from tests.conftest import H


def test_header_query_and_bearer_keys_work(client):
    assert client.get("/v1beta/files", headers=H).status_code == 200
    assert client.get("/v1beta/files?key=test-key").status_code == 200
    assert client.get("/v1beta/files", headers={"Authorization": "Bearer test-key"}).status_code == 200


def test_missing_key_is_permission_denied(client):
    assert_error(client.get("/v1beta/files"), 403, "PERMISSION_DENIED", "unregistered callers")


def test_unknown_key_is_invalid_argument_with_error_info(client):
    err = assert_error(client.get("/v1beta/models", headers={"x-goog-api-key": "bad-key"}), 400,
                       "INVALID_ARGUMENT", "API key not valid")
    info = err["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["reason"] == "API_KEY_INVALID"


def test_stored_keys_are_hashed_and_revocable(client):
    from tests.conftest import ctx_of

    store = ctx_of(client).files.store
    key = store.create_key("zeta")
    assert key not in str(store.list_keys())
    assert client.get("/v1beta/files", headers={"x-goog-api-key": key}).status_code == 200
    assert store.revoke_key(key[:10])
    assert_error(client.get("/v1beta/files", headers={"x-goog-api-key": key}), 400, "INVALID_ARGUMENT")
