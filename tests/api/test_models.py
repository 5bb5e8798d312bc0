from tests.api.helpers import assert_error
from tests.conftest import H


def test_list_models_contains_entries_and_gemini_aliases(client):
    body = client.get("/v1beta/models", headers=H).json()
    names = [m["name"] for m in body["models"]]
    for alias in ("models/gemini-1.5-flash", "models/gemini-1.5-pro", "models/gemini-2.0-flash",
                  "models/gemini-2.5-flash", "models/smolvlm2-256m"):
        assert alias in names
    m = body["models"][0]
    assert {"generateContent", "countTokens"} <= set(m["supportedGenerationMethods"])
    assert m["inputTokenLimit"] > 0 and m["outputTokenLimit"] > 0


def test_list_models_pages(client):
    first = client.get("/v1beta/models?pageSize=2", headers=H).json()
    assert len(first["models"]) == 2 and first["nextPageToken"]
    second = client.get(f"/v1beta/models?pageSize=2&pageToken={first['nextPageToken']}", headers=H).json()
    assert second["models"][0]["name"] != first["models"][0]["name"]


def test_get_model_and_version_suffix_aliases(client):
    m = client.get("/v1beta/models/gemini-2.0-flash", headers=H).json()
    assert m["name"] == "models/gemini-2.0-flash"
    assert m["inputTokenLimit"] == 1_048_576  # under Gemini's accounting (video frames are thinned to fit)
    assert m["polluxContextTokens"] == 8192  # the local model's own context
    assert client.get("/v1beta/models/gemini-1.5-flash-latest", headers=H).status_code == 200
    assert client.get("/v1beta/models/gemini-1.5-flash-001", headers=H).status_code == 200


def test_unknown_model_is_not_found(client):
    assert_error(client.get("/v1beta/models/gpt-4", headers=H), 404, "NOT_FOUND", "models/gpt-4 is not found")
    assert_error(client.post("/v1beta/models/gpt-4:generateContent", headers=H,
                             json={"contents": [{"parts": [{"text": "hi"}]}]}), 404, "NOT_FOUND")
