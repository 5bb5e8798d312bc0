"""A request checked against the chosen engine's declared `Capabilities`, once, above the engines.

Engines declare what they take (`engines/base.py`); nothing below this module re-checks it, so an
engine is never handed a request it would silently get wrong (a `responseSchema` it cannot
constrain to, tools it cannot call, media it cannot see). Each refusal is Gemini's 400
INVALID_ARGUMENT naming the capability and the model.

Two passes: `check_request` on the request as parsed (before any media is fetched), `check_media`
once its media is prepared (the MIME type of a stored file or URL is known only then).

Not refused: bounding boxes (`boxes`) without native grounding, since a grounding model answers
them for every engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pollux.errors import InvalidArgument, UnsupportedMedia
from pollux.media import tokens
from pollux.media.prepared import PreparedAudio, PreparedImage, PreparedVideo
from pollux.prompt_types import FunctionCall, FunctionResponse, MediaPart, RequestTurn, VideoOptions

if TYPE_CHECKING:
    from pollux.engines.base import Engine, GenerationParams


def _unsupported(what: str, capability: str, model: str, engine: "Engine") -> InvalidArgument:
    return InvalidArgument(f"{what} is not supported by {model} on this server: its {engine.name} engine "
                           f"({engine.entry.id}) does not declare the {capability!r} capability.",
                           reason="CAPABILITY_UNSUPPORTED", metadata={"capability": capability, "model": model})


def check_request(turns: Iterable[RequestTurn], params: "GenerationParams", engine: "Engine", model: str,
                  method: str = "generateContent") -> None:
    """What the request asks of the engine, before its media is fetched."""
    caps = engine.capabilities
    calls = any(isinstance(p, (FunctionCall, FunctionResponse)) for t in turns for p in t.parts)
    if (params.tools or calls) and not caps.tools:
        raise InvalidArgument(f"Tools (function calling) are not supported by {model} on this server's "
                              f"{engine.name} engine (capability 'tools'); serve it from an OpenAI-compatible "
                              "engine (--engine-url).", reason="CAPABILITY_UNSUPPORTED",
                              metadata={"capability": "tools", "model": model})
    if params.response_schema is not None and not caps.json_schema:
        raise _unsupported("responseSchema (constrained JSON output)", "json_schema", model, engine)
    if method == "streamGenerateContent" and not caps.streaming:
        raise _unsupported("streamGenerateContent", "streaming", model, engine)


def check_media(turns: list[RequestTurn], engine: "Engine", model: str, *, transcribes: bool,
                max_images_per_request: int) -> None:
    """Every prepared media part against the engine, and the image count against both limits: the
    engine's `max_images` (still images; video frames are thinned to fit it) and the server's
    `max_images_per_request` (images plus the frames the videos' sampling asks for)."""
    caps = engine.capabilities
    images = frames = 0
    for turn in turns:
        for part in turn.parts:
            if not isinstance(part, MediaPart):
                continue
            p = part.prepared
            if not caps.accepts(part.mime_type):
                raise UnsupportedMedia(f"{part.mime_type} input ({part.source}) is not supported by {model} on this "
                                       f"server ({engine.name} engine, capability 'mime_types').",
                                       reason="CAPABILITY_UNSUPPORTED",
                                       metadata={"capability": "mime_types", "model": model})
            if isinstance(p, PreparedAudio) and not (caps.audio or transcribes):
                raise UnsupportedMedia(f"Audio input ({part.source}) is not supported by {model} on this server: its "
                                       f"{engine.name} engine does not take audio (capability 'audio') and speech "
                                       "transcription is off.", reason="CAPABILITY_UNSUPPORTED",
                                       metadata={"capability": "audio", "model": model})
            if isinstance(p, PreparedImage):
                images += 1
            elif isinstance(p, PreparedVideo):
                v = part.video or VideoOptions()
                frames += tokens.count_video_frames(p.duration, v.fps, v.start, v.end)
    if caps.max_images is not None and images > caps.max_images:
        raise InvalidArgument(f"{model} takes at most {caps.max_images} images per request on this server "
                              f"(capability 'max_images'); got {images}.", reason="CAPABILITY_UNSUPPORTED",
                              metadata={"capability": "max_images", "model": model})
    if images + frames > max_images_per_request:
        raise InvalidArgument(f"Too many images and video frames in the request: {images + frames}; at most "
                              f"{max_images_per_request} are allowed (lower videoMetadata.fps or clip the video "
                              "with startOffset/endOffset).")
