"""cachedContents (issue 12, part 1): the resource through the official google-genai SDK against a real
`pollux serve --emulator`, and Gemini's rules and error envelopes in-process (never a 5xx).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.api.helpers import assert_error, upload
from tests.conftest import OTHER, H, png_bytes
from tests.fixtures.server import Server

MODEL = "gemini-2.5-flash"
LONG = "The lighthouse keeper logged every ship that passed the northern cape. " * 120  # > 1024 tokens


def _create(client, headers=H, **body):
    body = {"model": f"models/{MODEL}", "contents": [{"role": "user", "parts": [{"text": LONG}]}], **body}
    return client.post("/v1beta/cachedContents", headers=headers, json=body)


def _generate(client, cache: str | None, text: str = "What did the keeper log?", model: str = MODEL,
              verb: str = "generateContent", **extra):
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}
    if cache:
        body["cachedContent"] = cache
    return client.post(f"/v1beta/models/{model}:{verb}", headers=H, json=body)


# ---------------------------------------------------------------------------------- in-process rules

def test_create_get_list_patch_delete(client):
    r = _create(client, displayName="keeper", ttl="120s")
    assert r.status_code == 200, r.text
    cache = r.json()
    assert cache["name"].startswith("cachedContents/") and cache["model"] == f"models/{MODEL}"
    assert cache["displayName"] == "keeper" and cache["usageMetadata"]["totalTokenCount"] >= 1024
    assert "contents" not in cache  # Gemini does not echo them
    created, expires = cache["createTime"], cache["expireTime"]
    assert expires > created
    assert client.get(f"/v1beta/{cache['name']}", headers=H).json() == cache

    r = client.patch(f"/v1beta/{cache['name']}", headers=H, json={"ttl": "7200s"})
    assert r.status_code == 200, r.text
    assert r.json()["expireTime"] > expires and r.json()["createTime"] == created

    names = [_create(client).json()["name"] for _ in range(2)]
    page = client.get("/v1beta/cachedContents?pageSize=2", headers=H).json()
    assert len(page["cachedContents"]) == 2 and page["nextPageToken"]
    rest = client.get(f"/v1beta/cachedContents?pageSize=2&pageToken={page['nextPageToken']}", headers=H).json()
    listed = [c["name"] for c in page["cachedContents"] + rest["cachedContents"]]
    assert sorted(listed) == sorted(names + [cache["name"]]) and "nextPageToken" not in rest

    assert client.delete(f"/v1beta/{cache['name']}", headers=H).json() == {}
    assert_error(client.get(f"/v1beta/{cache['name']}", headers=H), 403, "PERMISSION_DENIED", "CachedContent")
    assert_error(client.delete(f"/v1beta/{cache['name']}", headers=H), 403, "PERMISSION_DENIED")


def test_caches_are_per_project(client):
    name = _create(client).json()["name"]
    assert_error(client.get(f"/v1beta/{name}", headers=OTHER), 403, "PERMISSION_DENIED")
    assert_error(client.delete(f"/v1beta/{name}", headers=OTHER), 403, "PERMISSION_DENIED")
    assert client.get("/v1beta/cachedContents", headers=OTHER).json() == {}
    r = client.post(f"/v1beta/models/{MODEL}:generateContent", headers=OTHER,
                    json={"contents": [{"parts": [{"text": "hi"}]}], "cachedContent": name})
    assert_error(r, 403, "PERMISSION_DENIED", "CachedContent not found")


def test_generate_uses_the_cache_as_prefix(client):
    cache = _create(client, systemInstruction={"parts": [{"text": "Answer briefly."}]}).json()
    total = cache["usageMetadata"]["totalTokenCount"]
    plain = _generate(client, None).json()["usageMetadata"]
    r = _generate(client, cache["name"])
    assert r.status_code == 200, r.text
    usage = r.json()["usageMetadata"]
    assert usage["cachedContentTokenCount"] == total
    assert usage["promptTokenCount"] == total + plain["promptTokenCount"]
    # countTokens takes cachedContent inside generateContentRequest, as on Gemini
    count = client.post(f"/v1beta/models/{MODEL}:countTokens", headers=H, json={"generateContentRequest": {
        "model": f"models/{MODEL}", "contents": [{"role": "user", "parts": [{"text": "What did the keeper log?"}]}],
        "cachedContent": cache["name"]}}).json()
    assert count["totalTokens"] == usage["promptTokenCount"] and count["cachedContentTokenCount"] == total
    r = client.post(f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", headers=H,
                    json={"contents": [{"parts": [{"text": "Again?"}]}], "cachedContent": cache["name"]})
    assert r.status_code == 200, r.text
    last = json.loads([line for line in r.text.splitlines() if line.startswith("data: ")][-1][6:])
    assert last["usageMetadata"]["cachedContentTokenCount"] == total


def test_gemini_rules_on_use(client):
    name = _create(client).json()["name"]
    assert_error(_generate(client, name, systemInstruction={"parts": [{"text": "x"}]}), 400, "INVALID_ARGUMENT",
                 "Tool config, tools and system instruction should not be set in the request when using cached")
    assert_error(_generate(client, name, tools=[{"codeExecution": {}}]), 400, "INVALID_ARGUMENT",
                 "should not be set in the request when using cached content")
    assert_error(_generate(client, name, model="gemini-2.5-pro"), 400, "INVALID_ARGUMENT",
                 f"Model used by GenerateContent request (models/gemini-2.5-pro) and CachedContent "
                 f"(models/{MODEL}) has to be the same")
    assert_error(client.post(f"/v1beta/models/{MODEL}:generateContent", headers=H, json={"cachedContent": name}),
                 400, "INVALID_ARGUMENT", "contents is not specified")
    for bad in ("cachedContents/nope", "cachedContents/../x", "garbage"):
        assert_error(_generate(client, bad), 403, "PERMISSION_DENIED", "CachedContent not found")


def test_create_errors(client):
    assert_error(_create(client, contents=[{"parts": [{"text": "short"}]}]), 400, "INVALID_ARGUMENT",
                 "Cached content is too small. total_token_count=")
    r = _create(client, model="models/gemini-2.5-pro")
    err = assert_error(r, 400, "INVALID_ARGUMENT", "Cached content is too small")
    assert "min_total_token_count=4096" in err["message"]
    assert_error(_create(client, model=None), 400, "INVALID_ARGUMENT", "model")
    assert_error(_create(client, contents=[]), 400, "INVALID_ARGUMENT", "contents")
    assert_error(_create(client, ttl="soon"), 400, "INVALID_ARGUMENT", "google.protobuf.Duration")
    assert_error(_create(client, ttl="0s"), 400, "INVALID_ARGUMENT", "future")
    assert_error(_create(client, ttl="60s", expireTime="2099-01-01T00:00:00Z"), 400, "INVALID_ARGUMENT", "one of")
    assert_error(_create(client, expireTime="2001-01-01T00:00:00Z"), 400, "INVALID_ARGUMENT", "future")
    assert_error(_create(client, expireTime="tomorrow"), 400, "INVALID_ARGUMENT", "Timestamp")
    assert_error(_create(client, ttl="999999999999s"), 400, "INVALID_ARGUMENT", "before 10000")
    assert _create(client, expireTime="9999-12-31T23:59:59Z").status_code == 200
    assert_error(_create(client, bogus=1), 400, "INVALID_ARGUMENT", "Unknown name \"bogus\"")
    assert_error(_create(client, contents=[{"role": "robot", "parts": [{"text": LONG}]}]), 400, "INVALID_ARGUMENT",
                 "role")
    assert_error(_create(client, model="models/no-such-model"), 404, "NOT_FOUND")
    r = client.post("/v1beta/cachedContents", headers=H, content=b"[1, 2")
    assert r.status_code == 400
    name = _create(client).json()["name"]
    assert_error(client.patch(f"/v1beta/{name}?updateMask=contents", headers=H, json={"ttl": "60s"}), 400,
                 "INVALID_ARGUMENT", "Only ttl or expire_time")
    assert_error(client.patch(f"/v1beta/{name}", headers=H, json={"ttl": "-5s"}), 400, "INVALID_ARGUMENT")
    assert_error(client.get("/v1beta/cachedContents?pageToken=%%%", headers=H), 400, "INVALID_ARGUMENT", "pageToken")
    assert_error(client.get("/v1beta/cachedContents?pageSize=-1", headers=H), 400, "INVALID_ARGUMENT", "pageSize")


def test_expired_caches_vanish_and_are_swept(client):
    from tests.conftest import ctx_of

    name = _create(client, ttl="1s").json()["name"]
    keep = _create(client, ttl="600s").json()["name"]
    time.sleep(1.2)
    assert_error(client.get(f"/v1beta/{name}", headers=H), 403, "PERMISSION_DENIED")
    assert_error(_generate(client, name), 403, "PERMISSION_DENIED", "CachedContent not found")
    assert [c["name"] for c in client.get("/v1beta/cachedContents", headers=H).json()["cachedContents"]] == [keep]
    caches = ctx_of(client).caches
    assert caches.sweep() == 1 and caches.sweep() == 0
    assert not caches.pinned(name.split("/")[1]) and caches.pinned(keep.split("/")[1])


def test_a_cache_of_a_file(client):
    f = upload(client, png_bytes(64, 48))
    cache = _create(client, contents=[{"role": "user", "parts": [
        {"fileData": {"fileUri": f["uri"], "mimeType": "image/png"}}, {"text": LONG}]}]).json()
    assert cache["usageMetadata"]["totalTokenCount"] >= 1024
    usage = _generate(client, cache["name"], text="What is in the image?").json()["usageMetadata"]
    assert usage["cachedContentTokenCount"] == cache["usageMetadata"]["totalTokenCount"]
    assert any(d["modality"] == "IMAGE" for d in usage["promptTokensDetails"])

    # The file is deleted: the cache keeps answering while it lives (it holds its own link to the bytes).
    assert client.delete(f"/v1beta/{f['name']}", headers=H).status_code == 200
    assert_error(client.get(f"/v1beta/{f['name']}", headers=H), 403, "PERMISSION_DENIED")
    again = _generate(client, cache["name"], text="And now?")
    assert again.status_code == 200, again.text
    assert again.json()["usageMetadata"]["cachedContentTokenCount"] == cache["usageMetadata"]["totalTokenCount"]
    r = client.post(f"/v1beta/models/{MODEL}:generateContent", headers=H, json={"contents": [{"parts": [
        {"fileData": {"fileUri": f["uri"], "mimeType": "image/png"}}, {"text": "x"}]}]})
    assert_error(r, 403, "PERMISSION_DENIED")  # outside the cache the file is gone
    from tests.conftest import ctx_of

    kept = ctx_of(client).caches.kept_root / cache["name"].split("/")[1]
    assert kept.is_dir()
    client.delete(f"/v1beta/{cache['name']}", headers=H)
    assert not kept.exists()  # its links go with it


# ---------------------------------------------------------------------------------- the official SDK

@pytest.fixture(scope="module")
def genai_client(tmp_path_factory):
    from google import genai
    from google.genai import types

    with Server(tmp_path_factory.mktemp("caches-data")) as server:
        yield genai.Client(api_key="test-key",
                           http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))


def test_sdk_caches_round_trip(genai_client):
    from google.genai import errors, types

    client = genai_client
    cache = client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(
        display_name="keeper log", system_instruction="You are a harbour archivist.",
        contents=[types.Content(role="user", parts=[types.Part(text=LONG)])], ttl="300s"))
    assert cache.name.startswith("cachedContents/") and cache.model == f"models/{MODEL}"
    assert cache.display_name == "keeper log" and cache.usage_metadata.total_token_count >= 1024
    assert cache.expire_time > cache.create_time

    got = client.caches.get(name=cache.name)
    assert got.name == cache.name and got.usage_metadata.total_token_count == cache.usage_metadata.total_token_count
    assert cache.name in [c.name for c in client.caches.list(config={"page_size": 1})]

    updated = client.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="7200s"))
    assert updated.expire_time > cache.expire_time and updated.create_time == cache.create_time

    answer = client.models.generate_content(model=MODEL, contents="Which ships passed?",
                                            config=types.GenerateContentConfig(cached_content=cache.name))
    assert answer.text
    assert answer.usage_metadata.cached_content_token_count == cache.usage_metadata.total_token_count
    assert answer.usage_metadata.prompt_token_count > cache.usage_metadata.total_token_count

    streamed = list(client.models.generate_content_stream(
        model=MODEL, contents="And again?", config=types.GenerateContentConfig(cached_content=cache.name)))
    assert streamed[-1].usage_metadata.cached_content_token_count == cache.usage_metadata.total_token_count

    count = client.models.count_tokens(model=MODEL, contents="Which ships passed?")
    assert count.total_tokens < cache.usage_metadata.total_token_count

    with pytest.raises(errors.ClientError) as e:
        client.models.generate_content(model=MODEL, contents="x", config=types.GenerateContentConfig(
            cached_content=cache.name, system_instruction="no"))
    assert e.value.code == 400 and "cached content" in e.value.message

    client.caches.delete(name=cache.name)
    with pytest.raises(errors.ClientError) as e:
        client.caches.get(name=cache.name)
    assert e.value.code == 403


def test_sdk_cache_too_small(genai_client):
    from google.genai import errors, types

    with pytest.raises(errors.ClientError) as e:
        genai_client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=["tiny"]))
    assert e.value.code == 400 and "Cached content is too small" in e.value.message
