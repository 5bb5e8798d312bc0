"""Weights resolve from a local folder, the Hugging Face cache, or models_dir; absent ones name `pollux pull`."""

from __future__ import annotations

import threading

import pytest

from pollux.catalog import ModelEntry
from pollux.engines import weights
from pollux.errors import ModelUnavailable, PolluxError
from pollux.settings import Settings


def _entry(source: str, model_id: str = "some-model") -> ModelEntry:
    return ModelEntry(id=model_id, display_name=model_id, description="", engine="transformers", source=source,
                      family="smolvlm")


def _checkpoint(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0")
    return folder


def test_local_folder(tmp_path):
    folder = _checkpoint(tmp_path / "ckpt")
    assert weights.resolve(_entry(str(folder)), Settings(data_dir=tmp_path)) == folder
    with pytest.raises(ModelUnavailable, match="no config.json"):
        weights.resolve(_entry(str(tmp_path)), Settings(data_dir=tmp_path))


def test_hugging_face_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--acme--tiny-vlm"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    snapshot = _checkpoint(repo / "snapshots" / ("a" * 40))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert weights.resolve(_entry("acme/tiny-vlm"), Settings(data_dir=tmp_path)) == snapshot


def test_pulled_folder_needs_its_marker(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    settings = Settings(data_dir=tmp_path)
    entry = _entry("acme/pulled-vlm", "pulled-vlm")
    folder = _checkpoint(settings.resolved_models_dir / "pulled-vlm")
    with pytest.raises(ModelUnavailable):  # an interrupted pull is not a model
        weights.resolve(entry, settings)
    (folder / weights.PULLED_MARKER).write_text("{}")
    assert weights.resolve(entry, settings) == folder


def test_absent_weights_name_pollux_pull(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(ModelUnavailable) as err:
        weights.resolve(_entry("HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "smolvlm2-256m"),
                        Settings(data_dir=tmp_path))
    assert "`pollux pull smolvlm2-256m`" in err.value.message
    assert err.value.metadata == {"model": "smolvlm2-256m"}


def test_engine_without_weights_fails_cleanly(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from pollux.engines.base import GenerationParams
    from pollux.engines.transformers import TransformersEngine
    from pollux.prompt_types import Prompt, Text, Turn

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    engine = TransformersEngine(_entry("acme/not-here", "not-here"), Settings(data_dir=tmp_path))
    with pytest.raises(ModelUnavailable, match="pollux pull not-here"):
        engine.load()
    prompt = Prompt([Turn("user", [Text("hi")])])
    with pytest.raises(PolluxError, match="pollux pull not-here"):
        list(engine.generate(prompt, GenerationParams(), threading.Event()))
    assert engine.info() == {"loaded": False}


def test_pull_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailable, match="Downloading m from acme/m failed"):
        weights.pull(_entry("acme/m", "m"), Settings(data_dir=tmp_path), progress=False)
