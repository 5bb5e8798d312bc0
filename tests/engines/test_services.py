"""Speech (Whisper) and grounding (OWLv2) as services with a model's lifecycle: loaded on first use,
shared by every engine of the hub, unloaded after `idle_unload_seconds`, and shown in models.get."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pollux.catalog import ModelEntry
from pollux.engines.base import GenerationParams
from pollux.engines.hub import EngineHub
from pollux.engines.speech import SpeechService
from pollux.media.prepared import PreparedAudio
from pollux.prompt_types import BoxRequest, Image, Prompt, Text, Turn
from pollux.settings import Settings
from tests.conftest import H, ctx_of
from tests.engines.prepared import write_wav


def _silence(folder) -> PreparedAudio:
    folder.mkdir(parents=True, exist_ok=True)
    wav = write_wav(folder / "audio.wav", np.zeros(16000, dtype=np.float32))
    return PreparedAudio(duration=1.0, wav_path=wav, artifact_dir=folder)


@pytest.fixture(scope="session")
def whisper_ready(tmp_path_factory):
    """Whisper base joined once (the PyPI halves) into a models dir the tests share."""
    pytest.importorskip("faster_whisper")
    from pollux.engines import whisper

    data = tmp_path_factory.mktemp("speech-data")
    try:
        whisper.ensure_default_model(Settings(data_dir=data))
    except Exception as e:  # the halves are not installed here
        pytest.skip(f"Whisper base unavailable: {e}")
    return data


def test_speech_loads_lazily_and_unloads_when_idle(whisper_ready, tmp_path):
    service = SpeechService(Settings(data_dir=whisper_ready, idle_unload_seconds=0.2))
    assert service.loaded() == [] and service.loads == 0  # nothing at start
    assert service.transcribe_cached(_silence(tmp_path / "a")) == []  # VAD: silence has no words
    assert service.loaded() == ["base"] and service.loads == 1
    service.transcribe(_silence(tmp_path / "b"))
    assert service.loads == 1  # kept between uses
    assert service.unload_idle() == []  # used just now
    time.sleep(0.3)
    assert service.unload_idle() == ["base"] and service.loaded() == []
    service.transcribe(_silence(tmp_path / "c"))
    assert service.loads == 2  # loaded again on next use


def test_speech_in_use_is_never_unloaded(whisper_ready):
    service = SpeechService(Settings(data_dir=whisper_ready, idle_unload_seconds=0.01))
    with service.use(service.model_name):
        time.sleep(0.05)
        assert service.unload_idle() == [] and service.loaded() == ["base"]
    time.sleep(0.05)
    assert service.unload_idle() == ["base"]


def test_models_get_shows_the_services(make_client, whisper_ready, tmp_path):
    client = make_client(transcribe=True, models_dir=whisper_ready / "models", idle_unload_seconds=3600)
    info = client.get("/v1beta/models/gemini-2.5-flash", headers=H).json()
    speech = info["polluxRuntime"]["services"]["speech"]
    assert speech == {"model": "whisper:base", "enabled": True, "loaded": []}
    assert info["polluxRuntime"]["services"]["grounding"] == {"loaded": []}
    ctx = ctx_of(client)
    ctx.engines.services.speech.transcribe_cached(_silence(tmp_path / "s"))  # what the PROCESSING hook runs
    speech = client.get("/v1beta/models/gemini-2.5-flash", headers=H).json()["polluxRuntime"]["services"]["speech"]
    assert [m["model"] for m in speech["loaded"]] == ["base"] and speech["loaded"][0]["inUse"] == 0
    assert "models" in client.get("/v1beta/models", headers=H).json()  # models.list is unchanged
    # The app's PROCESSING hook is the hub's service (one Whisper for hooks and prompts).
    assert ctx.engines.services.speech.processing_hook in ctx.files.processor.hooks


def test_grounding_is_shared_by_engines_and_unloaded_when_idle(tiny_smolvlm, tiny_owlv2, tmp_path, photos):
    hub = EngineHub(Settings(data_dir=tmp_path, idle_unload_seconds=0.2, transcribe=False))
    entries = [ModelEntry(id=f"smol-{i}", display_name="s", description="", engine="transformers",
                          source=str(tiny_smolvlm), family="smolvlm", options={"grounding": str(tiny_owlv2)})
               for i in range(2)]
    prompt = Prompt([Turn("user", [Image(photos["coffee"], (300, 200)), Text("Return a bounding box for the cup.")])],
                    boxes=BoxRequest(("cup",)))
    grounding = hub.services.grounding
    assert grounding.loaded() == []
    for entry in entries:
        with hub.lease(entry) as engine:
            assert engine.services is hub.services
            answer = "".join(d.text for d in engine.generate(prompt, GenerationParams(), threading.Event()))
            assert answer.startswith("[")
    assert grounding.loaded() == [str(tiny_owlv2)] and grounding.loads == 1  # one OWLv2 for both engines
    assert hub.info(entries[0])["services"]["grounding"]["loaded"][0]["model"] == str(tiny_owlv2)
    time.sleep(0.3)
    hub.unload_idle()
    assert grounding.loaded() == []
