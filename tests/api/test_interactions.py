"""The Interactions API (issue 12, part 3) through the official google-genai SDK (`client.interactions`)
against a real `pollux serve --emulator`, then its error cases in-process.

The emulator answers with an account of the prompt it was given, so each test sees what an interaction
turned into: its system instruction, its media (by Files API uri or inline), and for a continuation the
stored turns before it.
"""

from __future__ import annotations

import base64
import json

from pathlib import Path

import httpx
import pytest

from tests.api.helpers import upload
from tests.clients.conftest import clients  # noqa: F401 - the pinned newer clients, installed on first use
from tests.clients.suite import PROJECT_PYTHON, case, run_driver
from tests.conftest import H, OTHER, ctx_of, png_bytes
from tests.fixtures.server import Server

MODEL = "gemini-2.5-flash"
URL = "/v1beta/interactions"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("data")) as s:
        yield s


def _client(server, key="test-key"):
    from google import genai
    from google.genai import types

    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))


@pytest.fixture(scope="module")
def genai_client(server):
    return _client(server)


def _status_error(fn):
    """The SDK's status error for a call that must fail (google.genai._interactions' classes)."""
    from google.genai._interactions import APIStatusError

    with pytest.raises(APIStatusError) as e:
        fn()
    return e.value


def test_text_input_reads_as_output_text_and_last_step(genai_client):
    it = genai_client.interactions.create(model=MODEL, input="Tell me a joke.", system_instruction="Be terse.",
                                          generation_config={"temperature": 0.2, "max_output_tokens": 200})
    assert it.status == "completed" and it.id and it.model == MODEL
    text = it.steps[-1].content[0].text
    assert it.output_text == text
    assert "system: Be terse." in text and "text: Tell me a joke." in text
    assert it.usage.total_input_tokens == 7  # ceil(15 / 4) + ceil(10 / 4): Gemini's ~4 characters a token
    assert it.usage.total_tokens == it.usage.total_input_tokens + it.usage.total_output_tokens
    assert [m.modality for m in it.usage.input_tokens_by_modality] == ["text"]


def test_max_output_tokens_ends_incomplete(genai_client):
    it = genai_client.interactions.create(model=MODEL, input="Long answer please.",
                                          generation_config={"max_output_tokens": 3})
    assert it.status == "incomplete" and len(it.output_text) <= 12


def test_streamed_events_carry_the_same_answer(genai_client):
    plain = genai_client.interactions.create(model=MODEL, input="Stream this.", store=False)
    events = list(genai_client.interactions.create(model=MODEL, input="Stream this.", stream=True, store=False))
    kinds = [e.event_type for e in events]
    assert kinds[0] == "interaction.created" and kinds[1] == "step.start"
    assert kinds[-2:] == ["step.stop", "interaction.completed"]
    deltas = [e for e in events if e.event_type == "step.delta"]
    assert len(deltas) > 1 and all(d.delta.type == "text" and d.index == 0 for d in deltas)
    assert "".join(d.delta.text for d in deltas) == plain.output_text
    done = events[-1].interaction
    assert done.status == "completed" and done.id == events[0].interaction.id
    assert done.usage.total_output_tokens == plain.usage.total_output_tokens


def test_uploaded_image_by_uri(genai_client, tmp_path):
    path = tmp_path / "red.png"
    path.write_bytes(png_bytes(32, 24))
    f = genai_client.files.upload(file=str(path))
    it = genai_client.interactions.create(model=MODEL, input=[
        {"type": "text", "text": "Describe the image."},
        {"type": "image", "uri": f.uri, "mime_type": "image/png"}])
    assert "text: Describe the image." in it.output_text
    assert "(original 32x24) from " + f.name in it.output_text
    tokens = {m.modality: m.tokens for m in it.usage.input_tokens_by_modality}
    assert tokens["image"] == 258


def _generate_content_image_tokens(server, data: bytes, level: str) -> int:
    r = httpx.post(f"{server.url}/v1beta/models/gemini-3-flash-preview:countTokens", headers=H, json={
        "contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode()},
                                 "mediaResolution": {"level": level}}, {"text": "What is it?"}]}]})
    assert r.status_code == 200, r.text
    return {d["modality"]: d["tokenCount"] for d in r.json()["promptTokensDetails"]}["IMAGE"]


def test_inline_image_with_per_item_resolution_counts_as_generate_content(genai_client, server):
    data = png_bytes(64, 48)
    counts = {}
    for level in ("low", "high"):
        it = genai_client.interactions.create(model="gemini-3-flash-preview", input=[
            {"type": "image", "data": base64.b64encode(data).decode(), "mime_type": "image/png", "resolution": level},
            {"type": "text", "text": "What is it?"}])
        assert "image" in it.output_text and "(original 64x48) from inline[0]" in it.output_text
        counts[level] = {m.modality: m.tokens for m in it.usage.input_tokens_by_modality}["image"]
        assert counts[level] == _generate_content_image_tokens(server, data, f"MEDIA_RESOLUTION_{level.upper()}")
    assert counts["low"] < counts["high"]


def test_previous_interaction_id_continues_the_stored_conversation(genai_client, server):
    first = genai_client.interactions.create(model=MODEL, input="My name is Ada.")
    second = genai_client.interactions.create(model=MODEL, input="What is my name?",
                                              previous_interaction_id=first.id)
    assert second.previous_interaction_id == first.id
    account = second.output_text
    # the stored turn and the model's stored answer come first, then the new input
    assert account.index("text: My name is Ada.") < account.index("model:") < account.index("What is my name?")
    third = genai_client.interactions.create(model=MODEL, input="And again?", previous_interaction_id=second.id,
                                             stream=True)
    text = "".join(e.delta.text for e in third if e.event_type == "step.delta")
    # exactly what generateContent answers for the whole conversation spelled out: the same prompt
    turns = ["My name is Ada.", first.output_text, "What is my name?", second.output_text, "And again?"]
    r = httpx.post(f"{server.url}/v1beta/models/{MODEL}:generateContent", headers=H, json={"contents": [
        {"role": "user" if i % 2 == 0 else "model", "parts": [{"text": t}]} for i, t in enumerate(turns)]})
    assert text == r.json()["candidates"][0]["content"]["parts"][0]["text"]

    got = genai_client.interactions.get(second.id)
    assert [s.type for s in got.steps] == ["user_input", "model_output"]
    assert got.steps[0].content[0].text == "What is my name?"
    assert got.output_text == second.output_text and got.status == "completed"
    assert [s.type for s in genai_client.interactions.get(second.id, include_input=False).steps] == ["model_output"]
    replay = list(genai_client.interactions.get(second.id, stream=True))
    assert [e.event_type for e in replay] == ["interaction.created", "step.start", "step.delta", "step.stop",
                                              "interaction.completed"]
    assert replay[2].delta.text == second.output_text and replay[-1].interaction.status == "completed"
    resumed = list(genai_client.interactions.get(second.id, stream=True, last_event_id=replay[2].event_id))
    assert [e.event_type for e in resumed] == ["step.stop", "interaction.completed"]


def test_delete_then_get_is_not_found(genai_client):
    it = genai_client.interactions.create(model=MODEL, input="Forget me.")
    assert genai_client.interactions.get(it.id).id == it.id
    genai_client.interactions.delete(it.id)
    assert _status_error(lambda: genai_client.interactions.get(it.id)).status_code == 404
    assert _status_error(lambda: genai_client.interactions.delete(it.id)).status_code == 404


def test_cancel_answers_that_only_background_interactions_can_be(genai_client):
    it = genai_client.interactions.create(model=MODEL, input="Done already.")
    err = _status_error(lambda: genai_client.interactions.cancel(it.id))
    assert err.status_code == 400 and "Only background interactions" in str(err)
    assert _status_error(lambda: genai_client.interactions.cancel("v1_nosuch")).status_code == 404


def test_store_false_is_not_retrievable_nor_continuable(genai_client):
    it = genai_client.interactions.create(model=MODEL, input="Off the record.", store=False)
    assert it.status == "completed" and it.output_text
    assert _status_error(lambda: genai_client.interactions.get(it.id)).status_code == 404
    err = _status_error(lambda: genai_client.interactions.create(model=MODEL, input="More?",
                                                                 previous_interaction_id=it.id))
    assert err.status_code == 404 and "store=false" in str(err)


def test_another_projects_interaction_looks_missing(genai_client, server):
    it = genai_client.interactions.create(model=MODEL, input="Mine.")
    other = _client(server, "other-key")
    assert _status_error(lambda: other.interactions.get(it.id)).status_code == 404
    assert _status_error(lambda: other.interactions.delete(it.id)).status_code == 404
    assert _status_error(lambda: other.interactions.create(model=MODEL, input="x", previous_interaction_id=it.id)
                         ).status_code == 404
    assert genai_client.interactions.get(it.id).id == it.id


def test_response_format_schema_gives_json(genai_client):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    it = genai_client.interactions.create(model=MODEL, input="Who?", response_format={
        "type": "text", "mime_type": "application/json", "schema": schema})
    assert json.loads(it.output_text) == {"name": "emulated", "age": 0}


def test_tools_agents_and_background_are_a_clear_400(genai_client):
    cases = [({"tools": [{"type": "google_search"}]}, "Tools"), ({"background": True}, "Background"),
             ({"response_format": {"type": "audio"}}, "text only")]
    for extra, words in cases:
        err = _status_error(lambda: genai_client.interactions.create(model=MODEL, input="x", **extra))
        assert err.status_code == 400 and words in str(err), str(err)
    err = _status_error(lambda: genai_client.interactions.create(agent="deep-research-pro-preview-12-2025",
                                                                 input="x"))
    assert err.status_code == 400 and "Agents are not supported" in str(err)


def test_stored_interactions_outlive_a_restart(tmp_path):
    with Server(tmp_path / "data") as s:
        first = httpx.post(s.url + URL, headers=H, json={"model": MODEL, "input": "Remember me."}).json()
    with Server(tmp_path / "data") as s:
        got = httpx.get(f"{s.url}{URL}/{first['id']}", headers=H)
        assert got.status_code == 200 and got.json()["steps"][-1] == first["steps"][-1]
        more = httpx.post(s.url + URL, headers=H, json={"model": MODEL, "input": "Still there?",
                                                        "previous_interaction_id": first["id"]})
        assert "text: Remember me." in more.json()["steps"][-1]["content"][0]["text"]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("interactions-media")
    (d / "red.png").write_bytes(png_bytes(40, 30))
    return d


def _release_python(release: str, request) -> str:
    if release == "pinned":
        return PROJECT_PYTHON
    return str(request.getfixturevalue("clients").venv_python)  # scripts/client-deps.sh, idempotent


@pytest.mark.parametrize("release", ["pinned", "newer"])
def test_each_sdk_release_reads_interactions_alike(release, request, server, media, tmp_path):
    """The same user code under the pinned google-genai and the client suite's newer release."""
    results = run_driver([_release_python(release, request), str(Path(__file__).with_name("interactions_driver.py"))],
                         server, media, tmp_path / "out.json")
    text = case(results, "text")
    assert text["status"] == "completed" and text["output_text"] == text["last_step_text"]
    assert "system: Terse." in text["output_text"] and text["total_tokens"] > 0
    stream = case(results, "stream")
    assert stream["kinds"][:2] == ["interaction.created", "step.start"]
    assert stream["kinds"][-2:] == ["step.stop", "interaction.completed"] and stream["final_status"] == "completed"
    assert stream["text"] == text["output_text"]
    images = case(results, "images")
    assert "(original 40x30) from " + images["file"] in images["by_uri"]
    assert "(original 40x30) from inline[0]" in images["inline"] and images["inline_tokens"]["image"] == 280
    talk = case(results, "conversation")
    assert talk["second"].index("My name is Ada.") < talk["second"].index("What is my name?")
    assert talk["got_steps"] == ["user_input", "model_output"] and talk["got_text"] == talk["second"]
    assert (talk["deleted_get"], talk["unstored_get"], talk["tools"]) == (404, 404, 400)


# ---- in-process: bad input is the error envelope, never a 5xx ----

def _post(client, body, headers=H):
    return client.post(URL, headers=headers, json=body)


def _error(r, http: int, code: str, words: str = "") -> dict:
    assert r.status_code == http, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == code and err["status"] and words.lower() in err["message"].lower(), err
    return err


@pytest.mark.parametrize("body, words", [
    ({"input": "x"}, "model is required"),
    ({"model": MODEL}, "input is required"),
    ({"model": MODEL, "input": 5}, "input must be"),
    ({"model": MODEL, "input": []}, "input must be"),
    ({"model": MODEL, "input": [{"type": "text"}]}, "text must be a string"),
    ({"model": MODEL, "input": [{"type": "sticker", "uri": "x"}]}, "not supported as input"),
    ({"model": MODEL, "input": [{"type": "image", "data": "!!!", "mime_type": "image/png"}]}, "not valid base64"),
    ({"model": MODEL, "input": [{"type": "image", "data": "AAAA"}]}, "mime_type is required"),
    ({"model": MODEL, "input": [{"type": "image"}]}, "exactly one of"),
    ({"model": MODEL, "input": [{"type": "image", "uri": "files/abc", "resolution": "huge"}]}, "resolution"),
    ({"model": MODEL, "input": [{"type": "text", "text": "a"}, {"type": "user_input", "content": []}]}, "mixes"),
    ({"model": MODEL, "input": [{"type": "user_input", "content": []}]}, "non-empty list"),
    ({"model": MODEL, "input": [{"type": "function_call", "name": "f"}]}, "not supported"),
    ({"model": MODEL, "input": "x", "frobnicate": 1}, "Unknown parameter"),
    ({"model": MODEL, "input": "x", "generation_config": {"top_k": 3}}, "Unknown parameter"),
    ({"model": MODEL, "input": "x", "generation_config": {"temperature": 9}}, "temperature"),
    ({"model": MODEL, "input": "x", "generation_config": {"speech_config": {}}}, "not supported"),
    ({"model": MODEL, "input": "x", "generation_config": "hot"}, "must be an object"),
    ({"model": MODEL, "input": "x", "system_instruction": ["a"]}, "must be a string"),
    ({"model": MODEL, "input": "x", "response_format": {"type": "text", "schema": {"type": "object"},
                                                        "mime_type": "text/plain"}}, "application/json"),
    ({"model": MODEL, "input": "x", "response_format": {"type": "text", "mime_type": "text/csv"}}, "mime_type"),
    ({"model": MODEL, "input": "x", "response_format": {"type": "text", "schema": {"type": "strange"}}}, "schema"),
    ({"model": MODEL, "input": "x", "response_modalities": ["image"]}, "text only"),
    ({"model": MODEL, "input": "x", "response_modalities": "audio"}, "text only"),
    ({"model": MODEL, "input": "x", "previous_interaction_id": 7}, "must be a string"),
    ({"model": MODEL, "input": "x", "continuation_token": "t"}, "continuation_token"),
    ({"model": MODEL, "input": "x", "cached_content": "cachedContents/a"}, "cached_content"),
])
def test_bad_input_is_invalid_request(client, body, words):
    _error(_post(client, body), 400, "invalid_request", words)


def test_other_errors_keep_their_status(client):
    _error(_post(client, {"model": "no-such-model-xyz", "input": "x"}), 404, "not_found")
    _error(_post(client, {"model": MODEL, "input": [{"type": "image", "uri": "files/nosuchfile"}]}), 403,
           "permission_denied")
    _error(_post(client, {"model": MODEL, "input": "x", "previous_interaction_id": "v1_missing"}), 404, "not_found")
    _error(_post(client, {"model": MODEL, "input": "x", "previous_interaction_id": "x" * 500}), 404, "not_found")
    _error(_post(client, {"model": MODEL, "input": "x"}, headers={}), 403, "permission_denied")
    _error(client.get(URL + "/" + "x" * 500, headers=H), 404, "not_found")
    r = client.post(URL, headers={**H, "Content-Type": "application/json"}, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = client.post(URL, headers=H, json=["a list"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


def test_thinking_level_is_checked_against_the_named_model(client):
    ok = _post(client, {"model": "gemini-3-flash-preview", "input": "x", "generation_config": {
        "thinking_level": "low", "thinking_summaries": "auto"}})
    assert ok.status_code == 200, ok.text
    _error(_post(client, {"model": "gemini-2.0-flash", "input": "x", "generation_config": {"thinking_level": "low"}}),
           400, "invalid_request", "Thinking level is not supported")


def test_older_turns_and_legacy_response_format_are_read(client):
    f = upload(client, png_bytes(16, 16))
    r = _post(client, {"model": MODEL, "input": [
        {"role": "user", "content": "Hi"}, {"role": "model", "content": [{"type": "text", "text": "Hello!"}]},
        {"role": "user", "content": [{"type": "image", "uri": f["uri"]}, {"type": "text", "text": "This?"}]}],
        "response_format": {"type": "object", "properties": {"k": {"type": "boolean"}}},
        "response_mime_type": "application/json"})
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["steps"][-1]["content"][0]["text"]) == {"k": True}


def _expire(client, iid: str) -> None:
    from sqlalchemy import update

    from pollux.files.interaction_store import interactions

    store = ctx_of(client).interactions
    with store.db.engine.begin() as c:
        c.execute(update(interactions).where(interactions.c.id == iid).values(expire_us=0))


def _expiry(client, iid: str) -> int:
    from sqlalchemy import select

    from pollux.files.interaction_store import interactions

    with ctx_of(client).interactions.db.engine.connect() as c:
        return c.execute(select(interactions.c.expire_us).where(interactions.c.id == iid)).scalar_one()


def test_retention_expires_and_continuing_extends_the_chain(client):
    first = _post(client, {"model": MODEL, "input": "one"}).json()
    second = _post(client, {"model": MODEL, "input": "two", "previous_interaction_id": first["id"]}).json()
    assert _expiry(client, first["id"]) == _expiry(client, second["id"])  # the chain lives as its newest turn
    assert _expiry(client, second["id"]) - _created_us(client, second["id"]) == 48 * 3600 * 1_000_000
    _expire(client, second["id"])
    assert client.get(f"{URL}/{second['id']}", headers=H).status_code == 404
    _error(_post(client, {"model": MODEL, "input": "x", "previous_interaction_id": second["id"]}), 404, "not_found")
    assert client.get(f"{URL}/{first['id']}", headers=H).status_code == 200
    _post(client, {"model": MODEL, "input": "purge"})  # a write purges expired rows
    with pytest.raises(Exception):
        _expiry(client, second["id"])


def _created_us(client, iid: str) -> int:
    from sqlalchemy import select

    from pollux.files.interaction_store import interactions

    with ctx_of(client).interactions.db.engine.connect() as c:
        return c.execute(select(interactions.c.create_us).where(interactions.c.id == iid)).scalar_one()


def test_interaction_ttl_setting(make_client):
    client = make_client(interaction_ttl_seconds=60)
    it = _post(client, {"model": MODEL, "input": "short-lived"}).json()
    assert _expiry(client, it["id"]) - _created_us(client, it["id"]) == 60_000_000


def test_streamed_engine_failure_is_an_error_event(client, monkeypatch):
    from pollux.errors import Unavailable

    async def failing(job):
        raise Unavailable("The engine went away.")
        yield  # pragma: no cover

    monkeypatch.setattr(ctx_of(client).generation, "stream", failing)
    r = _post(client, {"model": MODEL, "input": "x", "stream": True})
    assert r.status_code == 200
    events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    assert events[-1]["event_type"] == "error"
    assert events[-1]["error"] == {"code": "service_unavailable", "message": "The engine went away."}


def test_other_project_cannot_see_in_process(client):
    it = _post(client, {"model": MODEL, "input": "mine"}).json()
    _error(client.get(f"{URL}/{it['id']}", headers=OTHER), 404, "not_found")
    _error(client.delete(f"{URL}/{it['id']}", headers=OTHER), 404, "not_found")
    assert client.delete(f"{URL}/{it['id']}", headers=H).json() == {}
