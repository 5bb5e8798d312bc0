"""The runtime under the local engine is chosen once, at load, and reported truthfully (models.get's
`polluxRuntime`): OpenVINO asked for but not installed, or a conversion that fails, serves the model
with torch and says so; the same engine then answers as the reference engine does."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from pollux.catalog import ModelEntry
from pollux.engines import local, ov_convert
from pollux.engines.base import GenerationParams
from pollux.engines.hub import EngineHub
from pollux.prompt_types import Image, Prompt, Text, Turn
from pollux.settings import Settings


def _entry(source: Path, engine: str = "openvino", **options) -> ModelEntry:
    return ModelEntry(id=f"tiny-{engine}", display_name="tiny", description="", engine=engine, source=str(source),
                      family="smolvlm", input_token_limit=4096, output_token_limit=64, options=options)


def _prompt(photos) -> Prompt:
    return Prompt([Turn("user", [Image(photos["coffee"], (900, 600)), Text("What is this?")])])


def _steps(engine, prompt) -> list:
    deltas = engine.generate(prompt, GenerationParams(max_output_tokens=6, temperature=0.0), threading.Event())
    return [(d.text, d.output_tokens, d.finish_reason) for d in deltas]


@pytest.fixture
def counted_choice(monkeypatch):
    calls = []
    real = local.load_runtime

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(local, "load_runtime", counting)
    return calls


def test_openvino_not_installed_runs_torch_and_says_so(tiny_smolvlm, tmp_path, monkeypatch, photos, smol_engine,
                                                      counted_choice):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the package were absent: find_spec finds nothing
    hub = EngineHub(Settings(data_dir=tmp_path, transcribe=False))
    entry = _entry(tiny_smolvlm)
    assert hub.info(entry).get("runtime") is None  # nothing decided before the model loads
    with hub.lease(entry) as engine:
        first = engine.runtime
        assert _steps(engine, _prompt(photos)) == _steps(smol_engine, _prompt(photos))  # the reference's tokens
    with hub.lease(entry) as engine:
        engine.count_tokens(_prompt(photos))
        assert engine.runtime is first
    assert counted_choice == ["openvino"]  # decided once, at load
    info = hub.info(entry)
    assert info["engine"] == "openvino" and info["runtime"] == "transformers" and info["loaded"]
    assert "not installed" in info["fallbackReason"]
    assert not engine.precomputes  # the warm-up leaves it alone now that it is known to keep nothing
    engine.unload()
    assert hub.info(entry)["loaded"] is False


def test_a_failed_conversion_falls_back_in_the_same_place(tiny_smolvlm, tmp_path, monkeypatch, counted_choice):
    pytest.importorskip("openvino")
    pytest.importorskip("optimum.intel")

    def broken(*args, **kwargs):
        raise RuntimeError("export not supported by this optimum-intel")

    monkeypatch.setattr(ov_convert, "ensure_converted", broken)
    hub = EngineHub(Settings(data_dir=tmp_path, transcribe=False))
    entry = _entry(tiny_smolvlm, weights="int8")
    with hub.lease(entry):
        pass
    info = hub.info(entry)
    assert info["runtime"] == "transformers" and "export not supported" in info["fallbackReason"]
    assert counted_choice == ["openvino"]


def test_options_pick_the_runtime(tiny_smolvlm, tmp_path, counted_choice):
    hub = EngineHub(Settings(data_dir=tmp_path, transcribe=False))
    entry = _entry(tiny_smolvlm, runtime="transformers")  # the openvino engine told to run torch
    with hub.lease(entry) as engine:
        assert engine.runtime.name == "transformers"
    info = hub.info(entry)
    assert info["runtime"] == "transformers" and "fallbackReason" not in info  # asked for, not a fallback
    assert counted_choice == ["transformers"]


def test_hub_lists_loaded_engines(tiny_smolvlm, tmp_path):
    hub = EngineHub(Settings(data_dir=tmp_path, transcribe=False))
    entry = _entry(tiny_smolvlm, engine="transformers")
    engine = hub.get(entry)
    assert hub.loaded() == []
    with hub.lease(entry):
        pass
    assert hub.loaded() == [engine]
    engine.unload()
    assert hub.loaded() == []
