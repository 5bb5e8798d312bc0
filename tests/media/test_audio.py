"""Audio files -> 16 kHz mono WAV, with the duration known."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from pollux.errors import Cancelled, InvalidArgument
from pollux.media.artifact import staging_path
from pollux.media.audio import load_audio, prepare_audio
from pollux.settings import Settings
from tests.fixtures.media import AUDIO_FORMATS, never, write_audio, write_video


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * 16000 / len(samples))


@pytest.mark.parametrize("fmt", sorted(AUDIO_FORMATS))
def test_formats(tmp_path: Path, settings: Settings, fmt: str):
    blob = write_audio(tmp_path / f"in.{fmt}", fmt, seconds=2.0)
    audio = prepare_audio(blob, tmp_path / "art", settings, never)
    assert audio.duration == pytest.approx(2.0, abs=0.06)
    with wave.open(str(audio.wav_path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() == round(audio.duration * 16000)
    samples = audio.samples()
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert _dominant_hz(samples) == pytest.approx(440, abs=3)
    assert load_audio(blob, tmp_path / "art") == audio
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["kind"] == "audio" and len(manifest["sha256"]) == 64


def test_audio_track_of_a_video_file(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=2.0, audio=True)
    assert prepare_audio(blob, tmp_path / "art", settings, never).duration == pytest.approx(2.0, abs=0.06)


def test_errors(tmp_path: Path, settings: Settings):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InvalidArgument, match="empty"):
        prepare_audio(empty, tmp_path / "a1", settings, never)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x00\x01junk" * 1000)
    with pytest.raises(InvalidArgument):
        prepare_audio(junk, tmp_path / "a2", settings, never)
    silent_video = write_video(tmp_path / "v.mp4", "mp4", seconds=1.0)
    with pytest.raises(InvalidArgument, match="no audio stream"):
        prepare_audio(silent_video, tmp_path / "a3", settings, never)
    for folder in ("a1", "a2", "a3"):
        assert not (tmp_path / folder).exists() and not staging_path(tmp_path / folder).exists()


def test_too_long(tmp_path: Path):
    blob = write_audio(tmp_path / "in.flac", "flac", seconds=3.0)
    with pytest.raises(InvalidArgument, match="too long"):
        prepare_audio(blob, tmp_path / "art", Settings(max_audio_seconds=2.0), never)
    assert not (tmp_path / "art").exists()


def test_cancelled(tmp_path: Path, settings: Settings):
    blob = write_audio(tmp_path / "in.wav", "wav", seconds=3.0)
    with pytest.raises(Cancelled):
        prepare_audio(blob, tmp_path / "art", settings, lambda: True)
    assert not (tmp_path / "art").exists() and not staging_path(tmp_path / "art").exists()
