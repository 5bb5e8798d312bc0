"""The OpenVINO engine on the tiny random-weight SmolVLM2 checkpoint, converted offline for real.

fp32 must give the transformers engine's tokens exactly; int8 must stream valid output; vision
features and prompt prefixes must be computed once (counted through the engine's stats), also when
an image is uploaded through the API and asked about right after.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from pathlib import Path

import jsonschema
import pytest

pytest.importorskip("openvino")
pytest.importorskip("optimum.intel")

from pollux.engines.base import GenerationParams  # noqa: E402
from pollux.errors import Cancelled  # noqa: E402
from pollux.prompt import assemble  # noqa: E402
from pollux.prompt_types import Image, MediaPart, Prompt, RequestTurn, Text, TextPart, Turn  # noqa: E402
from tests.engines.prepared import make_video  # noqa: E402

SCHEMA = {"type": "object",
          "properties": {"animal": {"type": "string", "enum": ["cat", "dog", "bird"]}, "cute": {"type": "boolean"}},
          "required": ["animal", "cute"]}


def _entry(source: Path, weights: str, model_id: str = "tiny-smolvlm-ov", family: str = "smolvlm", **options):
    from pollux.catalog import ModelEntry

    return ModelEntry(id=model_id, display_name=model_id, description="tiny test model", engine="openvino",
                      source=str(source), family=family, input_token_limit=4096, output_token_limit=256,
                      options={"weights": weights, **options})


@pytest.fixture(scope="session")
def ov_settings(tmp_path_factory):
    from pollux.settings import Settings

    return Settings(data_dir=tmp_path_factory.mktemp("ov-data"), transcribe=False)


@pytest.fixture(scope="session")
def ov_fp32(tiny_smolvlm, ov_settings):
    from pollux.engines.openvino import OpenVINOEngine

    engine = OpenVINOEngine(_entry(tiny_smolvlm, "fp32"), ov_settings)
    engine.load()
    assert engine.runtime.name == "openvino", engine.fallback_reason
    return engine


@pytest.fixture(scope="session")
def ov_int8(tiny_smolvlm, ov_settings, ov_fp32):  # after fp32: quantized from its cached IR, no second export
    from pollux.engines.openvino import OpenVINOEngine

    engine = OpenVINOEngine(_entry(tiny_smolvlm, "int8"), ov_settings)
    engine.load()
    assert engine.runtime.name == "openvino", engine.fallback_reason
    return engine


def run(engine, prompt, cancel=None, **params):
    return list(engine.generate(prompt, GenerationParams(**params), cancel or threading.Event()))


def text_of(deltas, candidate=0):
    return "".join(d.text for d in deltas if d.candidate == candidate)


def steps(deltas):
    return [(d.candidate, d.text, d.output_tokens, d.finish_reason) for d in deltas]


def one_image(photos, ask="Describe this image.", name="astronaut", system="Be concise."):
    image = photos[name]
    return Prompt([Turn("user", [Image(image, (1280, 960), source=f"files/{name}",
                                       cache_key=f"{name}-sha:{image.size[0]}x{image.size[1]}"), Text(ask)])],
                  system=system)


def video_prompt(engine, folder: Path, ask: str, seconds: int = 5, sha: str = "v" * 64):
    video = make_video(folder, seconds=seconds, with_audio=False)
    video.sha256 = sha
    turns = [RequestTurn("user", [MediaPart(video, "video/mp4", "files/v"), TextPart(ask)])]
    return assemble(turns, None, capabilities=engine.capabilities, token_budget=engine.entry.input_token_limit,
                    count_tokens=engine.count_tokens)


# ---------------------------------------------------------------------------------- conversion

def test_conversion_is_cached_and_keyed(ov_fp32, ov_int8, tiny_smolvlm, ov_settings, monkeypatch):
    from pollux.engines import ov_convert

    assert ov_convert.is_complete(ov_fp32.converted) and ov_convert.is_complete(ov_int8.converted)
    assert ov_fp32.converted != ov_int8.converted
    assert ov_fp32.converted.parent == ov_int8.converted.parent
    assert not list(ov_fp32.converted.parent.glob(".tmp-*"))
    monkeypatch.setattr(ov_convert, "convert", lambda *a, **k: pytest.fail("converted again"))
    assert ov_convert.ensure_converted(ov_int8.entry, ov_settings, tiny_smolvlm) == ov_int8.converted
    int4 = _entry(tiny_smolvlm, "int4")
    assert ov_convert.converted_dir(int4, ov_settings, tiny_smolvlm) not in (ov_fp32.converted, ov_int8.converted)
    # int8 applies to the language model; the compute-bound vision encoder keeps fp32 weights by default
    size = lambda folder, name: (folder / f"openvino_{name}_model.bin").stat().st_size  # noqa: E731
    assert size(ov_int8.converted, "language") < size(ov_fp32.converted, "language") / 2
    assert size(ov_int8.converted, "vision_embeddings") == size(ov_fp32.converted, "vision_embeddings")


def test_interrupted_conversion_is_never_used(tmp_path, monkeypatch):
    from pollux.catalog import ModelEntry
    from pollux.engines import ov_convert
    from pollux.settings import Settings

    source = tmp_path / "src"
    source.mkdir()
    (source / "config.json").write_text("{}")
    (source / "model.safetensors").write_bytes(b"0" * 10)
    settings = Settings(data_dir=tmp_path / "data")
    entry = ModelEntry(id="m", display_name="m", description="", engine="openvino", source=str(source),
                       family="smolvlm", options={"weights": "fp16"})
    calls = []

    def interrupted(src, out, mode, quantization, progress, base=None, vision="fp32"):
        (out / "openvino_language_model.xml").write_text("half")
        raise KeyboardInterrupt  # e.g. Ctrl-C during export

    monkeypatch.setattr(ov_convert, "convert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ov_convert.ensure_converted(entry, settings, source)
    final = ov_convert.converted_dir(entry, settings, source)
    assert not final.exists() and not list(final.parent.glob(".tmp-*"))

    def crashed(src, out, mode, quantization, progress, base=None, vision="fp32"):
        (out / "openvino_language_model.xml").write_text("half")
        (final.parent / f".tmp-{final.name}-999-dead").mkdir()  # a killed process leaves this behind
        raise RuntimeError("boom")

    monkeypatch.setattr(ov_convert, "convert", crashed)
    with pytest.raises(RuntimeError):
        ov_convert.ensure_converted(entry, settings, source)
    assert not final.exists()

    def complete(src, out, mode, quantization, progress, base=None, vision="fp32"):
        calls.append(mode)
        (out / "openvino_language_model.xml").write_text("ok")
        progress("done")

    monkeypatch.setattr(ov_convert, "convert", complete)
    messages = []
    assert ov_convert.ensure_converted(entry, settings, source, progress=messages.append) == final
    assert ov_convert.is_complete(final) and not list(final.parent.glob(".tmp-*")) and calls == ["fp16"]
    assert messages and "ready" in messages[-1]
    # A new source revision (other weights) is a new key; the old conversion is pruned.
    (source / "model.safetensors").write_bytes(b"1" * 20)
    newer = ov_convert.ensure_converted(entry, settings, source)
    assert newer != final and not final.exists() and calls == ["fp16", "fp16"]


def test_pull_converts_openvino_models_only(tiny_smolvlm, tiny_qwen, tmp_path, monkeypatch):
    from pollux.engines import ov_convert
    from pollux.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    calls = []
    monkeypatch.setattr(ov_convert, "ensure_converted",
                        lambda entry, s, source, progress=None: calls.append((entry.id, source)) or tmp_path)
    assert ov_convert.pull(_entry(tiny_smolvlm, "int8"), settings, progress=False) == tmp_path
    assert calls == [("tiny-smolvlm-ov", Path(tiny_smolvlm))]
    qwen = _entry(tiny_qwen, "int8", model_id="q", family="qwen2_5_vl")  # no OpenVINO path: weights only
    assert ov_convert.pull(qwen, settings, progress=False) == Path(tiny_qwen) and len(calls) == 1


def test_weights_option_is_validated(tiny_smolvlm):
    from pollux.engines import ov_convert
    from pollux.errors import InvalidArgument

    assert ov_convert.weights_mode(_entry(tiny_smolvlm, "INT4")) == "int4"
    assert ov_convert.quantization_settings(_entry(tiny_smolvlm, "int4"), "int4")["group_size"] == 64
    with pytest.raises(InvalidArgument):
        ov_convert.weights_mode(_entry(tiny_smolvlm, "int3"))


# ---------------------------------------------------------------------------------- equivalence

def test_fp32_greedy_equals_transformers_token_for_token(ov_fp32, smol_engine, photos, tmp_path):
    multi = Prompt([Turn("user", [Text("Compare these."), Image(photos["coffee"], (900, 600), cache_key="c:300x200"),
                                  Image(photos["chelsea"], (450, 600), cache_key="h:180x240")])])
    history = Prompt([Turn("user", [Image(photos["coffee"], (900, 600), cache_key="c:300x200"), Text("What is this?")]),
                      Turn("model", [Text("A cup of coffee.")]), Turn("user", [Text("Is it hot?")])])
    prompts = [one_image(photos), multi, history, video_prompt(ov_fp32, tmp_path / "v", "What happens at 00:03?")]
    for prompt in prompts:
        expected = steps(run(smol_engine, prompt, max_output_tokens=24, temperature=0.0))
        got = steps(run(ov_fp32, prompt, max_output_tokens=24, temperature=0.0))
        assert got == expected
        assert ov_fp32.prepare_prompt(prompt).length == ov_fp32.count_tokens(prompt) == smol_engine.count_tokens(prompt)


def test_fp32_sampling_with_seed_equals_transformers(ov_fp32, smol_engine, photos):
    params = dict(max_output_tokens=12, temperature=0.8, top_p=0.9, top_k=40, seed=7, candidate_count=2)
    assert steps(run(ov_fp32, one_image(photos), **params)) == steps(run(smol_engine, one_image(photos), **params))


# ---------------------------------------------------------------------------------- int8 behaviour

def test_int8_streams_real_incremental_tokens(ov_int8, photos):
    deltas = run(ov_int8, one_image(photos), max_output_tokens=16, temperature=0.0)
    assert deltas[-1].finish_reason in ("STOP", "MAX_TOKENS") and all(d.finish_reason is None for d in deltas[:-1])
    assert len([d for d in deltas if d.text]) > 1
    counts = [d.output_tokens for d in deltas]
    assert counts == sorted(counts) and 1 <= counts[-1] <= 16
    assert ov_int8.info()["weights"] == "int8"


def test_int8_cancel_stops_between_tokens(ov_int8, photos):
    cancel = threading.Event()
    stream = ov_int8.generate(one_image(photos), GenerationParams(max_output_tokens=60, temperature=0.0), cancel)
    first = next(d for d in stream if d.text)
    assert first.finish_reason is None and first.output_tokens < 60
    cancel.set()
    with pytest.raises(Cancelled):
        list(stream)
    assert run(ov_int8, one_image(photos), max_output_tokens=2)[-1].finish_reason  # usable again


def test_max_tokens_seed_candidates_and_stop(ov_int8, photos):
    a = run(ov_int8, one_image(photos), max_output_tokens=6, temperature=0.0)
    assert a[-1].finish_reason == "MAX_TOKENS" and a[-1].output_tokens == 6
    params = dict(max_output_tokens=10, temperature=1.0, top_p=0.95, top_k=40, seed=1234, candidate_count=2)
    x, y = run(ov_int8, one_image(photos), **params), run(ov_int8, one_image(photos), **params)
    assert [text_of(x, i) for i in (0, 1)] == [text_of(y, i) for i in (0, 1)]
    assert [d.candidate for d in x if d.finish_reason] == [0, 1]
    others = {text_of(run(ov_int8, one_image(photos), **{**params, "seed": s, "candidate_count": 1}))
              for s in range(4)}
    assert len(others) > 1
    full = text_of(run(ov_int8, one_image(photos), max_output_tokens=30, temperature=0.0))
    clean = re.sub(r"[^\w ]", "", full)
    stop = next(full[i:i + 2] for i in range(3, len(full) - 2) if full[i:i + 2] in clean and full[i:i + 2].strip())
    cut = run(ov_int8, one_image(photos), max_output_tokens=30, temperature=0.0, stop_sequences=[stop])
    assert text_of(cut) == full[:full.index(stop)] and cut[-1].finish_reason == "STOP"


@pytest.mark.parametrize("seed", [0, 1])
def test_json_schema_and_enum(ov_int8, photos, seed):
    deltas = run(ov_int8, one_image(photos, "Which animal is this? Answer in JSON."), max_output_tokens=200,
                 temperature=1.0, seed=seed, response_mime_type="application/json", response_schema=SCHEMA)
    assert deltas[-1].finish_reason == "STOP", text_of(deltas)
    jsonschema.validate(json.loads(text_of(deltas)), SCHEMA)
    schema = {"type": "string", "enum": ["percussion", "string", "woodwind"]}
    enum = run(ov_int8, one_image(photos, "What kind of instrument?"), max_output_tokens=20, seed=seed,
               response_mime_type="text/x.enum", response_schema=schema)
    assert text_of(enum) in schema["enum"]


def test_video_and_multi_image_prompts(ov_int8, photos, tmp_path):
    prompt = video_prompt(ov_int8, tmp_path / "v", "What is at 00:02?", seconds=4, sha="w" * 64)
    assert sum(im.modality == "VIDEO" for im in prompt.images()) == 4
    assert run(ov_int8, prompt, max_output_tokens=4)[-1].finish_reason
    multi = Prompt([Turn("user", [Image(photos["coffee"], (900, 600)), Image(photos["chelsea"], (450, 600)),
                                  Text("Which is warmer?")])])  # no cache keys: computed, never shared
    assert run(ov_int8, multi, max_output_tokens=4)[-1].finish_reason


# ---------------------------------------------------------------------------------- caches

def test_second_question_on_a_file_skips_the_vision_encoder(ov_int8, photos):
    first = one_image(photos, "Describe this image.", name="chelsea")
    before = dict(ov_int8.stats)
    run(ov_int8, first, max_output_tokens=8, temperature=0.0)
    encoded = ov_int8.stats["vision_calls"] - before["vision_calls"]
    assert encoded > 0
    mid = dict(ov_int8.stats)
    second = one_image(photos, "What colour is the cat?", name="chelsea")
    answer = run(ov_int8, second, max_output_tokens=8, temperature=0.0)
    assert ov_int8.stats["vision_calls"] == mid["vision_calls"]  # features came from the cache
    reused = ov_int8.stats["reused_tokens"] - mid["reused_tokens"]
    assert reused > sum(f.array.shape[0] * f.array.shape[1] for f in [ov_int8.runtime.image_features(second.images()[0])])
    # Reuse changes nothing: the same answer from a cold KV state.
    ov_int8.prefix.clear()
    assert steps(run(ov_int8, second, max_output_tokens=8, temperature=0.0)) == steps(answer)


def test_uploaded_image_is_ready_before_the_question(ov_int8, photos):
    warm = Prompt([Turn("user", [Image(photos["coffee"], (900, 600), cache_key="upl:300x200")])])
    ov_int8.precompute(lambda: warm)
    assert ov_int8.background.wait_idle(120)
    before = dict(ov_int8.stats)
    ask = Prompt([Turn("user", [Image(photos["coffee"], (900, 600), cache_key="upl:300x200"),
                                Text("What is in the cup?")])])
    run(ov_int8, ask, max_output_tokens=4, temperature=0.0)
    assert ov_int8.stats["vision_calls"] == before["vision_calls"]
    prefilled = ov_int8.stats["prefill_tokens"] - before["prefill_tokens"]
    assert prefilled < 20  # only the question's words (and the turn's end) ran


def test_a_request_waits_for_features_being_computed(ov_int8, photos, monkeypatch):
    release, started = threading.Event(), threading.Event()
    real = ov_int8.model.get_vision_embeddings

    def slow(*args, **kwargs):
        started.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(ov_int8.model, "get_vision_embeddings", slow)
    image = Image(photos["astronaut"], (1280, 960), cache_key="wait:320x240")
    ov_int8.precompute(lambda: Prompt([Turn("user", [image])]), warm_prefix=False)
    assert started.wait(60)
    before = ov_int8.stats["vision_calls"]
    got = {}
    waiter = threading.Thread(target=lambda: got.setdefault("f", ov_int8.runtime.image_features(image)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # waiting for the background's result, not computing its own
    release.set()
    waiter.join(60)
    assert ov_int8.background.wait_idle(60)
    tiles = got["f"].array.shape[0]
    from pollux.engines.runtimes.openvino import VISION_CHUNK

    assert ov_int8.stats["vision_calls"] - before == -(-tiles // VISION_CHUNK)  # computed once, by the background
    assert ov_int8.features.get(ov_int8.runtime.feature_key(image)) is got["f"]


def test_prefix_snapshots_survive_a_question_about_another_file(ov_int8, photos, monkeypatch):
    from pollux.engines import kv_prefix

    monkeypatch.setattr(kv_prefix, "MIN_SNAPSHOT_TOKENS", 32)
    monkeypatch.setattr(kv_prefix, "MIN_RESTORE_GAIN", 8)
    a = one_image(photos, "Describe it.", name="astronaut", system=None)
    b = one_image(photos, "Describe it.", name="coffee", system=None)
    first = steps(run(ov_int8, a, max_output_tokens=6, temperature=0.0))
    run(ov_int8, b, max_output_tokens=6, temperature=0.0)  # the live state now holds b; a was saved
    restored, before = ov_int8.prefix.restored, dict(ov_int8.stats)
    again = steps(run(ov_int8, one_image(photos, "Describe it.", name="astronaut", system=None),
                      max_output_tokens=6, temperature=0.0))
    assert ov_int8.prefix.restored == restored + 1 and again == first
    assert ov_int8.stats["prefill_tokens"] - before["prefill_tokens"] < 20


class _Record:
    name, mime_type = "files/vid", "video/mp4"


def _warmup_for(engine):
    """A Warmup whose default model is `engine` (the part of EngineHub it uses, faked)."""
    from pollux.catalog import Catalog
    from pollux.generation import GenerationService
    from pollux.warmup import Warmup

    class Hub:
        settings = engine.settings.model_copy(update={"default_model": engine.entry.id})
        services = engine.services

        def get(self, entry):
            return engine

        def loaded(self):
            return [engine]

    catalog = Catalog([engine.entry])
    return Warmup(Hub(), catalog, files=None, generation=GenerationService(Hub.settings, catalog, None, Hub()))


def test_video_frames_precomputed_after_processing(ov_int8, tmp_path):
    Record = _Record
    video = make_video(tmp_path / "pv", seconds=6, with_audio=False)
    video.sha256 = "p" * 64
    warmup = _warmup_for(ov_int8)
    before = dict(ov_int8.stats)
    warmup.on_processed(Record(), video, ov_int8.settings)  # returns at once; work runs in the background
    assert ov_int8.background.wait_idle(180)
    assert ov_int8.stats["vision_calls"] - before["vision_calls"] == 6 + 2  # one per frame, then LOW's 2 grids
    mid = dict(ov_int8.stats)
    turns = [RequestTurn("user", [MediaPart(video, "video/mp4", "files/vid"), TextPart("What moves?")])]
    prompt = assemble(turns, None, capabilities=ov_int8.capabilities, token_budget=4096,
                      count_tokens=ov_int8.count_tokens)
    run(ov_int8, prompt, max_output_tokens=3, temperature=0.0)
    assert ov_int8.stats["vision_calls"] == mid["vision_calls"]
    assert ov_int8.stats["prefill_tokens"] - mid["prefill_tokens"] < 20


def test_video_frames_are_encoded_while_the_transcript_is_computed(ov_int8, tmp_path):
    """The processor's hooks in their installed order: the frames hook queues the vision features and
    returns; the transcript hook (here one that waits for them) runs meanwhile, before the file is ACTIVE."""
    video = make_video(tmp_path / "tv", seconds=5, with_audio=True)
    video.sha256 = "t" * 64
    warmup = _warmup_for(ov_int8)
    before = dict(ov_int8.stats)
    seen_in_transcript = []

    def transcript_hook(record, prepared, settings):  # stands in for Whisper: runs in the processing thread
        deadline = time.monotonic() + 180
        while ov_int8.stats["vision_calls"] - before["vision_calls"] < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen_in_transcript.append(ov_int8.stats["vision_calls"] - before["vision_calls"])

    for hook in (warmup.on_frames, transcript_hook, warmup.on_processed):  # as `warmup.install` orders them
        hook(_Record(), video, ov_int8.settings)
    assert seen_in_transcript == [5]  # all five frames encoded while the transcript hook still ran
    assert ov_int8.background.wait_idle(180)
    assert ov_int8.stats["vision_calls"] - before["vision_calls"] == 5 + 1  # never twice; then LOW's grid
    assert ov_int8.stats["prefill_tokens"] > before["prefill_tokens"]  # then the whole prompt's prefix


def test_installed_hooks_put_the_frames_before_the_transcript():
    from pollux import warmup

    class Processor:
        hooks = [lambda *a: None]  # the speech hook, registered first by the app wiring

    class Files:
        processing_wanted: list = []
        processor = Processor()

    w = warmup.install(Files(), hub=None, catalog=None, generation=None)
    assert Files.processor.hooks[0] == w.on_frames and Files.processor.hooks[-1] == w.on_processed


def test_a_question_during_the_prefix_warm_up_joins_it(ov_int8, tmp_path, monkeypatch):
    """A question that arrives while the warm-up prefills the video's prompt waits for that prefill and
    reuses it: every frame encoded once, the prompt's positions prefilled once."""
    video = make_video(tmp_path / "jv", seconds=6, with_audio=False)
    video.sha256 = "j" * 64
    runtime = ov_int8.runtime
    warmup = _warmup_for(ov_int8)
    started, release = threading.Event(), threading.Event()
    original = runtime._infer

    def slow_first_prefill(embeds, past):
        if embeds.shape[1] > 1 and not started.is_set():  # the warm-up's prefill, midway: held until the
            started.set()                                 # question waits for the model
            assert release.wait(60)
        return original(embeds, past)

    monkeypatch.setattr(runtime, "_infer", slow_first_prefill)
    before = dict(ov_int8.stats)
    warmup.on_processed(_Record(), video, ov_int8.settings)
    assert started.wait(180)
    turns = [RequestTurn("user", [MediaPart(video, "video/mp4", "files/vid"), TextPart("What moves?")])]
    prompt = assemble(turns, None, capabilities=ov_int8.capabilities, token_budget=4096,
                      count_tokens=ov_int8.count_tokens)
    answer = []
    asking = threading.Thread(target=lambda: answer.extend(run(ov_int8, prompt, max_output_tokens=2,
                                                               temperature=0.0)))
    asking.start()
    deadline = time.monotonic() + 30
    while ov_int8.queue.waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ov_int8.queue.waiting == 1  # the question waits for the warm-up's prefill
    release.set()
    asking.join(180)
    assert answer and answer[-1].finish_reason
    length = ov_int8.count_tokens(prompt)
    assert ov_int8.stats["vision_calls"] - before["vision_calls"] == 6
    prefilled = ov_int8.stats["prefill_tokens"] - before["prefill_tokens"]
    assert prefilled < length + 5  # once (the warm-up's head, then the question's own words), not twice
    assert ov_int8.stats["reused_tokens"] - before["reused_tokens"] >= length - 20


# ---------------------------------------------------------------------------------- through the API

def test_uploaded_image_is_warmed_and_the_question_skips_the_encoder(make_client, tmp_path, tiny_smolvlm,
                                                                     ov_settings, ov_int8, photos):
    from pollux import warmup
    from tests.api.helpers import upload
    from tests.conftest import H, ctx_of

    entry = ov_int8.entry  # same id and options: the conversion cached by the engine fixtures is reused
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[[models]]\nid = "{entry.id}"\ndisplay_name = "tiny"\ndescription = "tiny"\n'
                       f'engine = "openvino"\nsource = "{tiny_smolvlm}"\nfamily = "smolvlm"\n'
                       f'output_token_limit = 64\noptions = {{ weights = "int8" }}\n')
    client = make_client(emulator=False, catalog_file=catalog, models_dir=ov_settings.resolved_models_dir,
                         default_model=entry.id)
    ctx = ctx_of(client)
    assert any(isinstance(getattr(hook, "__self__", None), warmup.Warmup)  # installed by the app wiring
               for hook in ctx.files.processor.hooks)

    buf = io.BytesIO()
    photos["chelsea"].save(buf, format="PNG")
    record = upload(client, buf.getvalue())
    assert record["state"] == "PROCESSING"  # until the default model has its features and prefix
    body = {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": record["uri"]}},
                                                    {"text": "What animal is this?"}]}],
            "generationConfig": {"maxOutputTokens": 4, "temperature": 0}}
    early = client.post(f"/v1beta/models/{entry.id}:generateContent", headers=H, json=body)
    assert early.status_code == 200, early.text  # SDK code that does not poll for images still works

    record = upload(client, buf.getvalue() + b"\0")  # a second image (new bytes), polled as for videos
    engine = ctx.engines.get(ctx.catalog.entries[entry.id])
    deadline = time.monotonic() + 180
    while record["state"] == "PROCESSING" and time.monotonic() < deadline:
        time.sleep(0.1)
        record = client.get(f"/v1beta/{record['name']}", headers=H).json()
    assert record["state"] == "ACTIVE"
    before = dict(engine.stats)
    body["contents"][0]["parts"][0]["fileData"]["fileUri"] = record["uri"]
    r = client.post(f"/v1beta/models/{entry.id}:generateContent", headers=H, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["finishReason"] in ("STOP", "MAX_TOKENS")
    assert engine.stats["vision_calls"] == before["vision_calls"]
    assert engine.stats["prefill_tokens"] - before["prefill_tokens"] < 20  # the image's prefix was warm too
    info = client.get(f"/v1beta/models/{entry.id}", headers=H).json()["polluxRuntime"]
    assert info["runtime"] == "openvino" and info["memory"]["weightsBytes"] > 0


# ---------------------------------------------------------------------------------- residency, fallback

def test_info_reports_memory_and_unload_reloads(tiny_smolvlm, ov_settings, ov_int8, photos):
    from pollux.engines.openvino import OpenVINOEngine

    engine = OpenVINOEngine(_entry(tiny_smolvlm, "int8"), ov_settings)
    assert engine.info() == {"loaded": False}
    engine.load()
    info = engine.info()
    assert info["loaded"] and info["runtime"] == "openvino" and info["weights"] == "int8"
    assert info["memory"]["weightsBytes"] > 0 and info["memory"]["processRssBytes"] > 0
    json.dumps(info)  # shown as-is by models.get
    engine.unload()
    assert engine.info() == {"loaded": False}
    assert run(engine, one_image(photos), max_output_tokens=2)[-1].finish_reason  # loads again
    assert engine.info()["loaded"]


def test_families_without_a_fast_path_use_transformers(tiny_qwen, ov_settings, photos):
    from pollux.engines.openvino import OpenVINOEngine

    engine = OpenVINOEngine(_entry(tiny_qwen, "int8", model_id="tiny-qwen-ov", family="qwen2_5_vl"), ov_settings)
    engine.load()
    assert engine.runtime.name == "transformers" and "qwen2_5_vl" in engine.fallback_reason
    assert engine.info()["runtime"] == "transformers"
    assert run(engine, one_image(photos), max_output_tokens=3)[-1].finish_reason


def test_media_resolution_levels_equal_transformers(ov_fp32, smol_engine, photos):
    """mediaResolution on OpenVINO: the same tiles as transformers at each level (issue 12, part 2)."""
    photo = photos["astronaut"].resize((1024, 768))
    lengths = []
    for level in ("MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_HIGH"):
        prompt = Prompt([Turn("user", [Image(photo, photo.size, cache_key=f"a:{level}", resolution=level),
                                       Text("What is this?")])])
        assert steps(run(ov_fp32, prompt, max_output_tokens=4, temperature=0.0)) == \
            steps(run(smol_engine, prompt, max_output_tokens=4, temperature=0.0))
        lengths.append(ov_fp32.prepare_prompt(prompt).length)
        assert lengths[-1] == ov_fp32.count_tokens(prompt) == smol_engine.count_tokens(prompt)
    assert lengths[0] < lengths[1]


def test_low_encodes_a_tile_per_four_frames_and_the_warm_up_prepares_them(ov_int8, photos, tmp_path):
    """At LOW a SmolVLM2 video goes through the encoder as 2x2 grids of frames, one call per grid
    (engines/frame_grid.py); the upload's warm-up computes them after the default level's frames and
    prefix, so a LOW question asked later runs no encoder. A still image's key follows its level."""
    video = make_video(tmp_path / "lv", seconds=5, with_audio=False)
    video.sha256 = "l" * 64
    turns = [RequestTurn("user", [MediaPart(video, "video/mp4", "files/lv"), TextPart("What happens?")])]

    def prompt(level):
        return assemble(turns, None, capabilities=ov_int8.capabilities, token_budget=ov_int8.entry.input_token_limit,
                        count_tokens=ov_int8.count_tokens, media_resolution=level)

    default, low = prompt(None), prompt("MEDIA_RESOLUTION_LOW")
    run(ov_int8, default, max_output_tokens=2, temperature=0.0)
    before = dict(ov_int8.stats)
    assert steps(run(ov_int8, low, max_output_tokens=2, temperature=0.0))
    # one call for frames 0-3; frame 4, alone, stays a frame: the default level's features serve it
    assert ov_int8.stats["vision_calls"] - before["vision_calls"] == 1
    assert ov_int8.prepare_prompt(low).length == ov_int8.count_tokens(low) < ov_int8.count_tokens(default)

    video.sha256 = "m" * 64  # a new upload of the same video
    warmup = _warmup_for(ov_int8)
    before = dict(ov_int8.stats)
    warmup.on_processed(_Record(), video, ov_int8.settings)
    assert ov_int8.background.wait_idle(180)
    assert ov_int8.stats["vision_calls"] - before["vision_calls"] == 5 + 1  # the frames, then the grid
    mid = dict(ov_int8.stats)
    run(ov_int8, prompt("MEDIA_RESOLUTION_LOW"), max_output_tokens=2, temperature=0.0)
    assert ov_int8.stats["vision_calls"] == mid["vision_calls"]

    key = ov_int8.runtime.feature_key
    photo = photos["astronaut"]
    still = [Image(photo, photo.size, cache_key="s:320x240" + suffix, resolution=level)
             for level, suffix in ((None, ""), ("MEDIA_RESOLUTION_LOW", "/MEDIA_RESOLUTION_LOW"))]
    assert key(still[0]) != key(still[1])
