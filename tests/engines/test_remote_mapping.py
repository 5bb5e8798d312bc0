"""The OpenAI mapping without a server: prompt → messages, config → request fields, SSE → deltas, boxes,
catalog entries (the servers themselves are exercised in test_remote_vllm.py / test_remote_tfserve.py)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from PIL import Image as PILImage

from pollux.engines import openai_mapping as m
from pollux.engines.base import GenerationParams
from pollux.prompt_types import FunctionCall, FunctionResponse, Image, Prompt, Text, Turn


def _video_prompt() -> Prompt:
    frame = PILImage.new("RGB", (64, 48), (10, 20, 30))
    segments = []
    for t in (0.0, 1.0):
        segments += [Text(f"00:0{int(t)}", modality="VIDEO"),
                     Image(frame, (640, 480), modality="VIDEO", timestamp=t, source="files/v"),
                     Text(f"Speech [00:0{int(t)}-00:0{int(t) + 1}]: word {int(t)}", modality="AUDIO")]
    segments.append(Text("What is said at 00:01?"))
    return Prompt([Turn("user", segments)], system="Be brief.")


def test_video_frames_interleaved_with_labels_and_transcript():
    msgs = m.messages(_video_prompt())
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    kinds = [(c["type"], c.get("text", "")) for c in msgs[1]["content"]]
    # Each MM:SS label its own text part, right before its frame; the transcript after the frame.
    assert kinds == [("text", "00:00"), ("image_url", ""), ("text", "Speech [00:00-00:01]: word 0"),
                     ("text", "00:01"), ("image_url", ""),
                     ("text", "Speech [00:01-00:02]: word 1\nWhat is said at 00:01?")]
    url = msgs[1]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    import base64
    import io

    sent = PILImage.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (64, 48)  # the prepared image as it is (box conventions refer to it)


def test_data_urls_are_encoded_once_per_cache_key():
    cache = m.DataURLCache(max_bytes=10_000)
    first = Image(PILImage.new("RGB", (32, 32), (1, 2, 3)), (32, 32), cache_key="a")
    assert cache(first) is cache(Image(PILImage.new("RGB", (32, 32)), (32, 32), cache_key="a"))
    for k in range(50):
        cache(Image(PILImage.new("RGB", (32, 32), (k, k, k)), (32, 32), cache_key=f"k{k}"))
    assert cache.size <= 10_000  # bounded


def test_history_with_function_calls_and_results():
    prompt = Prompt([Turn("user", [Text("Weather in Paris and Rome?")]),
                     Turn("model", [FunctionCall("get_weather", {"city": "Paris"}),
                                    FunctionCall("get_weather", {"city": "Rome"}, id="r1")]),
                     Turn("user", [FunctionResponse("get_weather", {"t": 20}),
                                   FunctionResponse("get_weather", {"t": 25}, id="r1")])])
    msgs = m.messages(prompt)
    assert msgs[1]["role"] == "assistant" and msgs[1]["content"] is None
    ids = [c["id"] for c in msgs[1]["tool_calls"]]
    assert json.loads(msgs[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert [x["role"] for x in msgs[2:]] == ["tool", "tool"]
    assert [x["tool_call_id"] for x in msgs[2:]] == ids  # results matched to their calls


@pytest.mark.parametrize("config, choice", [
    ({"mode": "AUTO"}, "auto"), ({"mode": "NONE"}, "none"), ({"mode": "ANY"}, "required"),
    ({"mode": "ANY", "allowed_function_names": ["b"]}, "required"),
])
def test_tool_config_modes(config, choice):
    params = GenerationParams(tools=[{"name": "a", "description": "", "parameters": {"type": "object"}},
                                     {"name": "b", "description": "B", "parameters": {"type": "object"}}],
                              tool_config=config)
    out = m.tools_json(params)
    assert out["tool_choice"] == choice
    if config.get("allowed_function_names"):
        assert [t["function"]["name"] for t in out["tools"]] == ["b"]


def test_generation_config_mapped():
    params = GenerationParams(temperature=0.2, top_p=0.9, top_k=5, seed=7, max_output_tokens=33,
                              stop_sequences=["END"], candidate_count=3, presence_penalty=0.5,
                              frequency_penalty=0.25, response_logprobs=True, logprobs=2,
                              response_mime_type="application/json",
                              response_schema={"type": "object", "properties": {"a": {"type": "integer"}}})
    body = m.request_body(Prompt([Turn("user", [Text("x")])]), params, "srv-model", extra={"ignore_eos": True})
    assert {k: body[k] for k in ("model", "temperature", "top_p", "top_k", "seed", "max_tokens", "stop", "n",
                                 "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs")} == {
        "model": "srv-model", "temperature": 0.2, "top_p": 0.9, "top_k": 5, "seed": 7, "max_tokens": 33,
        "stop": ["END"], "n": 3, "presence_penalty": 0.5, "frequency_penalty": 0.25, "logprobs": True,
        "top_logprobs": 2}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["response_format"]["json_schema"]["schema"] == params.response_schema
    assert body["ignore_eos"] is True
    enum = m.response_format(GenerationParams(response_mime_type="text/x.enum",
                                              response_schema={"type": "string", "enum": ["a", "b"]}))
    assert enum["response_format"]["json_schema"]["schema"] == {"type": "string", "enum": ["a", "b"]}
    assert m.enum_answer('"b"') == "b"


def test_stream_folding_finish_reasons_and_usage():
    state = m.StreamState(candidates=2)
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 1, "delta": {"content": "Yo"}, "finish_reason": "length"}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}},
    ]
    deltas = [d for c in chunks for d in state.feed(c)]
    assert [(d.candidate, d.text) for d in deltas] == [(0, "Hel"), (1, "Yo"), (0, "lo")]
    final = state.finish()
    assert [(d.candidate, d.finish_reason) for d in final] == [(0, "STOP"), (1, "MAX_TOKENS")]
    assert sum(d.output_tokens for d in final) == 4 and state.prompt_tokens == 9


def test_tool_call_stream_and_malformed_answers():
    state = m.StreamState()
    state.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "c1", "function": {"name": "get_weather", "arguments": '{"ci'}}]}}]})
    state.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}, "finish_reason": "tool_calls"}]})
    (last,) = state.finish()
    assert last.finish_reason == "STOP"
    assert last.function_calls == [FunctionCall("get_weather", {"city": "Oslo"}, "c1")]
    with pytest.raises(m.MalformedAnswer):
        m.StreamState().feed({"choices": [{"index": 3, "delta": {"content": "x"}}]})
    with pytest.raises(m.MalformedAnswer):
        m.SSEReader().feed(b"data: {not json\n")
    bad = m.StreamState()
    bad.feed({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f",
                                                                                       "arguments": "{"}}]}}]})
    with pytest.raises(m.MalformedAnswer):
        bad.finish()


def test_rejected_field_names_the_gemini_field():
    assert m.rejected_field({}, "max_tokens must be at most 2000") == "generationConfig.maxOutputTokens"
    assert m.rejected_field({"detail": [{"loc": ["body", "top_k"]}]}, "bad") == "generationConfig.topK"
    assert m.rejected_field({}, "something else") is None


def test_qwen2_5_vl_boxes_against_the_image_as_sent(tmp_path):
    from pollux.catalog import ModelEntry
    from pollux.engines.remote import RemoteEngine, smart_resize
    from pollux.settings import Settings

    assert smart_resize((640, 480)) == (644, 476)
    entry = ModelEntry(id="q", display_name="q", description="", engine="openai", source="http://x/v1",
                       family="qwen2_5_vl", options={"model": "m"})
    engine = RemoteEngine(entry, Settings(data_dir=tmp_path))
    image = PILImage.new("RGB", (640, 480))
    prompt = Prompt([Turn("user", [Image(image, (1280, 960)), Text("Return a bounding box for the cat.")])])
    params = GenerationParams()
    assert engine._wants_boxes(prompt, params)
    # Qwen2.5-VL answers pixels of its resized input (644x476): the middle quarter of the image.
    answer = '[{"bbox_2d": [161, 119, 483, 357], "label": "cat"}]'
    assert engine._post_process(answer, prompt, params) == "[250, 250, 750, 750]"
    qwen3 = RemoteEngine(ModelEntry(**{**vars(entry), "family": "qwen3_vl"}), Settings(data_dir=tmp_path))
    assert qwen3._post_process('{"bbox_2d": [250, 250, 750, 750], "label": "cat"}', prompt,
                               params) == "[250, 250, 750, 750]"
    plain = RemoteEngine(ModelEntry(**{**vars(entry), "family": ""}), Settings(data_dir=tmp_path))
    assert not plain._wants_boxes(prompt, params)  # plain conventions: the JSON answer passes through


def test_catalog_entries_and_engine_url(tmp_path):
    from pollux.catalog import Catalog
    from pollux.engines.served_models import entry_id, family_of, with_engine_url
    from pollux.settings import Settings

    toml = tmp_path / "c.toml"
    toml.write_text('''[[models]]
id = "qwen-vllm"
engine = "openai"
source = ["http://a:8000/v1", "http://b:8000/v1"]
family = "qwen2_5_vl"
aliases = ["gemini-2.5-flash"]
input_token_limit = 32768
options = { model = "Qwen/Qwen2.5-VL-7B-Instruct", api_key_env = "VLLM_API_KEY", max_images = 64 }
''')
    catalog = Catalog.from_file(toml)
    entry = catalog.resolve("gemini-2.5-flash").entry
    assert entry.id == "qwen-vllm" and entry.source == ("http://a:8000/v1", "http://b:8000/v1")
    assert entry.display_name == "qwen-vllm"
    assert family_of("Qwen/Qwen2.5-VL-7B-Instruct") == "qwen2_5_vl" and family_of("llama3") == ""
    assert entry_id("Qwen/Qwen2.5-VL-7B-Instruct", set()) == "qwen2.5-vl-7b-instruct"
    assert entry_id("/models/llava", {"llava"}) == "llava-2"
    # An engine that is down at start-up still gets an entry, named after --engine-model.
    settings = Settings(data_dir=tmp_path, engine_url="http://127.0.0.1:9/v1", engine_model="org/my-model")
    remote = with_engine_url(Catalog(), settings).resolve("gemini-2.0-flash").entry
    assert (remote.id, remote.engine, remote.options["model"]) == ("my-model", "openai", "org/my-model")
    assert settings.default_model == "my-model"


def test_sse_reader_joins_lines_split_across_reads():
    reader = m.SSEReader()
    assert reader.feed(b'data: {"a": ') == []
    assert reader.feed(b'1}\n\n: keep-alive\ndata: {"b": 2}\r\n\ndata: [DO') == [{"a": 1}, {"b": 2}]
    assert reader.feed(b"NE]\n\n") == [] and reader.done


def test_deltas_of_one_read_are_merged_per_candidate():
    from pollux.engines.base import Delta, TokenLogprob

    a, b = TokenLogprob("a", -0.1), TokenLogprob("b", -0.2)
    out = m.merged([Delta("a", 0, output_tokens=1, logprobs=[a]), Delta("x", 1, output_tokens=1),
                    Delta("b", 0, output_tokens=2, logprobs=[b])])
    assert [(d.text, d.candidate, d.output_tokens) for d in out] == [("ab", 0, 2), ("x", 1, 1)]
    assert out[0].logprobs == [a, b] and out[1].logprobs is None


def test_logprobs_of_a_chunk():
    raw = {"content": [{"token": "hi", "logprob": -0.5, "top_logprobs": [{"token": "hi", "logprob": -0.5},
                                                                          {"token": "yo", "logprob": None}]}]}
    (t,) = m.token_logprobs(raw)
    assert (t.token, t.logprob, t.top) == ("hi", -0.5, [("hi", -0.5), ("yo", -9999.0)])
    with pytest.raises(m.MalformedAnswer):
        m.token_logprobs({"content": [{"logprob": -1}]})
    state = m.StreamState()
    (d,) = state.feed({"choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": raw}]})
    assert d.logprobs == [t]


@pytest.mark.parametrize("url", [
    "data:image/jpeg;base64," + base64.b64encode(os.urandom(3000)).decode(),
    "data:image/png;base64,AAAA",
    'data:image/png;base64,AA"AA',  # needs escaping
    "data:image/png;base64,AA\u00e9A",
    "https://example.com/a.png",
])
def test_request_body_reads_back_as_sent(url):
    body = {"model": "m", "stream": True, "max_tokens": 2**70, "messages": [  # beyond 64 bits: the stdlib writes it
        {"role": "system", "content": 'sys "q" \u00e9 \u0001 \U0001F600'},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                                     {"type": "text", "text": "line\nbreak \\ back"},
                                     {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}]}]}
    raw = m.encode_body(body)
    assert json.loads(raw) == body
    del body["max_tokens"]
    assert json.loads(m.encode_body(body)) == body  # orjson's path
    body["messages"][0]["content"] = "lone \ud800"  # JSON may spell one (\\ud800); orjson cannot write it
    assert json.loads(m.encode_body(body)) == body


def _sent(prompt: Prompt) -> tuple[str, bytes]:
    url = m.messages(prompt)[0]["content"][0]["image_url"]["url"]
    head, data = url.split(",", 1)
    return head, base64.b64decode(data)


def _prepared_prompt(data: bytes, mime: str, tmp_path) -> Prompt:
    from pollux.media import pipeline
    from pollux.prompt import assemble
    from pollux.prompt_types import MediaPart, RequestTurn, TextPart
    from pollux.settings import Settings

    from pollux.engines.base import Capabilities

    prepared = pipeline.prepare_inline(mime, data, Settings(data_dir=tmp_path), tmp_path)
    return assemble([RequestTurn("user", [MediaPart(prepared, mime, "inline[0]"), TextPart("What is this?")])], None,
                    capabilities=Capabilities(mime_types=frozenset({"image/*"})))


def _file(image: PILImage.Image, fmt: str, **save) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format=fmt, **save)
    return buf.getvalue()


def test_an_image_sent_at_its_own_size_goes_as_it_came(tmp_path):
    """No re-encoding (no generation loss, no bytes added, the server's decode as the client's own request's)
    where the file's bytes show exactly what would be sent: JPEG or PNG, RGB or grey, no EXIF rotation."""
    photo = PILImage.effect_noise((640, 480), 60).convert("RGB")
    for data, mime in ((_file(photo, "JPEG", quality=90), "image/jpeg"), (_file(photo.convert("L"), "PNG"), "image/png")):
        head, sent = _sent(_prepared_prompt(data, mime, tmp_path))
        assert head == f"data:{mime};base64" and sent == data


@pytest.mark.parametrize("case", ["rotated", "alpha", "downscaled"])
def test_other_images_are_re_encoded_as_they_are_seen(tmp_path, case):
    import io

    photo = PILImage.effect_noise((640, 480), 60).convert("RGB")
    if case == "rotated":  # EXIF orientation 6: the server would not rotate it as we do
        exif = PILImage.Exif()
        exif[0x0112] = 6
        data, mime, size = _file(photo, "JPEG", exif=exif), "image/jpeg", (480, 640)
    elif case == "alpha":  # composited on white here; a server might use black
        data, mime, size = _file(photo.convert("RGBA"), "PNG"), "image/png", (640, 480)
    else:  # a large photo is sent at its mediaResolution size, not its own
        data, mime, size = _file(photo.resize((4000, 3000)), "JPEG"), "image/jpeg", None
    head, sent = _sent(_prepared_prompt(data, mime, tmp_path))
    assert head == "data:image/jpeg;base64" and sent != data
    got = PILImage.open(io.BytesIO(sent))
    assert got.size == size if size else max(got.size) < 4000
