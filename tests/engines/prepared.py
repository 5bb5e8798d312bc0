"""Prepared media built by hand, as the media pipeline leaves it (JPEG frames, a 16 kHz mono WAV)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def make_video(folder: Path, seconds: int = 6, size=(160, 120), with_audio: bool = True):
    """A PreparedVideo as the media pipeline leaves it: one JPEG per second (+ a silent 16 kHz WAV)."""
    from PIL import Image, ImageDraw

    from pollux.media.prepared import Frame, PreparedAudio, PreparedVideo

    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for t in range(seconds):
        im = Image.new("RGB", size, (20 * t % 255, 80, 160))
        ImageDraw.Draw(im).rectangle([10 + 5 * t, 10, 60 + 5 * t, 60], fill=(255, 255, 0))
        path = folder / f"frame_{t:05d}.jpg"
        im.save(path, quality=90)
        frames.append(Frame(float(t), path))
    audio = None
    if with_audio:
        wav = write_wav(folder / "audio.wav", np.zeros(16000 * seconds, dtype=np.float32))
        audio = PreparedAudio(duration=float(seconds), wav_path=wav, artifact_dir=folder)
    return PreparedVideo(duration=float(seconds), original_size=size, frames=frames, audio=audio,
                         artifact_dir=folder, source_path=folder / "video.mp4", sha256="0" * 64)
