"""Explicit caches reuse real computed state (issue 12, part 1): a cachedContents cache of an image and
a long text, made through the API on the tiny random-weight SmolVLM2 (OpenVINO, converted for real),
pins the image's vision features and the prefix's KV state. A question on the cache, after every
ordinary cache was emptied, runs no vision encoder call and prefills only its own words; with no pin
budget the same question recomputes (and still answers); deleting the cache releases what it held.
"""

from __future__ import annotations

import io

import pytest

pytest.importorskip("openvino")
pytest.importorskip("optimum.intel")

from tests.api.helpers import upload  # noqa: E402
from tests.conftest import H, ctx_of  # noqa: E402

MODEL = "tiny-smolvlm-cache"
NOTES = "Field notes: the cat sat by the window and watched the birds in the garden all afternoon. " * 12


@pytest.fixture
def app_for(make_client, tmp_path, tiny_smolvlm):
    def make(**overrides):
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(f'[[models]]\nid = "{MODEL}"\ndisplay_name = "tiny"\ndescription = "tiny"\n'
                           f'engine = "openvino"\nsource = "{tiny_smolvlm}"\nfamily = "smolvlm"\n'
                           f'input_token_limit = 4096\noutput_token_limit = 64\noptions = {{ weights = "int8" }}\n')
        client = make_client(emulator=False, catalog_file=catalog, models_dir=tmp_path.parent / "cache-models",
                             default_model="none", cache_min_tokens=0, **overrides)
        ctx = ctx_of(client)
        engine = ctx.engines.get(ctx.catalog.entries[MODEL])
        engine.load()
        return client, engine
    return make


def _png(photo) -> bytes:
    buf = io.BytesIO()
    photo.save(buf, format="PNG")
    return buf.getvalue()


def _cache(client, file_uri: str) -> dict:
    r = client.post("/v1beta/cachedContents", headers=H, json={
        "model": f"models/{MODEL}", "systemInstruction": {"parts": [{"text": "Be concise."}]},
        "contents": [{"role": "user", "parts": [{"fileData": {"fileUri": file_uri, "mimeType": "image/png"}},
                                                {"text": NOTES}]}]})
    assert r.status_code == 200, r.text
    return r.json()


def _ask(client, cache: str, question: str) -> dict:
    r = client.post(f"/v1beta/models/{MODEL}:generateContent", headers=H, json={
        "cachedContent": cache, "contents": [{"role": "user", "parts": [{"text": question}]}],
        "generationConfig": {"maxOutputTokens": 4, "temperature": 0}})
    assert r.status_code == 200, r.text
    return r.json()


def _forget_unpinned(engine) -> None:
    """Empty the ordinary LRUs and the live KV state: only what a cache pinned is left."""
    engine.features.clear()
    engine.prefix.clear()
    engine.prefix.invalidate(engine.model.language_model.request)


def test_questions_on_a_cache_reuse_its_pinned_state(app_for, photos):
    client, engine = app_for()
    f = upload(client, _png(photos["chelsea"]))
    cache = _cache(client, f["uri"])
    handle = cache["name"].split("/")[1]
    assert engine.background.wait_idle(300)  # warmed at creation, in the background
    assert engine.prefix.pinned(handle) > 100 and engine.features.info()["pinned"] == 1
    assert 0 < engine.pin_budget.used <= engine.pin_budget.max_bytes

    _forget_unpinned(engine)
    before = dict(engine.stats)
    answer = _ask(client, cache["name"], "What did the cat watch?")
    assert answer["usageMetadata"]["cachedContentTokenCount"] == cache["usageMetadata"]["totalTokenCount"]
    assert engine.stats["vision_calls"] == before["vision_calls"]  # the image's features were pinned
    prefilled = engine.stats["prefill_tokens"] - before["prefill_tokens"]
    reused = engine.stats["reused_tokens"] - before["reused_tokens"]
    assert prefilled < 40 and reused > 100  # only the question's words ran

    # The same question from a cold state gives the same answer: reuse changes nothing.
    client.delete(f"/v1beta/{cache['name']}", headers=H)
    assert engine.prefix.pinned(handle) == 0 and engine.features.info()["pinned"] == 0
    assert engine.pin_budget.used == 0
    _forget_unpinned(engine)
    cold = _cache(client, f["uri"])
    engine.background.wait_idle(300)
    engine.unpin(cold["name"].split("/")[1])  # what it pinned goes back to the LRUs...
    _forget_unpinned(engine)  # ... and is forgotten
    before = dict(engine.stats)
    again = _ask(client, cold["name"], "What did the cat watch?")
    assert engine.stats["vision_calls"] > before["vision_calls"]  # nothing pinned: computed again
    assert again["candidates"][0]["content"] == answer["candidates"][0]["content"]


def test_beyond_the_budget_state_is_recomputed_not_pinned(app_for, photos):
    client, engine = app_for(cache_memory_bytes=1000)  # far below one image's features
    f = upload(client, _png(photos["coffee"]))
    cache = _cache(client, f["uri"])
    assert engine.background.wait_idle(300)
    assert engine.pin_budget.used == 0 and engine.prefix.pinned(cache["name"].split("/")[1]) == 0
    _forget_unpinned(engine)
    before = dict(engine.stats)
    answer = _ask(client, cache["name"], "What is in the cup?")
    assert answer["candidates"][0]["finishReason"] in ("STOP", "MAX_TOKENS")
    assert engine.stats["vision_calls"] > before["vision_calls"]


def test_implicit_reuse_reports_cached_tokens(app_for, photos):
    """No cachedContent: a prompt whose KV prefix the engine still holds reports that share as
    cachedContentTokenCount (Gemini 2.5's implicit caching); a cold prompt reports none."""
    client, engine = app_for()
    f = upload(client, _png(photos["astronaut"]))
    body = {"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": f["uri"], "mimeType": "image/png"}},
                                                    {"text": NOTES}]}],
            "generationConfig": {"maxOutputTokens": 2, "temperature": 0}}
    _forget_unpinned(engine)
    first = client.post(f"/v1beta/models/{MODEL}:generateContent", headers=H, json=body).json()["usageMetadata"]
    assert "cachedContentTokenCount" not in first
    body["contents"][0]["parts"][1]["text"] = NOTES + " Which birds?"
    second = client.post(f"/v1beta/models/{MODEL}:generateContent", headers=H, json=body).json()["usageMetadata"]
    assert 0 < second["cachedContentTokenCount"] < second["promptTokenCount"]
    assert second["cachedContentTokenCount"] > first["promptTokenCount"] * 0.8
