"""Gemini-rule token accounting. Pure: no I/O, no decoding, only numbers in and numbers out.
The only place Gemini-rule counts are computed (`count_request` for a prepared request).

Rules (gemini-contract.md §6 and the seed's "Technical details"):

* Images, profile "gemini-1.5": a flat 258 per image.
* Images, profile "gemini-2" (2.x and later): 258 when both sides are <= 384 px, otherwise
  ceil(w/768) * ceil(h/768) * 258. The tiles are computed on the size the client sent (after EXIF
  rotation, before our 768/3072 scaling). The real service's crop-unit rule is subtler: an estimate.
* Images and video frames, profile "gemini-3" (Gemini 3 and later): `mediaResolution` sets a fixed
  count: images LOW 280, MEDIUM 560, HIGH 1120 (the default), ULTRA_HIGH 2240; video frames 70 at
  LOW and MEDIUM (the default) and 280 at HIGH and above, plus the timestamp marker.
* Profile "gemini-2" at MEDIA_RESOLUTION_LOW: 64 per image and per video frame (about 100 tokens/s
  of video with audio and timestamps, as documented); other resolutions keep the 258 rules.
* Video: 258 per sampled frame, plus TIMESTAMP_TOKENS per sampled frame for its "MM:SS" marker,
  plus 32 tokens per second of the clip when the video has an audio track. With the default
  1 fps that is 263 tokens/s without audio and 295 with it, inside the documented ~263-300.
  Frames and timestamps are reported under VIDEO, the video's audio under AUDIO (the split
  `promptTokensDetails` needs; the total is the same either way).
* The sampler: frames sit on the absolute grid k/fps (k = 0, 1, ...) inside [start, end), so
  1 fps frames are those at 0 s, 1 s, 2 s ... whatever the clip; a clip shorter than one grid
  step still gets one frame. `pollux.media.video` samples with the same function.
* Audio files: ceil(seconds * 32).
* Text, for engines without a tokenizer: ceil(characters / 4) (the "about 4 characters per token"
  rule), characters being Unicode code points.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pollux.errors import InvalidArgument
from pollux.media.prepared import PreparedAudio, PreparedImage, PreparedVideo
from pollux.prompt_types import FunctionCall, FunctionResponse, MediaPart, RequestTurn, TextPart, VideoOptions

PROFILES = ("gemini-1.5", "gemini-2", "gemini-3")
DEFAULT_PROFILE = "gemini-2"

TOKENS_PER_IMAGE = 258
TILE = 768
SMALL_IMAGE_SIDE = 384
TOKENS_PER_FRAME = 258
TIMESTAMP_TOKENS = 5  # one "MM:SS" marker per sampled frame
AUDIO_TOKENS_PER_SECOND = 32
CHARS_PER_TOKEN = 4
DEFAULT_FPS = 1.0
MAX_FPS = 24.0
MODALITIES = ("TEXT", "IMAGE", "VIDEO", "AUDIO")
# Gemini 3: tokens per image / per video frame at each mediaResolution (None: the default).
GEMINI3_IMAGE = {"MEDIA_RESOLUTION_LOW": 280, "MEDIA_RESOLUTION_MEDIUM": 560, "MEDIA_RESOLUTION_HIGH": 1120,
                 "MEDIA_RESOLUTION_ULTRA_HIGH": 2240, None: 1120}
LOW_RESOLUTION_TOKENS = 64  # gemini-2 at MEDIA_RESOLUTION_LOW, per image and per frame
GEMINI3_FRAME = {"MEDIA_RESOLUTION_LOW": 70, "MEDIA_RESOLUTION_MEDIUM": 70, "MEDIA_RESOLUTION_HIGH": 280,
                 "MEDIA_RESOLUTION_ULTRA_HIGH": 280, None: 70}

_EPS = 1e-9  # float slack so 12.0 s at 1 fps is 12 frames, not 13


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown token profile {profile!r}; expected one of {PROFILES}")


def _resolution(value: str | None) -> str | None:
    return None if value in (None, "", "MEDIA_RESOLUTION_UNSPECIFIED") else value


def count_image(width: int, height: int, profile: str = DEFAULT_PROFILE, resolution: str | None = None) -> int:
    """Tokens for one image of the given original size (see module doc); `resolution` counts on the
    gemini-3 profile and, at LOW, on gemini-2 (gemini-1.5 has no mediaResolution: always 258)."""
    _check_profile(profile)
    if profile == "gemini-3":
        return GEMINI3_IMAGE.get(_resolution(resolution), GEMINI3_IMAGE[None])
    if profile == "gemini-2" and resolution == "MEDIA_RESOLUTION_LOW":
        return LOW_RESOLUTION_TOKENS
    if profile == "gemini-1.5":
        return TOKENS_PER_IMAGE
    if width <= SMALL_IMAGE_SIDE and height <= SMALL_IMAGE_SIDE:
        return TOKENS_PER_IMAGE
    return math.ceil(width / TILE) * math.ceil(height / TILE) * TOKENS_PER_IMAGE


def resolve_clip(
    duration: float, fps: float | None = None, start: float | None = None, end: float | None = None
) -> tuple[float, float, float]:
    """Validate a part's videoMetadata against a video; returns (fps, start, end) with defaults.

    `end` past the video is clamped to its duration; everything else out of range is a 400.
    """
    if fps is None:
        fps = DEFAULT_FPS
    if not (isinstance(fps, (int, float)) and 0 < fps <= MAX_FPS):  # NaN fails both comparisons
        raise InvalidArgument(f"videoMetadata.fps must be greater than 0 and at most {MAX_FPS:g}, got {fps}.")
    start = 0.0 if start is None else float(start)
    if not start >= 0:
        raise InvalidArgument(f"videoMetadata.startOffset must not be negative, got {start:g}s.")
    if end is not None and not float(end) >= 0:
        raise InvalidArgument(f"videoMetadata.endOffset must not be negative, got {float(end):g}s.")
    if end is not None and float(end) <= start:
        raise InvalidArgument(f"videoMetadata.endOffset ({float(end):g}s) must be after startOffset ({start:g}s).")
    if duration > 0 and start >= duration:
        raise InvalidArgument(
            f"videoMetadata.startOffset {start:g}s is not before the end of the video ({duration:g}s)."
        )
    end = duration if end is None else min(float(end), duration)
    return float(fps), start, max(end, start)


def sample_times(start: float, end: float, fps: float) -> list[float]:
    """The sampler's grid: k/fps for every k with start <= k/fps < end; at least one frame."""
    first = math.ceil(start * fps - _EPS)
    last = math.ceil(end * fps - _EPS)  # exclusive
    if last <= first:
        return [start]
    return [k / fps for k in range(first, last)]


def count_video_frames(
    duration: float, fps: float | None = None, start: float | None = None, end: float | None = None
) -> int:
    fps, start, end = resolve_clip(duration, fps, start, end)
    first = math.ceil(start * fps - _EPS)
    last = math.ceil(end * fps - _EPS)
    return max(1, last - first)


def count_video(
    duration: float,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    has_audio: bool = False,
    profile: str = DEFAULT_PROFILE,
    resolution: str | None = None,
) -> tuple[int, int]:
    """(VIDEO tokens: frames + timestamps, AUDIO tokens: the clip's soundtrack)."""
    _check_profile(profile)  # 1.5 and 2.x share the video rule
    frames = count_video_frames(duration, fps, start, end)
    _, start_s, end_s = resolve_clip(duration, fps, start, end)
    audio = count_audio(end_s - start_s) if has_audio else 0
    if profile == "gemini-3":
        per_frame = GEMINI3_FRAME.get(_resolution(resolution), GEMINI3_FRAME[None])
    elif profile == "gemini-2" and resolution == "MEDIA_RESOLUTION_LOW":
        per_frame = LOW_RESOLUTION_TOKENS
    else:
        per_frame = TOKENS_PER_FRAME
    return frames * (per_frame + TIMESTAMP_TOKENS), audio


def count_audio(duration: float) -> int:
    return math.ceil(max(duration, 0.0) * AUDIO_TOKENS_PER_SECOND - _EPS) if duration > 0 else 0


def count_text_estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ImageInput:
    """One image part, as `count_modalities` needs it: its original size and mediaResolution."""

    width: int
    height: int
    resolution: str | None = None


@dataclass(frozen=True)
class VideoInput:
    """One video part, as `count_modalities` needs it."""

    duration: float
    has_audio: bool = False
    fps: float | None = None
    start: float | None = None
    end: float | None = None
    resolution: str | None = None


def count_modalities(
    *,
    texts: Iterable[str] = (),
    images: Iterable[ImageInput | tuple[int, int]] = (),
    videos: Iterable[VideoInput] = (),
    audios: Iterable[float] = (),
    profile: str = DEFAULT_PROFILE,
    text_counter: Callable[[str], int] | None = None,
) -> dict[str, int]:
    """Sum a prompt per modality: {"TEXT", "IMAGE", "VIDEO", "AUDIO"} (always all four keys).

    `images` are original sizes (an `ImageInput`, or a bare (width, height)); `audios` are durations
    in seconds; `text_counter` is an engine's real tokenizer when it has one, else the chars/4 estimate.
    """
    count_text = text_counter or count_text_estimate
    totals = dict.fromkeys(MODALITIES, 0)
    totals["TEXT"] = sum(count_text(t) for t in texts)
    for im in images:
        im = im if isinstance(im, ImageInput) else ImageInput(*im)
        totals["IMAGE"] += count_image(im.width, im.height, profile, im.resolution)
    for v in videos:
        video, audio = count_video(v.duration, v.fps, v.start, v.end, v.has_audio, profile, v.resolution)
        totals["VIDEO"] += video
        totals["AUDIO"] += audio
    totals["AUDIO"] += sum(count_audio(d) for d in audios)
    return totals


def count_request(
    turns: Iterable[RequestTurn],
    system: str | None,
    profile: str = DEFAULT_PROFILE,
    text_counter: Callable[[str], int] | None = None,
    resolution: str | None = None,
) -> dict[str, int]:
    """The Gemini-rule counts of a request whose media is prepared (`MediaPart`s), per modality.

    A function call or response counts as the text of its JSON; `resolution` is generationConfig's
    mediaResolution, used by parts that name none of their own.
    """
    texts = [system] if system else []
    images: list[ImageInput] = []
    videos: list[VideoInput] = []
    audios: list[float] = []
    for turn in turns:
        for part in turn.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, (FunctionCall, FunctionResponse)):
                texts.append(json.dumps(vars(part)))
            elif isinstance(part, MediaPart):
                p, res = part.prepared, part.resolution or resolution
                if isinstance(p, PreparedImage):
                    images.append(ImageInput(*p.original_size, res))
                elif isinstance(p, PreparedVideo):
                    v = part.video or VideoOptions()
                    videos.append(VideoInput(p.duration, p.audio is not None, v.fps, v.start, v.end, res))
                elif isinstance(p, PreparedAudio):
                    audios.append(p.duration)
            else:  # a FileRef / InlineRef: media is counted once prepared, never guessed
                raise TypeError(f"count_request needs prepared media, got {type(part).__name__}")
    return count_modalities(texts=texts, images=images, videos=videos, audios=audios, profile=profile,
                            text_counter=text_counter)


def reported(totals: dict[str, int]) -> dict[str, int]:
    """The modalities Gemini reports in `promptTokensDetails`: those the prompt has tokens of. A
    modality absent from the prompt (0 tokens) is left out, a prompt of one fileData image reports
    IMAGE alone; the total is the same either way."""
    return {m: n for m, n in totals.items() if n}


def modality_details(totals: dict[str, int]) -> list[dict[str, str | int]]:
    """`promptTokensDetails` entries (Gemini's wire form), zero modalities left out."""
    return [{"modality": m, "tokenCount": n} for m, n in reported(totals).items()]


def check_input_limit(total: int, limit: int) -> None:
    """Gemini's 400 for a prompt over the model's `inputTokenLimit`, in the accounting countTokens reports."""
    if total > limit:
        raise InvalidArgument(f"The input token count ({total}) exceeds the maximum number of tokens allowed "
                              f"({limit}).")
