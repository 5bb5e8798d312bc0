"""Prepared media: what the prompt assembly gets for a file or an inline part.

For uploaded files these are loaded from the prepared-media artifact (a folder next to the
blob, written once while the file is PROCESSING), so a prompt never decodes a video again
except for frames the artifact lacks (a higher `videoMetadata.fps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

    from pollux.prompt_types import VideoOptions


@dataclass
class PreparedImage:
    image: "PILImage"  # RGB, EXIF-rotated, scaled to fit 3072x3072 / up to 768x768 (the seed's rule)
    original_size: tuple[int, int]  # (width, height) after EXIF rotation, before scaling
    mime_type: str
    sha256: str  # hex digest of the source bytes: with the size, a cache key for vision features
    # (MIME type, the file's own bytes or path), where sent as they are they show the original exactly
    # (media/images.PASSTHROUGH): a remote server sent the original size gets them, not a re-encoded copy.
    encoded: "tuple[str, bytes | Path] | None" = None


@dataclass
class Frame:
    timestamp: float  # seconds from the container start: the frame's pts (the target second when held over a gap)
    path: Path  # JPEG inside the artifact folder; longest side <= 768 (engines resize further)

    def load(self) -> "PILImage":
        from PIL import Image

        with Image.open(self.path) as im:
            return im.convert("RGB")


@dataclass
class PreparedAudio:
    duration: float  # seconds
    wav_path: Path  # 16 kHz mono s16le WAV
    artifact_dir: Path  # transcripts are cached here (transcript.json)

    def samples(self) -> "np.ndarray":
        """float32 samples in [-1, 1] at 16 kHz."""
        import wave

        import numpy as np

        with wave.open(str(self.wav_path), "rb") as w:
            raw = w.readframes(w.getnframes())
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


@dataclass
class PreparedVideo:
    duration: float  # seconds; File.videoMetadata.videoDuration
    original_size: tuple[int, int]
    frames: list[Frame]  # one per second (fps below), in time order
    audio: PreparedAudio | None  # None when the video has no audio track
    artifact_dir: Path
    source_path: Path  # the blob, for decoding frames the artifact lacks
    sha256: str
    fps: float = 1.0  # the stored frames' rate; `frames_for` decodes more for a higher videoMetadata.fps
    extra: dict = field(default_factory=dict)  # origin, rate, video_end, frame_size, rotation (for re-decoding)

    def frames_for(self, options: "VideoOptions | None") -> list[Frame]:
        """Frames for a request's videoMetadata (clip + fps), decoding only what is missing."""
        from pollux.media.video import frames_for

        return frames_for(self, options)


Prepared = PreparedImage | PreparedVideo | PreparedAudio
