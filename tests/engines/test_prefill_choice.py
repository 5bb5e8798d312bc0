"""The long prefill's runtime under the OpenVINO engine, chosen per prompt length from a measurement
made once per machine and model (runtimes/prefill_choice.py), on the tiny random-weight SmolVLM2
converted offline for real. The torch path must give the answers the single-runtime paths give (fp32),
the measurement must be stored and reused, the overrides obeyed, and the choice reported."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("openvino")
pytest.importorskip("optimum.intel")

from pollux.engines.base import GenerationParams  # noqa: E402
from pollux.engines.runtimes import prefill_choice  # noqa: E402
from pollux.prompt_types import Image, Prompt, Text, Turn  # noqa: E402

CROSSOVER = 100  # between the short prompt (~20 positions) and the image prompts (~200+)


def _entry(source: Path, **options):
    from pollux.catalog import ModelEntry

    return ModelEntry(id="tiny-smolvlm-choice", display_name="tiny", description="tiny test model", engine="openvino",
                      source=str(source), family="smolvlm", input_token_limit=4096, output_token_limit=64,
                      options={"weights": "fp32", **options})


@pytest.fixture(scope="module")
def choice_settings(tmp_path_factory):
    from pollux.settings import Settings

    return Settings(data_dir=tmp_path_factory.mktemp("choice-data"), transcribe=False)


def _engine(source, settings, **options):
    from pollux.engines.openvino import OpenVINOEngine

    engine = OpenVINOEngine(_entry(source, **options), settings)
    engine.load()
    assert engine.runtime.name == "openvino", engine.fallback_reason
    return engine


@pytest.fixture(scope="module")
def ov_only(tiny_smolvlm, choice_settings):  # the single-runtime path (converts the model for this module)
    return _engine(tiny_smolvlm, choice_settings, long_prompt_runtime="openvino")


@pytest.fixture(scope="module")
def switching(tiny_smolvlm, choice_settings, ov_only):
    return _engine(tiny_smolvlm, choice_settings, long_prompt_crossover=CROSSOVER)


def steps(engine, prompt, **params):
    params = {"max_output_tokens": 16, "temperature": 0.0, **params}
    deltas = engine.generate(prompt, GenerationParams(**params), threading.Event())
    return [(d.candidate, d.text, d.output_tokens, d.finish_reason) for d in deltas]


def short_prompt() -> Prompt:
    return Prompt([Turn("user", [Text("Say hello.")])])


def image_prompt(photos, name="astronaut") -> Prompt:
    image = photos[name]
    return Prompt([Turn("user", [Image(image, (1280, 960), cache_key=f"{name}:{image.size}"), Text("Describe it.")])],
                  system="Be concise.")


def two_images(photos) -> Prompt:
    return Prompt([Turn("user", [Text("Compare these."), Image(photos["coffee"], (900, 600), cache_key="c:300x200"),
                                 Image(photos["chelsea"], (450, 600), cache_key="h:180x240")])])


def served(engine) -> dict:
    return dict(engine.info()["prefill"]["served"])


# ---------------------------------------------------------------------------------- the switch

def test_forced_crossover_sends_long_prompts_to_torch_with_the_same_answers(switching, ov_only, smol_engine, photos):
    assert switching.count_tokens(short_prompt()) < CROSSOVER
    assert not switching.info()["prefill"]["transformersLoaded"]  # nothing loaded before a long prompt
    before = served(switching)
    assert steps(switching, short_prompt()) == steps(ov_only, short_prompt()) == steps(smol_engine, short_prompt())
    assert served(switching)["openvino"] == before["openvino"] + 1
    assert not switching.info()["prefill"]["transformersLoaded"]
    for prompt in (image_prompt(photos), two_images(photos)):
        assert switching.count_tokens(prompt) >= CROSSOVER
        expected = steps(smol_engine, prompt)
        assert steps(ov_only, prompt) == expected  # the parity the torch path must keep
        vision_calls = switching.stats["vision_calls"]
        assert steps(switching, prompt) == expected
        assert switching.stats["vision_calls"] > vision_calls  # its features are the OpenVINO encoder's
    info = switching.info()
    assert info["prefill"]["served"]["transformers"] == before["transformers"] + 2
    assert info["prefill"]["transformersLoaded"] and info["memory"]["transformersWeightsBytes"] > 0
    json.dumps(info)  # shown as-is by models.get


def test_torch_path_samples_candidates_as_the_reference_does(switching, smol_engine, photos):
    params = dict(max_output_tokens=10, temperature=0.8, top_p=0.9, top_k=40, seed=7, candidate_count=2)
    before = served(switching)["transformers"]
    assert steps(switching, image_prompt(photos), **params) == steps(smol_engine, image_prompt(photos), **params)
    assert served(switching)["transformers"] == before + 1


def test_a_prefix_openvino_holds_keeps_the_prompt_on_openvino(switching, photos):
    """What counts is the prefill a request would run: a question after a warmed-up prefix is short."""
    prompt = image_prompt(photos, "chelsea")
    follow_up = Prompt([*prompt.turns, Turn("model", [Text("A cat.")]), Turn("user", [Text("Its colour?")])],
                       system=prompt.system)
    runtime = switching.runtime
    fast = runtime.prepare(prompt)
    with switching.queue.turn(threading.Event()):
        assert runtime._prefill(fast, whole=True) is not None  # the prefix in the KV state, as a warm-up leaves it
    before = served(switching)
    steps(switching, follow_up)
    assert served(switching)["openvino"] == before["openvino"] + 1
    assert served(switching)["transformers"] == before["transformers"]


def test_no_kv_warm_up_for_a_prompt_torch_will_prefill(switching, photos):
    prompt = image_prompt(photos, "coffee")
    done = threading.Event()
    before, tokens = served(switching), switching.stats["prefill_tokens"]
    switching.precompute(lambda: prompt, warm_prefix=True, done=done)
    assert done.wait(60)
    assert served(switching)["warmupsLeftToTransformers"] == before["warmupsLeftToTransformers"] + 1
    assert switching.stats["prefill_tokens"] == tokens  # the features were computed, no prefix prefilled
    vision_calls = switching.stats["vision_calls"]
    steps(switching, prompt)
    assert served(switching)["transformers"] == before["transformers"] + 1
    assert switching.stats["vision_calls"] == vision_calls  # the torch path took the warmed-up features


# ---------------------------------------------------------------------------------- overrides

def test_overrides(tiny_smolvlm, choice_settings, ov_only, smol_engine, photos, monkeypatch):
    def no_measurement(*args, **kwargs):
        raise AssertionError("an override must not measure")

    monkeypatch.setattr(prefill_choice, "measure", no_measurement)
    assert ov_only.info()["prefill"]["decidedBy"] == "option"
    assert ov_only.info()["prefill"]["crossoverPositions"] is None
    before = served(ov_only)
    steps(ov_only, two_images(photos))
    assert served(ov_only)["transformers"] == before["transformers"] == 0
    assert not ov_only.info()["prefill"]["transformersLoaded"]

    everything = _engine(tiny_smolvlm, choice_settings, long_prompt_runtime="transformers")
    assert everything.info()["prefill"]["crossoverPositions"] == 1
    for prompt in (short_prompt(), image_prompt(photos)):
        assert steps(everything, prompt) == steps(smol_engine, prompt)
    assert served(everything) == {"openvino": 0, "transformers": 2, "warmupsLeftToTransformers": 0}
    everything.unload()
    assert everything.info() == {"loaded": False}


def test_options_are_validated(tiny_smolvlm):
    from pollux.engines.options import LocalOptions, validate

    for bad in ({"long_prompt_runtime": "onnx"}, {"long_prompt_crossover": 0}):
        with pytest.raises(ValueError, match="long_prompt"):
            validate(_entry(tiny_smolvlm, **bad), LocalOptions)


# ---------------------------------------------------------------------------------- the measurement

def test_measurement_is_stored_and_reused(tiny_smolvlm, choice_settings, ov_only, monkeypatch):
    calls = []
    real = prefill_choice.measure

    def counted(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(prefill_choice, "measure", counted)
    first = _engine(tiny_smolvlm, choice_settings)
    report = first.info()["prefill"]
    assert calls == [prefill_choice.MEASURED] and report["decidedBy"] == "measured"
    assert [row["positions"] for row in report["measured"]] == list(prefill_choice.MEASURED)
    assert all(row["openvino"] > 0 and row["transformers"] > 0 for row in report["measured"])
    assert report["crossoverPositions"] is None or report["crossoverPositions"] >= prefill_choice.MIN_LONG
    assert report["extrapolatedTo"] == 4096 and set(report["predicted"]["4096"]) == {"openvino", "transformers"}
    assert report["machine"]["cpu"]["cores"] >= 1 and report["machine"]["precision"]["openvinoWeights"] == "fp32"
    assert not report["transformersLoaded"]  # the measurement's torch model was released
    stored = json.loads((first.converted / prefill_choice.CHOICE_FILE).read_text())
    assert len(stored["entries"]) == 1

    second = _engine(tiny_smolvlm, choice_settings)  # a later load (a restart): the figures are reused
    assert calls == [prefill_choice.MEASURED]
    assert second.info()["prefill"]["decidedBy"] == "stored"
    assert second.info()["prefill"]["measured"] == report["measured"]

    # another machine sharing the models folder (other CPU flags) measures and stores its own
    monkeypatch.setattr(prefill_choice, "cpu_flags", lambda: ["avx2", "fma"])
    third = _engine(tiny_smolvlm, choice_settings)
    assert len(calls) == 2 and third.info()["prefill"]["decidedBy"] == "measured"
    assert len(json.loads((first.converted / prefill_choice.CHOICE_FILE).read_text())["entries"]) == 2


def test_a_failed_measurement_keeps_every_prompt_on_openvino(tiny_smolvlm, choice_settings, photos, monkeypatch):
    from pollux.engines.runtimes.openvino import OpenVINORuntime

    def broken(self):
        raise RuntimeError("no torch here")

    monkeypatch.setattr(prefill_choice, "cpu_flags", lambda: ["a-machine-never-measured"])
    monkeypatch.setattr(OpenVINORuntime, "_timers", broken)
    engine = _engine(tiny_smolvlm, choice_settings)
    report = engine.info()["prefill"]
    assert report["decidedBy"] == "failed" and report["crossoverPositions"] is None and "no torch" in report["reason"]
    assert steps(engine, image_prompt(photos))[-1][3] in ("STOP", "MAX_TOKENS")
    assert served(engine)["openvino"] == 1


@pytest.mark.parametrize("ov, torch, expected", [
    ((1.0e-3, 4.0e-7), (2.0e-3, 0.5e-7), 3584),  # torch slower per position, its attention cheaper: a crossover
    ((1.0e-3, 1.0e-7), (2.0e-3, 1.0e-7), None),  # OpenVINO faster at every length (this Xeon)
    ((5.0e-3, 0.0), (1.0e-3, 0.0), prefill_choice.MIN_LONG),  # torch faster everywhere: never below MIN_LONG
])
def test_crossover_from_fitted_measurements(ov, torch, expected):
    def table(a_b):
        a, b = a_b
        return {"a": a, "b": b}

    rows = [{"positions": n, "openvino": ov[0] * n + ov[1] * n * n, "transformers": torch[0] * n + torch[1] * n * n}
            for n in prefill_choice.MEASURED]
    fits = {name: prefill_choice.fit(rows, name) for name in ("openvino", "transformers")}
    assert fits["openvino"] == pytest.approx(table(ov), rel=1e-6, abs=1e-12)
    found = prefill_choice.crossover(fits, 8192)
    if expected is None:
        assert found is None
    else:
        assert found is not None and abs(found - expected) <= prefill_choice.STEP
