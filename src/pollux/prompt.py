"""Prompt assembly: a request's contents plus prepared media → one engine-neutral `Prompt`.

Done once, above the engines. Images stay images. A video becomes its sampled frames, each
preceded by a `MM:SS` marker (a `Text` with modality VIDEO) and followed by the transcript of the
seconds it covers (modality AUDIO). An audio file becomes its timestamped transcript, plus the raw
audio for engines that take audio. When the prompt exceeds the token budget, video frames are
thinned evenly; frames at every MM:SS the user's text mentions are always kept, and the prompt
records which frames were used (`Prompt.thinning`, reported in the response).

The request's media is already prepared and checked against the engine's capabilities
(`pollux.capabilities`, called by generation); assembly only arranges it.

A request for bounding boxes is recognised here, once, from the system instruction and the last
user turn together (a system instruction "Return bounding boxes as a JSON array" with the prompt
"Show me the positions of the socks"), and handed to every engine as `Prompt.boxes`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pollux.engines.base import Capabilities
from pollux.errors import InvalidArgument
from pollux.media.prepared import Frame, PreparedAudio, PreparedImage, PreparedVideo
from pollux.prompt_types import (Audio, BoxRequest, FileRef, FunctionCall, FunctionResponse, Image, InlineRef,
                                 MediaPart, Prompt, RequestTurn, Segment, Text, TextPart, Turn, VideoThinning)

Transcribe = Callable[[PreparedAudio], list[dict]]
CountTokens = Callable[[Prompt], int]

# 01:05, 1:05 and 0:01:05 (H:MM:SS); minutes may exceed 59 in MM:SS.
_MENTION = re.compile(r"(?<![\d:])(?:(\d{1,2}):)?(\d{1,3}):([0-5]\d)(?![\d:])")


def mmss(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


def mentioned_seconds(text: str) -> list[float]:
    """Every MM:SS (or H:MM:SS) moment a text mentions, in seconds."""
    out: list[float] = []
    for hours, minutes, seconds in _MENTION.findall(text):
        out.append(int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds))
    return out


# ---------------------------------------------------------------------------------- box intent

_ASKS_BOX = re.compile(r"bounding[- ]box|box_2d|\bbbox|\[\s*ymin|\bbox(?:es)?\s+(?:for|of|around)\b", re.I)
_PHRASE_PATTERNS = [
    re.compile(r"\bbox(?:es)?\s+(?:for|of|around)\s+(.+?)(?=[.?!\n:\[(]|$)", re.I),
    re.compile(r"\b(?:detect|locate|find|point to|where (?:is|are))\s+(.+?)(?=[.?!\n:\[(]|$)", re.I),
    re.compile(r"\b(?:positions?|locations?)\s+of\s+(.+?)(?=[.?!\n:\[(]|$)", re.I),
]
_ARTICLES = re.compile(r"^(?:(?:all|each|every|any|the|a|an|of|this|that|these|those)\s+)+", re.I)
_TRAILERS = re.compile(r"\s+(?:in|on|from|within)\s+(?:the|this|that|each|every)\s+(?:image|picture|photo|frame)s?.*$",
                       re.I)
_MANY = re.compile(r"\bboxes\b|\ball\b|\bevery\b|\beach\b", re.I)
_JSON = re.compile(r"\bjson\b|box_2d", re.I)


def is_box_request(text: str, schema: dict | None = None) -> bool:
    return bool(_ASKS_BOX.search(text)) or (schema is not None and "box_2d" in json.dumps(schema))


def wants_json(text: str, response_mime_type: str) -> bool:
    return response_mime_type == "application/json" or bool(_JSON.search(text))


def wants_many(text: str) -> bool:
    return bool(_MANY.search(text))


def phrases(text: str) -> list[str]:
    """The object names a box request asks for: "a bounding box for the piranha" → ["piranha"]."""
    for pattern in _PHRASE_PATTERNS:
        m = pattern.search(text)
        if not m:
            continue
        found = []
        for raw in re.split(r",|\band\b|\bor\b|;", m.group(1)):
            name = _TRAILERS.sub("", _ARTICLES.sub("", raw.strip())).strip(" '\"")
            if name and name.lower() not in ("it", "them", "object", "objects"):
                found.append(name)
        if found:
            return found
    return ["object"]


def box_request(system: str | None, user_text: str, response_mime_type: str = "text/plain",
                response_schema: dict | None = None) -> BoxRequest | None:
    """The box request of a prompt, or None: the system instruction and the user's text read together;
    the phrases come from the user's text first (the system instruction sets the format)."""
    both = f"{system or ''}\n{user_text}"
    if not is_box_request(both, response_schema):
        return None
    names = phrases(user_text)
    if names == ["object"] and system:
        names = phrases(system)
    return BoxRequest(tuple(names), wants_many(both), wants_json(both, response_mime_type))


def transcript_line(segment: dict) -> str:
    return f"Speech [{mmss(segment['start'])}-{mmss(segment['end'])}]: {segment['text'].strip()}"


@dataclass
class _Video:
    """A video part while frames are chosen: its candidate frames and their transcript."""

    part: MediaPart
    video: PreparedVideo  # part.prepared
    frames: list[Frame]
    transcript: list[dict] = field(default_factory=list)
    kept: set[int] = field(default_factory=set)  # indices into frames
    required: set[int] = field(default_factory=set)  # frames at mentioned MM:SS


def assemble(
    turns: list[RequestTurn],
    system: str | None,
    *,
    capabilities: Capabilities,
    token_budget: int | None = None,
    count_tokens: CountTokens | None = None,
    transcribe: Transcribe | None = None,
    response_mime_type: str = "text/plain",
    response_schema: dict | None = None,
    media_resolution: str | None = None,
) -> Prompt:
    """Build the prompt; raise InvalidArgument when it cannot fit `token_budget` even after thinning.
    The response format matters only to box intent (JSON or the plain list). `media_resolution`
    (generationConfig's) is the level of every media part that names none of its own."""
    prompt = _assemble(turns, system, capabilities, token_budget, count_tokens, transcribe, media_resolution)
    user = next((t for t in reversed(turns) if t.role == "user"), None)
    user_text = " ".join(p.text for p in user.parts if isinstance(p, TextPart)) if user else ""
    prompt.boxes = box_request(system, user_text, response_mime_type, response_schema)
    return prompt


def _assemble(turns: list[RequestTurn], system: str | None, capabilities: Capabilities, token_budget: int | None,
              count_tokens: CountTokens | None, transcribe: Transcribe | None,
              media_resolution: str | None = None) -> Prompt:
    videos: list[_Video] = []
    for turn in turns:
        for part in turn.parts:
            if isinstance(part, (FileRef, InlineRef)):  # generation prepares media before assembly
                raise TypeError(f"prompt assembly needs prepared media, got {type(part).__name__}")
            if isinstance(part, MediaPart) and isinstance(part.prepared, PreparedVideo):
                videos.append(_prepare_video(part, part.prepared, transcribe))

    mentions = [s for t in turns if t.role == "user" for p in t.parts if isinstance(p, TextPart)
                for s in mentioned_seconds(p.text)]
    for video in videos:
        video.required = _frames_at(video.frames, mentions)
        video.kept = set(range(len(video.frames)))

    build = lambda stand_ins: _build(turns, system, capabilities, transcribe, videos, stand_ins,  # noqa: E731
                                     media_resolution)
    if token_budget is None or count_tokens is None:
        return build(False)
    if not videos:
        prompt = build(False)
        _check_fits(count_tokens(prompt), token_budget)
        return prompt
    _thin_to_fit(videos, lambda: count_tokens(build(True)), token_budget)
    prompt = build(False)
    for v in videos:
        used = sorted(v.kept | v.required)
        if len(used) < len(v.frames):
            prompt.thinning.append(VideoThinning(v.part.source, len(v.frames),
                                                 tuple(v.frames[i].timestamp for i in used)))
    return prompt


# ---------------------------------------------------------------------------------- media parts

def _prepare_video(part: MediaPart, video: PreparedVideo, transcribe: Transcribe | None) -> _Video:
    frames = list(video.frames_for(part.video))  # clip + fps, decoding only frames the artifact lacks
    transcript: list[dict] = []
    if video.audio is not None and transcribe is not None:
        opts = part.video
        start = (opts.start if opts and opts.start is not None else 0.0)
        end = (opts.end if opts and opts.end is not None else video.duration)
        transcript = [s for s in transcribe(video.audio) if s["end"] > start and s["start"] < end]
    return _Video(part, video, frames, transcript)


def _frames_at(frames: Sequence[Frame], seconds: list[float]) -> set[int]:
    """Indices of the frames nearest each mentioned moment that lies inside the sampled span."""
    if not frames:
        return set()
    first, last = frames[0].timestamp, frames[-1].timestamp
    step = (last - first) / max(1, len(frames) - 1) if len(frames) > 1 else 1.0
    out = set()
    for t in seconds:
        if first - step <= t <= last + step:
            out.add(min(range(len(frames)), key=lambda i: abs(frames[i].timestamp - t)))
    return out


# ---------------------------------------------------------------------------------- building

def _build(turns: list[RequestTurn], system: str | None, caps: Capabilities, transcribe: Transcribe | None,
           videos: list[_Video], stand_ins: bool, media_resolution: str | None = None) -> Prompt:
    """The prompt for the current frame selection; `stand_ins` reuses one decoded frame per video
    for every frame (same size), so token counting during thinning never decodes them all."""
    by_part = {id(v.part): v for v in videos}
    out: list[Turn] = []
    for turn in turns:
        segments: list[Segment] = []
        for part in turn.parts:
            if isinstance(part, TextPart):
                segments.append(Text(part.text))
                continue
            if isinstance(part, (FunctionCall, FunctionResponse)):  # history of a tool-using chat, kept in place
                segments.append(part)
                continue
            if not isinstance(part, MediaPart):  # refused in `_assemble` already
                continue
            p = part.prepared
            res = part.resolution or media_resolution  # resolved once here: every engine reads the same level
            if isinstance(p, PreparedImage):
                segments.append(Image(p.image, p.original_size, source=part.source, resolution=res,
                                      cache_key=f"{p.sha256}:{p.image.size[0]}x{p.image.size[1]}{_res_key(res)}",
                                      encoded=p.encoded))
            elif isinstance(p, PreparedVideo):
                segments.extend(_video_segments(by_part[id(part)], stand_ins, res))
            elif isinstance(p, PreparedAudio):
                segments.extend(_audio_segments(part, p, caps, transcribe))
        out.append(Turn(role=turn.role, segments=segments))
    return Prompt(turns=out, system=system)


def _res_key(resolution: str | None) -> str:
    """Part of a cache key: features computed at one level are not another level's."""
    return f"/{resolution}" if resolution else ""


def _video_segments(video: _Video, stand_ins: bool, resolution: str | None = None) -> list[Segment]:
    prepared = video.video
    kept = sorted(video.kept | video.required)
    segments: list[Segment] = []
    stand_in = video.frames[kept[0]].load() if stand_ins and kept else None
    speech = sorted(video.transcript, key=lambda s: s["start"])
    # Each transcript segment goes after the last kept frame at or before its start.
    starts = [video.frames[i].timestamp for i in kept]
    placed: dict[int, list[dict]] = {}
    leading: list[dict] = []
    for seg in speech:
        slot = max((k for k, t in enumerate(starts) if t <= seg["start"] + 1e-6), default=None)
        (leading if slot is None else placed.setdefault(slot, [])).append(seg)
    for seg in leading:  # speech before the first kept frame (a clip starting mid-sentence)
        segments.append(Text(transcript_line(seg), modality="AUDIO"))
    for k, index in enumerate(kept):
        frame = video.frames[index]
        segments.append(Text(mmss(frame.timestamp), modality="VIDEO"))
        image = stand_in if stand_in is not None else frame.load()
        segments.append(Image(image, prepared.original_size, modality="VIDEO", timestamp=frame.timestamp,
                              source=video.part.source, resolution=resolution,
                              cache_key=f"{prepared.sha256}@{frame.timestamp:.3f}{_res_key(resolution)}"))
        for seg in placed.get(k, []):
            segments.append(Text(transcript_line(seg), modality="AUDIO"))
    return segments


def _audio_segments(part: MediaPart, audio: PreparedAudio, caps: Capabilities,
                    transcribe: Transcribe | None) -> list[Segment]:
    segments: list[Segment] = []
    if caps.audio:
        segments.append(Audio(audio.samples(), audio.duration, source=part.source))
    if transcribe is not None:
        lines = [transcript_line(s) for s in transcribe(audio)]
        body = "\n".join(lines) if lines else "(no speech)"
        segments.append(Text(f"Transcript of the audio ({mmss(audio.duration)} long):\n{body}", modality="AUDIO"))
    return segments


# ---------------------------------------------------------------------------------- the budget

def _check_fits(count: int, budget: int) -> None:
    if count > budget:
        raise InvalidArgument(f"The input token count ({count}) exceeds the maximum number of tokens allowed "
                              f"({budget}) by the local model's context (its own tokens; text and images are never "
                              "thinned, only video frames).")


def _even(n: int, total: int) -> list[int]:
    """n indices spread evenly over range(total), first and last included."""
    if n <= 0 or total <= 0:
        return []
    if n >= total:
        return list(range(total))
    if n == 1:
        return [0]
    return sorted({round(i * (total - 1) / (n - 1)) for i in range(n)})


def _select(videos: list[_Video], n: int) -> None:
    """Keep n frames over all videos (spread evenly across their concatenated timelines)."""
    positions = [(v, i) for v in videos for i in range(len(v.frames))]
    for v in videos:
        v.kept = set()
    for index in _even(n, len(positions)):
        video, frame = positions[index]
        video.kept.add(frame)


def _thin_to_fit(videos: list[_Video], count: Callable[[], int], budget: int) -> None:
    total = sum(len(v.frames) for v in videos)
    _select(videos, total)
    full = count()
    if full <= budget:
        return
    # Largest n whose prompt fits; counts grow with n, so binary search (O(log frames) counts).
    low, high = 1 if total else 0, total - 1
    _select(videos, low)
    smallest = count()
    if smallest > budget:
        kept = sum(len(v.kept | v.required) for v in videos)
        raise InvalidArgument(
            f"The input token count ({smallest}) exceeds the maximum number of tokens allowed ({budget}), even with "
            f"the video thinned from {total} to {kept} frames.")
    while low < high:
        mid = (low + high + 1) // 2
        _select(videos, mid)
        if count() <= budget:
            low = mid
        else:
            high = mid - 1
    _select(videos, low)
