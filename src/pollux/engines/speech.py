"""Speech recognition as a service: Whisper (faster-whisper, `whisper.py`) loaded on first use,
unloaded after `idle_unload_seconds`, one transcription at a time (it uses every core), and each
transcript cached as transcript.json next to the prepared audio.

Injected where audio becomes text: the Files API's PROCESSING hook (`processing_hook`, so the
transcript is on disk when a file turns ACTIVE) and prompt assembly (`transcriber()`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pollux.engines import whisper
from pollux.engines.services import ModelService

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from pollux.media.prepared import PreparedAudio

log = logging.getLogger("pollux.speech")

Segments = list[dict[str, Any]]


class SpeechService(ModelService["WhisperModel"]):
    kind = "speech"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._transcribing = threading.RLock()  # one at a time: a transcription uses every core

    @property
    def enabled(self) -> bool:
        return bool(self.settings.transcribe)

    @property
    def model_name(self) -> str:
        return whisper.model_name(self.settings)

    def _load(self, name: str) -> "WhisperModel":
        return whisper.load_model(self.settings)

    def transcribe(self, audio: "PreparedAudio") -> Segments:
        """Speech segments [{"start", "end", "text"}] in seconds."""
        with self.use(self.model_name) as model, self._transcribing:
            return whisper.transcribe(model, audio)

    def transcribe_cached(self, audio: "PreparedAudio") -> Segments:
        """`transcribe`, cached as transcript.json in the audio's artifact folder (written atomically)."""
        cache = Path(audio.artifact_dir) / whisper.TRANSCRIPT_FILE
        name = self.model_name
        cached = whisper.read_cache(cache, name)
        if cached is not None:
            return cached
        with self._transcribing:  # a processing hook and a prompt may ask for the same file at once
            cached = whisper.read_cache(cache, name)
            if cached is not None:
                return cached
            segments = self.transcribe(audio)
            whisper.write_cache(cache, name, segments)
        return segments

    def transcriber(self) -> Callable[["PreparedAudio"], Segments] | None:
        """What prompt assembly turns audio into text with, or None when transcription is off."""
        return self.transcribe_cached if self.enabled else None

    def processing_hook(self, record: Any, prepared: Any, settings: Any) -> None:
        """Files API hook: a video's or audio file's transcript, computed while the file is PROCESSING."""
        from pollux.media.prepared import PreparedAudio, PreparedVideo

        audio = prepared.audio if isinstance(prepared, PreparedVideo) else prepared
        if isinstance(audio, PreparedAudio):
            try:
                self.transcribe_cached(audio)  # cached next to the artifact for every later prompt
            except Exception:  # the file is still usable; prompts retry the transcript lazily
                log.exception("transcription of %s failed", getattr(record, "id", "?"))

    def info(self) -> dict[str, Any]:
        return {"model": f"whisper:{self.model_name}", "enabled": self.enabled, **super().info()}
