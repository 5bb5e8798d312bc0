"""Each OpenAI dialect's request shape, against a small real HTTP server that plays that server's rules
(tests/fixtures/openai_servers.py DialectServer): the fields sent and left out, the JSON-schema spelling,
`n`, the tokenizer endpoint, and how the dialect is recognised. SGLang, Ollama, llama.cpp and LM Studio
are not installable here, so these are their documented rules, not the real servers; vLLM itself is
tested in test_remote_vllm.py."""

from __future__ import annotations

import threading

import pytest
from PIL import Image as PILImage

from pollux.catalog import ModelEntry
from pollux.engines import served_models
from pollux.engines.base import GenerationParams
from pollux.engines.remote import RemoteEngine
from pollux.errors import InvalidArgument
from pollux.prompt_types import Image, Prompt, Text, Turn
from tests.fixtures.openai_servers import DialectServer

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.fixture
def server(request):
    with DialectServer(request.param) as s:
        yield s


def _engine(server: DialectServer, settings, **options) -> RemoteEngine:
    entry = ModelEntry(id="remote", display_name="remote", description="", engine="openai", source=server.url, family="",
                       input_token_limit=4096, output_token_limit=256, options=options)
    engine = RemoteEngine(entry, settings)
    engine.load()
    return engine


def _prompt(image: bool = True) -> Prompt:
    segments = [Text("What is this?")]
    if image:
        segments.insert(0, Image(PILImage.new("RGB", (64, 48), (200, 10, 10)), (64, 48), cache_key="red"))
    return Prompt([Turn("user", segments)], system="Be brief.")


def _answer(engine: RemoteEngine, params: GenerationParams) -> list:
    return list(engine.generate(_prompt(), params, threading.Event()))


ALL = ["vllm", "sglang", "ollama", "llamacpp", "lmstudio"]


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_dialect_is_recognised_from_v1_models(server, engine_settings):
    (model,) = served_models.served(server.url)
    assert model["dialect"] == server.dialect
    assert _engine(server, engine_settings).dialect.name == server.dialect  # a catalog entry naming none learns it


def test_server_header_and_explicit_option(engine_settings):
    with DialectServer("llamacpp", owned_by="me") as s:  # an owned_by nobody knows; `Server: llama.cpp`
        assert _engine(s, engine_settings).dialect.name == "llamacpp"
    with DialectServer("ollama", owned_by="someuser") as s:  # Ollama's namespaced models: say it in the catalog
        assert _engine(s, engine_settings).dialect.name == "openai"
        engine = _engine(s, engine_settings, dialect="ollama", model="tiny-vlm")
        assert engine.dialect.name == "ollama"
        _answer(engine, GenerationParams(top_k=5))
        assert "top_k" not in s.chat_requests()[-1]
    with pytest.raises(InvalidArgument, match="Unknown OpenAI dialect 'tgi'"):
        _engine(s, engine_settings, dialect="tgi")


SAMPLING = GenerationParams(temperature=0.2, top_p=0.9, top_k=5, seed=7, max_output_tokens=4,
                            response_mime_type="application/json", response_schema=SCHEMA,
                            response_logprobs=True, logprobs=2)


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_request_shape_per_dialect(server, engine_settings):
    deltas = _answer(_engine(server, engine_settings), SAMPLING)
    assert deltas[-1].finish_reason == "MAX_TOKENS"
    (body,) = server.chat_requests()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["seed"] == 7 and body["temperature"] == 0.2 and body["max_tokens"] == 4
    image = body["messages"][1]["content"][0]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/jpeg;base64,")
    guided = {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA, "strict": True}}
    expected = {  # dialect: (top_k sent, the schema's fields, logprobs asked)
        "vllm": (True, {"response_format": guided}, True),
        "sglang": (True, {"response_format": guided}, True),
        "ollama": (False, {"response_format": guided}, True),  # its /v1 layer turns this into `format`
        "llamacpp": (True, {"json_schema": SCHEMA}, True),
        "lmstudio": (True, {"response_format": guided}, False),
    }[server.dialect]
    assert ("top_k" in body) is expected[0]
    assert {k: body[k] for k in ("response_format", "json_schema") if k in body} == expected[1]
    assert ("logprobs" in body and body.get("top_logprobs") == 2) is expected[2]
    tokens = [t for d in deltas for t in d.logprobs or []]
    assert bool(tokens) is expected[2]  # the server's logprobs reach the deltas


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_json_mode_without_a_schema(server, engine_settings):
    _answer(_engine(server, engine_settings), GenerationParams(response_mime_type="application/json"))
    (body,) = server.chat_requests()
    if server.dialect == "lmstudio":  # json_object is refused there: an open object schema instead
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    else:
        assert body["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_candidate_count(server, engine_settings):
    engine = _engine(server, engine_settings)
    if server.dialect in ("vllm", "sglang"):
        deltas = _answer(engine, GenerationParams(candidate_count=2, max_output_tokens=4))
        assert server.chat_requests()[0]["n"] == 2
        assert sorted({d.candidate for d in deltas if d.finish_reason}) == [0, 1]
        return
    with pytest.raises(InvalidArgument, match="generationConfig.candidateCount"):
        _answer(engine, GenerationParams(candidate_count=2))
    assert not server.chat_requests()  # refused before anything is sent


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_native_token_count_per_dialect(server, engine_settings):
    engine = _engine(server, engine_settings)
    count = engine.count_tokens(_prompt())
    paths = [path for path, _ in server.requests]
    if server.dialect == "vllm":  # chat messages, the image measured by the server (with and without it)
        assert paths and set(paths) == {"/tokenize"}
        assert all("messages" in body for _, body in server.requests)
        assert engine.native_count_source == "server"
    elif server.dialect == "sglang":  # text only: the image is estimated
        assert paths == ["/tokenize"] and isinstance(server.requests[0][1]["prompt"], str)
        assert engine.native_count_source == "server-text"
        assert count >= engine.options.image_tokens
    elif server.dialect == "llamacpp":  # its own chat template rendered, then tokenized
        assert paths == ["/apply-template", "/tokenize"]
        assert server.requests[1][1]["content"].endswith("<|assistant|>")
        assert engine.native_count_source == "server-text"
    else:  # Ollama, LM Studio: no tokenizer endpoint is asked
        assert paths == [] and engine.native_count_source == "estimate"
    text_only = engine.count_tokens(_prompt(image=False))
    assert count > text_only > 0


def test_generation_asks_the_tokenizer_only_near_the_context_limit(make_client, tmp_path):
    """A generation well inside the context is counted by the estimate (no /tokenize round trip before every
    request); a whole answer's header then carries the count the server reported in its usage. Past half the
    context, and for countTokens, the server counts."""
    from tests.conftest import H

    with DialectServer("vllm") as server:
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(f'[[models]]\nid = "remote"\nengine = "openai"\nsource = "{server.url}"\n'
                           f'input_token_limit = 4096\noptions = {{ model = "{server.model}" }}\n')
        client = make_client(emulator=False, catalog_file=catalog)
        body = {"contents": [{"parts": [{"text": "What is this?"}]}]}
        r = client.post("/v1beta/models/remote:generateContent", json=body, headers=H)
        assert r.status_code == 200, r.text
        assert (r.headers["x-pollux-native-token-source"], r.headers["x-pollux-native-prompt-tokens"]) == ("server", "10")
        r = client.post("/v1beta/models/remote:streamGenerateContent?alt=sse", json=body, headers=H)
        assert r.status_code == 200 and r.headers["x-pollux-native-token-source"] == "estimate"
        assert [path for path, _ in server.requests] == ["/v1/chat/completions"] * 2
        r = client.post("/v1beta/models/remote:countTokens", json=body, headers=H)
        assert r.status_code == 200 and r.headers["x-pollux-native-token-source"] == "server"
        assert server.requests[-1][0] == "/tokenize"
        near = {"contents": [{"parts": [{"text": "word " * 1700}]}]}  # ~2,100 estimated tokens of 4,096
        before = len(server.requests)
        r = client.post("/v1beta/models/remote:streamGenerateContent?alt=sse", json=near, headers=H)
        assert r.status_code == 200 and r.headers["x-pollux-native-token-source"] == "server"
        assert [path for path, _ in server.requests[before:]] == ["/tokenize", "/v1/chat/completions"]
