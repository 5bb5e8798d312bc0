"""Video preparation: one frame per second (JPEG, longest side <= 768) and the soundtrack.

Decoding follows media-perf.md: PyAV, one sequential pass, frame threads (`thread_type="AUTO"`)
and `skip_frame="NONREF"` (non-reference frames are never decoded; 1.5x cheaper, still exact),
picking for each second k the first decoded frame with pts >= k - 1/(2*fps). When the container
index shows a keyframe at every second (1 s GOPs), only keyframes are decoded ("NONKEY").
Only picked frames are converted and they go to disk at once, so memory stays flat whatever the
length. Audio is demuxed in the same pass and streamed into audio.wav.

Timestamps are seconds from the container's start time. When no frame lies within half a step of
a target (a variable-frame-rate gap), the frame on screen at that moment, the previous one, is
used and stamped with the target time. If that gap came from frames `skip_frame` left out, the
pass is redone skipping less (NONKEY -> NONREF -> nothing).
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av

from pollux.errors import InvalidArgument
from pollux.media import artifact, tokens
from pollux.media.audio import (
    CANCEL_CHECK_PACKETS,
    WAV_NAME,
    WavWriter,
    decode_packet,
    demux,
    known_duration,
    start_time,
    too_long,
)
from pollux.media.prepared import Frame, PreparedAudio, PreparedVideo

if TYPE_CHECKING:
    from pollux.prompt_types import VideoOptions
    from pollux.settings import Settings

STORED_FPS = 1.0
FRAME_MAX_SIDE = 768  # stored frames are downscaled to this; engines resize further themselves
JPEG_QUALITY = 90
HOLD_LAST_FRAME_SECONDS = 1.0
KEYFRAME_SLACK = 0.25  # a keyframe this close after a target second may stand in for it
FRAMES_DIR = "frames"
_cache_lock = threading.Lock()


@dataclass
class _Pick:
    target: float
    time: float  # the frame's pts, or the target when the previous frame is held over a gap
    frame: av.VideoFrame
    held: bool


class _Sampler:
    """Assigns decoded frames (in display order) to target times.

    A target k takes the first frame with pts >= k - lead (lead: half a source frame interval).
    If that frame is more than `tolerance` (half a sampling step) past k, the frame before it
    is the one on screen at k and is held instead.
    """

    def __init__(self, targets: Sequence[float], lead: float, tolerance: float):
        self.targets = targets
        self.lead = lead
        self.tolerance = tolerance
        self.next = 0
        self.prev: tuple[av.VideoFrame, float] | None = None

    @property
    def done(self) -> bool:
        return self.next >= len(self.targets)

    def feed(self, frame: av.VideoFrame, t: float) -> list[_Pick]:
        picks = []
        while not self.done and t >= self.targets[self.next] - self.lead:
            target = self.targets[self.next]
            if t <= target + self.tolerance or self.prev is None:
                picks.append(_Pick(target, t, frame, held=False))
            else:
                picks.append(_Pick(target, target, self.prev[0], held=True))
            self.next += 1
        self.prev = (frame, t)
        return picks

    def finish(self, end: float) -> list[_Pick]:
        """Hold the last frame for targets before the end of the video stream."""
        picks = []
        while self.prev is not None and not self.done and self.targets[self.next] < end:
            target = self.targets[self.next]
            picks.append(_Pick(target, target, self.prev[0], held=True))
            self.next += 1
        return picks


class _SkippedTooMuch(Exception):
    """A target fell into a gap made by `skip_frame`: decode again, skipping less."""

    def __init__(self, skip: str):
        super().__init__(skip)
        self.skip = skip


class _SeekOvershot(Exception):
    """The first frame after a seek is already past the first target: decode from the start."""


def _skipped_near(target: float, sampler: _Sampler, packet_times: deque[float]) -> bool:
    """Was a frame that would have matched `target` demuxed but never decoded (skipped)?"""
    return any(target - sampler.lead <= p <= target + sampler.tolerance for p in packet_times)


@dataclass
class _Geometry:
    original_size: tuple[int, int]  # display size: sample aspect ratio and rotation applied
    frame_size: tuple[int, int]  # stored JPEG size
    rotation: int  # counter-clockwise degrees to apply for display


def _geometry(stream: av.video.stream.VideoStream, rotation: int) -> _Geometry:
    cc = stream.codec_context
    width, height = cc.width, cc.height
    sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
    if sar and sar > 0 and sar != 1:
        width = max(1, round(width * sar))
    if rotation % 180:
        width, height = height, width
    scale = min(1.0, FRAME_MAX_SIDE / max(width, height))
    frame_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return _Geometry((width, height), frame_size, rotation)


def _save_frame(frame: av.VideoFrame, geo: _Geometry, path: Path) -> None:
    w, h = geo.frame_size
    if geo.rotation % 180:
        w, h = h, w  # scale in the coded orientation, rotate after
    image = frame.to_image(width=w, height=h, interpolation="AREA")
    if geo.rotation:
        image = image.rotate(geo.rotation, expand=True)
    image.save(path, format="JPEG", quality=JPEG_QUALITY)


def _frame_time(frame: av.VideoFrame, origin: float, fallback: float) -> float:
    return frame.time - origin if frame.time is not None else fallback


def _stream_rate(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:  # cover art is not video
            return stream
    raise InvalidArgument("The file has no video stream.")


def index_keyframes(stream: av.video.stream.VideoStream, origin: float) -> tuple[list[tuple[float, int]], float] | None:
    """(keyframes as (seconds, pts), sorted; the last indexed time) from the container's
    index, or None when it has none. Only containers with a full index at open (MP4/MOV/3GP, AVI,
    Matroska with cues) can say this without reading the file."""
    try:
        entries = stream.index_entries
        stamps = [(e.timestamp, e.is_keyframe) for e in entries] if len(entries) > 1 else []
    except Exception:
        return None
    if not stamps:
        return None
    shift = (stream.start_time - stamps[0][0]) if stream.start_time is not None else 0  # index times are dts

    def seconds(ts: int) -> float:
        return float((ts + shift) * stream.time_base) - origin  # type: ignore[operator]  # set on a video stream

    keys = sorted((seconds(ts), ts + shift) for ts, key in stamps if key)  # seek takes pts
    return keys, seconds(max(ts for ts, _ in stamps))


def _keyframes_cover(stream: av.video.stream.VideoStream, targets: list[float], origin: float, lead: float) -> bool:
    """Does the container's index put a keyframe at (or just after) every target second?

    Then decoding keyframes only is exact enough and 3-5x cheaper (phones and screen recorders
    often use a 1 s GOP; media-perf.md); without an index we fall back to NONREF.
    """
    index = index_keyframes(stream, origin)
    if index is None:
        return False
    times = [t for t, _ in index[0]]
    targets = [t for t in targets if t <= index[1]]  # a longer soundtrack has no pictures to sample
    if len(targets) < 2 or len(times) < len(targets):
        return False
    for target in targets:
        i = bisect.bisect_left(times, target - lead)
        if i == len(times) or times[i] > target + KEYFRAME_SLACK:
            return False
    return True


def prepare_video(blob: Path, artifact_dir: Path, settings: Settings, cancelled: Callable[[], bool]) -> PreparedVideo:
    """Decode a video into its artifact: frames/*.jpg at 1 fps, audio.wav, manifest.json.

    A long video with a keyframe index is cut at keyframes into segments decoded in parallel
    worker processes (video_parallel.py): both cores busy, and the server's GIL left free.
    """
    from pollux.media import video_parallel

    skip = None  # the first pass picks NONKEY or NONREF; a pass that skipped a needed frame steps down
    parallel = True
    while True:
        try:
            if parallel:
                done = video_parallel.prepare(blob, artifact_dir, settings, cancelled, skip)
                if done is not None:
                    return done
                parallel = False  # short, unindexed, or a segment could not stand alone
            return _prepare(blob, artifact_dir, settings, cancelled, skip)
        except _SkippedTooMuch as exc:
            skip = "NONREF" if exc.skip == "NONKEY" else "DEFAULT"


@dataclass
class _Job:
    """What one decoding pass needs: the targets it owns, how to skip, where to start.

    A segment starts at a keyframe `lo` seconds in (`seek`: that keyframe's pts) and
    owns the targets whose pick (the first frame >= target - lead) lies at or after `lo`; the
    whole video is one job with lo = -inf and seek = None.
    """

    targets: list[float]
    lead: float
    tolerance: float
    skip: str
    origin: float
    rate: float
    limit: float
    thread_type: str = "AUTO"
    lo: float = float("-inf")
    seek: int | None = None
    last: bool = True
    prefix: str = ""


@dataclass
class _Decoded:
    frames: _FrameWriter
    sampler: _Sampler
    last_t: float | None
    last_packet: float | None


class _NotSegmentable(Exception):
    """A segment could not be decoded on its own (seek landed late, stream ended early)."""


def _plan(container: av.container.InputContainer, settings: Settings, skip: str | None) -> tuple[_Job, float | None]:
    """The whole-video job (skip chosen from the index when not given) and the declared duration."""
    vstream = _video_stream(container)
    limit = settings.max_video_seconds
    declared = known_duration(container)
    if declared is not None and declared > limit:
        raise too_long("video", declared, limit)
    origin, rate = start_time(container), _stream_rate(vstream)
    targets = tokens.sample_times(0.0, max(declared or limit, 1e-6), STORED_FPS)
    lead, tolerance = 0.5 / rate, 0.5 / STORED_FPS
    if skip is None:
        skip = "NONKEY" if declared and _keyframes_cover(vstream, targets, origin, lead) else "NONREF"
    return _Job(targets, lead, tolerance, skip, origin, rate, limit), declared


def _decode_frames(
    container: av.container.InputContainer,
    job: _Job,
    staging: Path,
    cancelled: Callable[[], bool],
    audio: tuple[av.audio.stream.AudioStream, WavWriter] | None = None,
) -> _Decoded:
    """One decoding pass over `job`'s part of the video, picked frames saved as they come; audio
    (when given) is demuxed and written in the same pass."""
    vstream = _video_stream(container)
    vstream.codec_context.thread_type = job.thread_type
    vstream.codec_context.skip_frame = job.skip  # type: ignore[assignment]  # one of PyAV's names
    sampler = _Sampler(job.targets, job.lead, job.tolerance)
    frames = _FrameWriter(staging, vstream, sampler, job.skip, job.prefix)
    if job.seek is not None:
        container.seek(job.seek, stream=vstream, backward=True)
    streams = [vstream] + ([audio[0]] if audio is not None else [])
    last_t: float | None = None
    for n, packet in enumerate(demux(container, streams)):
        if n % CANCEL_CHECK_PACKETS == 0:
            artifact.check_cancelled(cancelled)
        if packet.stream is not vstream:
            for frame in decode_packet(packet):
                audio[1].write(frame)  # type: ignore[index]  # an audio packet: the soundtrack exists
            continue
        if packet.pts is not None and packet.time_base is not None:
            pt = float(packet.pts * packet.time_base) - job.origin
            if pt > job.limit:
                raise too_long("video", pt, job.limit)
            frames.packet_times.append(pt)
        for frame in decode_packet(packet):
            t = _frame_time(frame, job.origin, last_t + 1 / job.rate if last_t is not None else 0.0)
            if last_t is None and job.seek is not None and t > job.lo + 1e-3:
                raise _NotSegmentable(f"the first frame after the seek is at {t:.3f} s, past {job.lo:.3f} s")
            last_t = t
            frames.emit(sampler.feed(frame, t))
        if not job.last and sampler.done:
            break  # the next segment takes over from here
    if not job.last and not sampler.done:
        raise _NotSegmentable("the stream ended before the segment's last target")
    last_packet = max(frames.packet_times, default=last_t) if last_t is not None else None
    return _Decoded(frames, sampler, last_t, last_packet)


def _finish_tail(container, job: _Job, d: _Decoded) -> float:
    """The video stream's end (seconds), after decoding the tail `skip_frame` left out, if any."""
    last_t, last_packet = d.last_t, d.last_packet
    assert last_t is not None and last_packet is not None  # the caller checked frames were found
    if job.skip != "DEFAULT" and last_packet > last_t + KEYFRAME_SLACK:
        # Frames after the last decoded one were skipped (keyframes only): the true last
        # picture is the one on screen for the remaining targets, so decode that tail.
        last_t = max(last_t, _decode_tail(container, _video_stream(container), d.sampler, d.frames, job.origin,
                                          job.rate, last_t))  # fmt: skip
    return max(last_t, last_packet) + 1 / job.rate


def _hold_last(d: _Decoded, duration: float, video_end: float) -> None:
    # A soundtrack a little longer than the picture (padding, rounding) is common: the last
    # frame stays on screen. Capped so a long audio tail is not hundreds of copies of it.
    d.frames.emit(d.sampler.finish(min(duration, video_end + HOLD_LAST_FRAME_SECONDS)))


def _prepare(
    blob: Path, artifact_dir: Path, settings: Settings, cancelled: Callable[[], bool], skip: str | None
) -> PreparedVideo:
    """The whole video in one sequential pass, in this process (frames and audio together)."""
    with artifact.open_media(blob) as container:
        job, declared = _plan(container, settings, skip)
        astream = next(iter(container.streams.audio), None)
        with artifact.building(artifact_dir, cancelled) as staging:
            (staging / FRAMES_DIR).mkdir()
            audio = WavWriter(staging / WAV_NAME, job.origin) if astream is not None else None
            try:
                d = _decode_frames(container, job, staging, cancelled,
                                   (astream, audio) if astream is not None and audio is not None else None)
            finally:
                audio_seconds = audio.close() if audio is not None else 0.0
            if d.last_t is None or not d.frames.entries:
                raise InvalidArgument("The video could not be decoded: no frames were found.")
            video_end = _finish_tail(container, job, d)
            duration = declared if declared is not None else max(video_end, audio_seconds)
            if duration > job.limit:
                raise too_long("video", duration, job.limit)
            _hold_last(d, duration, video_end)
            has_audio = audio is not None and audio.samples > 0
            if audio is not None and not has_audio:
                (staging / WAV_NAME).unlink(missing_ok=True)
            write_video_manifest(staging, blob, cancelled, job, d.frames.geometry, d.frames.entries, duration,
                                 video_end, has_audio, audio_seconds)  # fmt: skip
    return load_video(blob, artifact_dir)


def write_video_manifest(
    staging: Path,
    blob: Path,
    cancelled: Callable[[], bool],
    job: _Job,
    geo: _Geometry,
    entries: list[dict],
    duration: float,
    video_end: float,
    has_audio: bool,
    audio_seconds: float,
    sha256: str | None = None,
) -> None:
    manifest = {
        "kind": "video",
        "duration": duration,
        "video_end": video_end,
        "origin": job.origin,
        "rate": job.rate,
        "original_size": list(geo.original_size),
        "frame_size": list(geo.frame_size),
        "rotation": geo.rotation,
        "skip_frame": job.skip,
        "fps": STORED_FPS,
        "frames": entries,
        "has_audio": has_audio,
        "audio_duration": audio_seconds if has_audio else 0.0,
        "sha256": sha256 or artifact.file_sha256(blob, cancelled),
    }
    artifact.write_manifest(staging, manifest)


def _decode_tail(
    container, stream, sampler: _Sampler, frames: _FrameWriter, origin: float, rate: float, after: float
) -> float:
    """Decode everything after `after` (seconds) without skipping; returns the last frame time."""
    stream.codec_context.skip_frame = "DEFAULT"
    container.seek(int((after + origin) / stream.time_base), stream=stream, backward=True)
    last_t = after
    for packet in demux(container, [stream]):
        for frame in decode_packet(packet):
            t = _frame_time(frame, origin, last_t + 1 / rate)
            if t > after:
                frames.emit(sampler.feed(frame, t))
                last_t = max(last_t, t)
    return last_t


class _FrameWriter:
    """Writes picked frames as JPEGs into the staging folder, each distinct frame once."""

    def __init__(self, staging: Path, stream: av.video.stream.VideoStream, sampler: _Sampler, skip: str,
                 prefix: str = ""):
        self.staging = staging
        self.prefix = prefix
        self.stream = stream
        self.sampler = sampler
        self.skip = skip
        self.entries: list[dict] = []
        self.packet_times: deque[float] = deque(maxlen=4096)  # recent video packets, to spot skipped frames
        self._geometry: _Geometry | None = None
        self._last: tuple[av.VideoFrame, str] | None = None

    @property
    def geometry(self) -> _Geometry:
        assert self._geometry is not None, "no frame written yet"
        return self._geometry

    def emit(self, picks: list[_Pick]) -> None:
        for pick in picks:
            if pick.held and self.skip != "DEFAULT" and _skipped_near(pick.target, self.sampler, self.packet_times):
                raise _SkippedTooMuch(self.skip)
            if self._last is None or self._last[0] is not pick.frame:
                if self._geometry is None:
                    self._geometry = _geometry(self.stream, pick.frame.rotation or 0)
                name = f"{FRAMES_DIR}/{self.prefix}{len(self.entries):06d}.jpg"
                _save_frame(pick.frame, self._geometry, self.staging / name)
                self._last = (pick.frame, name)
            self.entries.append({"t": round(pick.time, 4), "file": self._last[1]})


def load_video(blob: Path, artifact_dir: Path) -> PreparedVideo:
    m = artifact.read_manifest(artifact_dir, "video")
    audio = None
    if m["has_audio"]:
        audio = PreparedAudio(duration=m["audio_duration"], wav_path=artifact_dir / WAV_NAME, artifact_dir=artifact_dir)
    return PreparedVideo(
        duration=m["duration"],
        original_size=tuple(m["original_size"]),
        frames=[Frame(timestamp=f["t"], path=artifact_dir / f["file"]) for f in m["frames"]],
        audio=audio,
        artifact_dir=artifact_dir,
        source_path=blob,
        sha256=m["sha256"],
        fps=m["fps"],
        extra={k: m[k] for k in ("origin", "rate", "video_end", "frame_size", "rotation")},
    )


# ---- prompt time: clip and fps ----


def frames_for(video: PreparedVideo, options: VideoOptions | None) -> list[Frame]:
    """Frames for a part's videoMetadata: stored ones where they fit, decoded (and cached) otherwise."""
    fps, start, end = tokens.resolve_clip(
        video.duration, *((options.fps, options.start, options.end) if options else (None, None, None))
    )
    targets = tokens.sample_times(start, end, fps)
    stored = video.frames
    if not stored:
        return []
    times = [f.timestamp for f in stored]
    nearest = [stored[_nearest_index(times, t)] for t in targets]
    if fps <= video.fps:
        return nearest
    tolerance = 0.5 / fps
    result: list[Frame | None] = [f if abs(f.timestamp - t) <= tolerance else None for f, t in zip(nearest, targets)]
    missing = [i for i, f in enumerate(result) if f is None]
    if missing:
        cache = _FrameCache(video.artifact_dir / f"frames_fps{fps:g}", fps)
        for i in missing:
            result[i] = cache.get(targets[i])
        still = [targets[i] for i in missing if result[i] is None]
        if still:
            decoded = _decode_targets(video, still, fps, cache)
            for i in missing:
                if result[i] is None:
                    result[i] = decoded.get(cache.key(targets[i]))
    # Anything the source could not give (damaged tail, ...) falls back to the nearest stored frame.
    return [f if f is not None else n for f, n in zip(result, nearest)]


def _nearest_index(times: list[float], t: float) -> int:
    i = bisect.bisect_left(times, t)
    if i == 0:
        return 0
    if i == len(times):
        return len(times) - 1
    return i if times[i] - t < t - times[i - 1] else i - 1


class _FrameCache:
    """Decoded frames for one fps, keyed by grid index k (t = k / fps); index.json lists them."""

    def __init__(self, folder: Path, fps: float):
        self.folder = folder
        self.fps = fps
        self._index = self._read()

    def key(self, t: float) -> int:
        return round(t * self.fps)

    def get(self, t: float) -> Frame | None:
        entry = self._index.get(str(self.key(t)))
        if entry is None or not (self.folder / entry["file"]).exists():
            return None
        return Frame(timestamp=entry["t"], path=self.folder / entry["file"])

    def path_for(self, t: float) -> Path:
        self.folder.mkdir(exist_ok=True)
        return self.folder / f"{self.key(t):07d}.jpg"

    def add(self, entries: dict[int, tuple[float, str]]) -> None:
        with _cache_lock:
            index = self._read()
            index.update({str(k): {"t": round(t, 4), "file": name} for k, (t, name) in entries.items()})
            tmp = self.folder / f"index.json.{os.getpid()}.{threading.get_ident()}"
            tmp.write_text(json.dumps(index), encoding="utf-8")
            os.replace(tmp, self.folder / "index.json")
            self._index = index

    def _read(self) -> dict:
        try:
            return json.loads((self.folder / "index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}


def _decode_targets(video: PreparedVideo, targets: list[float], fps: float, cache: _FrameCache) -> dict[int, Frame]:
    """Decode the source around `targets` (sorted), save the picked frames into the cache."""
    origin = video.extra.get("origin", 0.0)
    end = video.extra.get("video_end", video.duration)
    sampler = _Sampler(targets, 0.5 / video.extra.get("rate", 30.0), 0.5 / fps)
    try:
        try:
            picks = _sample_source(video.source_path, sampler, origin, end, seek=True)
        except _SeekOvershot:
            sampler = _Sampler(targets, sampler.lead, sampler.tolerance)
            picks = _sample_source(video.source_path, sampler, origin, end, seek=False)
    except (InvalidArgument, av.error.FFmpegError, OSError):
        return {}
    fw, fh = video.extra.get("frame_size", video.original_size)
    geo = _Geometry(video.original_size, (fw, fh), video.extra.get("rotation", 0))
    saved: dict[int, tuple[float, str]] = {}
    frames: dict[int, Frame] = {}
    last: tuple[av.VideoFrame, Path] | None = None
    for pick in picks:
        if last is None or last[0] is not pick.frame:
            path = cache.path_for(pick.target)
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            _save_frame(pick.frame, geo, tmp)
            os.replace(tmp, path)
            last = (pick.frame, path)
        key = cache.key(pick.target)
        saved[key] = (pick.time, last[1].name)
        frames[key] = Frame(timestamp=round(pick.time, 4), path=last[1])
    if saved:
        cache.add(saved)
    return frames


def _sample_source(source: Path, sampler: _Sampler, origin: float, end: float, seek: bool) -> list[_Pick]:
    targets = sampler.targets
    with artifact.open_media(source) as container:
        stream = _video_stream(container)
        stream.codec_context.thread_type = "AUTO"
        seek = seek and targets[0] > 1.0
        if seek:
            offset = int((targets[0] - 1.0 + origin) / stream.time_base)  # type: ignore[operator]  # video stream
            container.seek(offset, stream=stream, backward=True, any_frame=False)
        rate = _stream_rate(stream)
        picks: list[_Pick] = []
        last_t: float | None = None
        for packet in demux(container, [stream]):
            for frame in decode_packet(packet):
                t = _frame_time(frame, origin, (last_t + 1 / rate) if last_t is not None else 0.0)
                if seek and sampler.prev is None and t > targets[0] + sampler.tolerance:
                    raise _SeekOvershot()
                picks.extend(sampler.feed(frame, t))
                last_t = t
            if sampler.done:
                break
        picks.extend(sampler.finish(end))
        return picks
