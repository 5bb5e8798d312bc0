"""The transformers engine on tiny random-weight SmolVLM2 and Qwen2.5-VL checkpoints (real code paths)."""

from __future__ import annotations

import json
import re
import threading

import jsonschema
import pytest

from pollux.engines.base import GenerationParams
from pollux.errors import Cancelled
from pollux.prompt import assemble
from pollux.prompt_types import BoxRequest, Image, MediaPart, Prompt, RequestTurn, Text, TextPart, Turn
from tests.engines.prepared import make_video

ENGINES = ["smol_engine", "qwen_engine"]
SCHEMA = {"type": "object",
          "properties": {"animal": {"type": "string", "enum": ["cat", "dog", "bird"]}, "cute": {"type": "boolean"}},
          "required": ["animal", "cute"]}


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue(request.param)


def run(engine, prompt, cancel=None, **params):
    return list(engine.generate(prompt, GenerationParams(**params), cancel or threading.Event()))


def text_of(deltas, candidate=0):
    return "".join(d.text for d in deltas if d.candidate == candidate)


def one_image(photos, ask="Describe this image."):
    return Prompt([Turn("user", [Image(photos["astronaut"], (1280, 960)), Text(ask)])], system="Be concise.")


def test_plain_generation_counts_and_finishes(engine, photos):
    prompt = one_image(photos)
    deltas = run(engine, prompt, max_output_tokens=12)
    assert deltas[-1].finish_reason in ("STOP", "MAX_TOKENS")
    assert all(d.finish_reason is None for d in deltas[:-1])
    assert 1 <= deltas[-1].output_tokens <= 12
    # The native count is what the model really receives.
    assert engine.count_tokens(prompt) == engine.format.encode(prompt).length
    assert engine.count_text("hello world") >= 2


def test_streaming_first_delta_leaves_before_generation_ends(engine, photos):
    cancel = threading.Event()
    stream = engine.generate(one_image(photos), GenerationParams(max_output_tokens=40, temperature=0.0), cancel)
    first = next(d for d in stream if d.text)
    assert first.finish_reason is None and first.output_tokens < 40
    cancel.set()  # the client goes away: generation stops between two tokens
    with pytest.raises(Cancelled):
        list(stream)
    # The engine is free again afterwards.
    assert run(engine, one_image(photos), max_output_tokens=2)[-1].finish_reason


def test_max_tokens_and_greedy_determinism(engine, photos):
    a = run(engine, one_image(photos), max_output_tokens=6, temperature=0.0)
    b = run(engine, one_image(photos), max_output_tokens=6, temperature=0.0)
    assert text_of(a) == text_of(b)
    assert a[-1].finish_reason == "MAX_TOKENS" and a[-1].output_tokens == 6


def test_seed_reproduces_sampling_and_candidates(engine, photos):
    params = dict(max_output_tokens=10, temperature=1.0, top_p=0.95, top_k=40, seed=1234, candidate_count=2)
    a, b = run(engine, one_image(photos), **params), run(engine, one_image(photos), **params)
    assert [text_of(a, i) for i in (0, 1)] == [text_of(b, i) for i in (0, 1)]
    assert [d.candidate for d in a if d.finish_reason] == [0, 1]
    # Candidates share one prefill (a copied KV cache): the first equals a lone candidate with that seed.
    assert text_of(a, 0) == text_of(run(engine, one_image(photos), **{**params, "candidate_count": 1}))
    others = {text_of(run(engine, one_image(photos), **{**params, "seed": s, "candidate_count": 1})) for s in range(4)}
    assert len(others) > 1  # different seeds, different samples


def test_stop_sequence_cuts_before_it(engine, photos):
    full = text_of(run(engine, one_image(photos), max_output_tokens=30, temperature=0.0))
    clean = re.sub(r"[^\w ]", "", full)
    candidates = [full[i:i + 2] for i in range(3, len(full) - 2) if full[i:i + 2] in clean and full[i:i + 2].strip()]
    assert candidates, full
    stop = candidates[0]
    deltas = run(engine, one_image(photos), max_output_tokens=30, temperature=0.0, stop_sequences=[stop])
    assert text_of(deltas) == full[:full.index(stop)]
    assert deltas[-1].finish_reason == "STOP"


def test_multi_image(engine, photos):
    prompt = Prompt([Turn("user", [Text("Write an advertising jingle for the product in the first image, "
                                        "solving the problems in the other two."),
                                   Image(photos["coffee"], (900, 600)), Image(photos["chelsea"], (450, 600)),
                                   Image(photos["astronaut"], (512, 384))])])
    encoded = engine.format.encode(prompt)
    assert len(encoded.input_sizes) == 3
    assert engine.count_tokens(prompt) == encoded.length
    assert run(engine, prompt, max_output_tokens=5)[-1].finish_reason


def test_multi_turn_history_uses_the_chat_template(engine, photos):
    prompt = Prompt([Turn("user", [Image(photos["coffee"], (900, 600)), Text("What is this?")]),
                     Turn("model", [Text("A cup of coffee.")]),
                     Turn("user", [Text("Is it hot?")])], system="You are terse.")
    rendered = engine.format.text(prompt)
    assert rendered.index("What is this?") < rendered.index("A cup of coffee.") < rendered.index("Is it hot?")
    assert "You are terse." in rendered
    assert ("Assistant: A cup of coffee." in rendered) or ("<|im_start|>assistant\nA cup of coffee." in rendered)
    assert run(engine, prompt, max_output_tokens=3)[-1].finish_reason


def test_video_with_timestamps_and_transcript(engine, tmp_path):
    video = make_video(tmp_path / "video", seconds=5)
    transcript = [{"start": 1.2, "end": 2.8, "text": "the yellow square moves"}]
    turns = [RequestTurn("user", [MediaPart(video, "video/mp4", "files/v"),
                                  TextPart("What happens at 00:03? Transcribe the audio, giving timestamps. "
                                           "Also provide visual descriptions.")])]
    prompt = assemble(turns, None, capabilities=engine.capabilities, token_budget=engine.entry.input_token_limit,
                      count_tokens=engine.count_tokens, transcribe=lambda audio: transcript)
    rendered = engine.format.text(prompt)
    for t in range(5):
        assert f"00:0{t}" in rendered
    assert "Speech [00:01-00:02]: the yellow square moves" in rendered
    assert rendered.index("00:01:") < rendered.index("the yellow square") < rendered.index("00:02:")
    if engine.entry.family == "smolvlm":  # SmolVLM2's own video wording
        assert "You are provided the following series of five frames" in rendered
        assert "\nFrame from 00:03:" in rendered
    assert engine.count_tokens(prompt) == engine.format.encode(prompt).length
    assert run(engine, prompt, max_output_tokens=4)[-1].finish_reason


def test_video_is_thinned_to_the_model_budget(engine, tmp_path):
    video = make_video(tmp_path / "long", seconds=20, with_audio=False)
    turns = [RequestTurn("user", [MediaPart(video, "video/mp4", "files/v"), TextPart("What is at 00:17?")])]
    full = engine.count_tokens(assemble(turns, None, capabilities=engine.capabilities))
    budget = full // 3
    prompt = assemble(turns, None, capabilities=engine.capabilities, token_budget=budget,
                      count_tokens=engine.count_tokens)
    kept = [im.timestamp for im in prompt.images()]
    assert engine.count_tokens(prompt) <= budget and 17.0 in kept and len(kept) < 20


@pytest.mark.parametrize("seed", [0, 1])
def test_json_schema_output_parses_and_validates(engine, photos, seed):
    deltas = run(engine, one_image(photos, "Which animal is this? Answer in JSON."), max_output_tokens=200,
                 temperature=1.0, seed=seed, response_mime_type="application/json", response_schema=SCHEMA)
    assert deltas[-1].finish_reason == "STOP", text_of(deltas)
    value = json.loads(text_of(deltas))
    jsonschema.validate(value, SCHEMA)


def test_enum_output(engine, photos):
    schema = {"type": "string", "enum": ["percussion", "string", "woodwind"]}
    deltas = run(engine, one_image(photos, "What kind of instrument?"), max_output_tokens=20,
                 response_mime_type="text/x.enum", response_schema=schema)
    assert text_of(deltas) in schema["enum"]


def test_box_request_answers_in_gemini_convention(engine, photos):
    prompt = Prompt([Turn("user", [Text("Return a bounding box for the piranha. \n [ymin, xmin, ymax, xmax]"),
                                   Image(photos["coffee"], (900, 600))])], boxes=BoxRequest(("piranha",)))
    answer = text_of(run(engine, prompt))
    m = re.fullmatch(r"\[(\d+), (\d+), (\d+), (\d+)\]", answer)
    assert m, answer
    ymin, xmin, ymax, xmax = map(int, m.groups())
    assert 0 <= ymin <= ymax <= 1000 and 0 <= xmin <= xmax <= 1000
    schema = {"type": "array", "items": {"type": "object", "properties": {"box_2d": {"type": "array"},
                                                                          "label": {"type": "string"}}}}
    deltas = run(engine, prompt, response_mime_type="application/json", response_schema=schema)
    items = json.loads(text_of(deltas))
    assert items[0]["label"] == "piranha" and len(items[0]["box_2d"]) == 4
    assert deltas[-1].finish_reason == "STOP"


def test_qwen_native_grounding_converts_from_its_resized_input(qwen_engine, photos, monkeypatch):
    from pollux.engines.base import Delta

    image = photos["coffee"]  # 300x200, resized by the processor to a multiple of 28
    seen = {}

    def native_answer(prepared, params, cancel):
        w, h = prepared.input_sizes[0]
        seen["size"] = (w, h)
        box = [w // 4, h // 2, w // 2, h]  # pixels on the model's input
        yield Delta('```json\n[{"bbox_2d": ' + json.dumps(box) + ', "label": "cup"}]\n```', finish_reason="STOP")

    monkeypatch.setattr(qwen_engine, "_candidates", native_answer)
    prompt = Prompt([Turn("user", [Image(image, (900, 600)), Text("Give me a bounding box for the cup.")])],
                    boxes=BoxRequest(("cup",)))
    answer = "".join(d.text for d in qwen_engine.generate(prompt, GenerationParams(), threading.Event()))
    w, h = seen["size"]
    assert (w, h) != image.size
    expected = [round(h // 2 / h * 1000), round(w // 4 / w * 1000), 1000, round(w // 2 / w * 1000)]
    assert answer == "[" + ", ".join(map(str, expected)) + "]"
