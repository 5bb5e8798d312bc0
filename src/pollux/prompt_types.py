"""The engine-neutral prompt: what every engine is given, whatever the wire request looked like.

`pollux.prompt.assemble` builds it from a request's contents and prepared media; engines consume it.
Video arrives here already expanded: for each sampled frame a `Text("MM:SS")` marker, the frame
as an `Image` (modality VIDEO, `timestamp` set) and the transcript of those seconds as `Text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

    from pollux.media.prepared import PreparedAudio, PreparedImage, PreparedVideo

    PreparedMedia = Union[PreparedImage, PreparedVideo, PreparedAudio]

Modality = Literal["TEXT", "IMAGE", "VIDEO", "AUDIO", "DOCUMENT"]


@dataclass
class Text:
    text: str
    modality: Modality = "TEXT"  # transcript text of a video counts as AUDIO


@dataclass
class Image:
    image: "PILImage"  # RGB, already scaled by the seed's rule (fit 3072, up to 768)
    original_size: tuple[int, int]  # (width, height) of the file as uploaded, after EXIF rotation
    modality: Modality = "IMAGE"  # VIDEO for sampled frames
    timestamp: float | None = None  # seconds into the video, for frames
    source: str = ""  # "files/abc", "inline[0]": lets answers and boxes refer back
    cache_key: str | None = None  # stable id of (content, preparation) for vision-feature caches
    resolution: str | None = None  # effective mediaResolution (part override, else global); engines/resolution.py
    encoded: "tuple[str, bytes | Path] | None" = None  # the file as sent, where it shows the original exactly
    covers: tuple[float, ...] = ()  # a grid of frames (engines/frame_grid.py): the timestamps it shows


@dataclass
class Audio:
    samples: "np.ndarray"  # float32, 16 kHz mono
    duration: float
    source: str = ""
    modality: Modality = "AUDIO"


@dataclass
class FunctionCall:
    """A model turn's call of a declared function (`functionCall` part); also what an engine answers."""

    name: str
    args: dict[str, Any]
    id: str | None = None


@dataclass
class FunctionResponse:
    """A user turn's result of a function call (`functionResponse` part)."""

    name: str
    response: dict[str, Any]
    id: str | None = None


Segment = Union[Text, Image, Audio, FunctionCall, FunctionResponse]


@dataclass
class Turn:
    role: Literal["user", "model"]
    segments: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class BoxRequest:
    """A request for bounding boxes, recognised once in prompt assembly (system instruction and user
    turns alike) so that every engine answers the same prompts the same way."""

    phrases: tuple[str, ...] = ("object",)  # what to find
    many: bool = False  # every instance ("boxes", "all", "each") or the best one per phrase
    json: bool = False  # [{"box_2d": [...], "label": ...}] rather than the plain "[ymin, xmin, ymax, xmax]" list


@dataclass(frozen=True)
class VideoThinning:
    """A video whose sampled frames did not all fit the local model's context: which were used."""

    source: str  # "files/abc", "inline[2]", a URL
    sampled: int  # frames the sampler took (videoMetadata fps and clip)
    used_at: tuple[float, ...]  # seconds of the frames the model was given


@dataclass
class Prompt:
    turns: list[Turn]
    system: str | None = None
    boxes: BoxRequest | None = None  # set when the request asks for bounding boxes
    thinning: list[VideoThinning] = field(default_factory=list)

    def images(self) -> list[Image]:
        return [s for t in self.turns for s in t.segments if isinstance(s, Image)]

    def last_user_text(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "user":
                return " ".join(s.text for s in turn.segments if isinstance(s, Text) and s.modality == "TEXT")
        return ""


# ---- The request side: one shape from the wire to `pollux.prompt.assemble` ----
#
# `api/generate.py` turns the wire request into `RequestTurn`s whose media parts are references
# (`FileRef`, `InlineRef`); `generation.py` replaces each reference by a `MediaPart` holding the
# prepared media (the same turns, typed the same way), and `prompt.assemble` takes those.


@dataclass
class VideoOptions:
    """`videoMetadata` of a part: clip and sampling rate, honoured at prompt time."""

    start: float | None = None
    end: float | None = None
    fps: float | None = None


@dataclass
class TextPart:
    text: str


@dataclass
class KeptFile:
    """A cache's own link to a file it names: the cache keeps working after the file is deleted or expires."""

    mime_type: str
    name: str  # files/ID
    blob: Path
    artifacts: Path


@dataclass
class FileRef:
    """A `fileData` part: a File API file (files/ID, its uri) or a URL, fetched when the request is prepared."""

    uri: str
    mime_type: str = ""
    video: VideoOptions | None = None
    resolution: str | None = None  # the part's mediaResolution
    kept: KeptFile | None = None  # set on a cachedContent's parts


@dataclass
class InlineRef:
    """An `inlineData` part: the bytes as sent, decoded when the request is prepared."""

    mime_type: str
    data: bytes
    video: VideoOptions | None = None
    resolution: str | None = None
    sha256: str | None = None  # the bytes' content hash, once computed (it keys the prepared-image cache)


@dataclass
class MediaPart:
    """A media part once prepared (decoded, or loaded from its upload's artifact)."""

    prepared: "PreparedMedia"
    mime_type: str
    source: str  # "files/abc" or "inline[3]"
    video: VideoOptions | None = None
    resolution: str | None = None  # the part's own mediaResolution; assembly falls back to the global one


MediaRef = Union[FileRef, InlineRef]
Part = Union[TextPart, FileRef, InlineRef, MediaPart, FunctionCall, FunctionResponse]


@dataclass
class RequestTurn:
    role: Literal["user", "model"]
    parts: list[Part] = field(default_factory=list)

    def media_refs(self) -> list[MediaRef]:
        return [p for p in self.parts if isinstance(p, (FileRef, InlineRef))]
