"""Segment-parallel video sampling: keyframe-aligned segments decoded in worker processes.

One sequential decoder keeps one core busy, and frame threading (`thread_type="AUTO"`) buys little
on 2 cores: on grainy 720p H.264 it was slower than a single thread and ate most of what NONREF
skipping saves (media-perf.md, "Update"). Instead, the video is cut at keyframes from the
container's index into one segment per core; each segment is decoded by its own single-threaded
decoder in a worker process (workers.py), the soundtrack by another, and the frames are stitched in
order. The decoding is in other processes, so the server's GIL stays free for requests.

Exactness: segment i starts at keyframe `lo` and owns the targets whose pick (the first frame with
pts >= target - lead) lies at or after `lo`; it decodes from that keyframe until every owned target
is picked (at most a few frames into the next segment). A segment therefore sees exactly the frames a
sequential pass sees from `lo` on, and picks the same frames with the same timestamps. If a seek
lands after `lo`, or a stream ends before a segment is done, the whole video is decoded
sequentially instead (`None` from `prepare`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pollux.media import artifact, workers
from pollux.media import video as v
from pollux.media.audio import WAV_NAME, write_wav

if TYPE_CHECKING:
    from pollux.media.prepared import PreparedVideo
    from pollux.settings import Settings

PARALLEL_MIN_SECONDS = 20.0  # shorter videos decode in-process: a few seconds' work, not worth the hop
SEGMENT_MIN_SECONDS = 10.0  # a segment shorter than this is merged into its neighbour
CANCEL_FLAG = ".cancel"


def prepare(
    blob: Path, artifact_dir: Path, settings: Settings, cancelled: Callable[[], bool], skip: str | None
) -> PreparedVideo | None:
    """Prepare the video with segments in parallel; None when it should be decoded sequentially."""
    with artifact.open_media(blob) as container:
        job, declared = v._plan(container, settings, skip)
        if declared is None or declared < PARALLEL_MIN_SECONDS:
            return None
        vstream = v._video_stream(container)
        index = v.index_keyframes(vstream, job.origin)
        jobs = split(job, index[0] if index else [], declared, workers.cores())
        has_audio = any(True for _ in container.streams.audio)
    if len(jobs) < 2:
        return None
    try:
        with artifact.building(artifact_dir, cancelled) as staging:
            (staging / v.FRAMES_DIR).mkdir()
            flag = staging / CANCEL_FLAG
            pool = workers.pool(settings.media_worker_nice)
            futures = [pool.submit(segment, str(blob), str(staging), j, declared) for j in jobs]
            if has_audio:
                futures.append(pool.submit(soundtrack, str(blob), str(staging)))
            sha256 = artifact.file_sha256(blob, cancelled)  # meanwhile, in this thread (hashlib frees the GIL)
            results = workers.gather(futures, cancelled, flag)
            parts, audio = results[: len(jobs)], (results[len(jobs)] if has_audio else None)
            entries = [e for part in parts for e in part["entries"]]
            size, frame_size, rotation = parts[0]["geometry"]  # JSON lists from the worker
            geo = v._Geometry((size[0], size[1]), (frame_size[0], frame_size[1]), rotation)
            audio_seconds = audio["seconds"] if audio else 0.0
            has_sound = bool(audio and audio["samples"] > 0)
            if audio is not None and not has_sound:
                (staging / WAV_NAME).unlink(missing_ok=True)
            v.write_video_manifest(staging, blob, cancelled, job, geo, entries, declared, parts[-1]["video_end"],
                                   has_sound, audio_seconds, sha256)  # fmt: skip
    except v._NotSegmentable:
        return None
    except workers.BrokenWorker:
        return None  # a worker died (killed, out of memory): decode in-process this time
    return v.load_video(blob, artifact_dir)


def split(job: v._Job, keyframes: list[tuple[float, int]], duration: float, cores: int) -> list[v._Job]:
    """Cut `job` at keyframes into up to `cores` segments of about equal length (at least
    SEGMENT_MIN_SECONDS each), each owning at least one target."""
    n = min(cores, int(duration // SEGMENT_MIN_SECONDS))
    if n < 2 or not keyframes:
        return [job]
    times = [t for t, _ in keyframes]
    cuts: list[tuple[float, int]] = []
    for i in range(1, n):
        want = duration * i / n
        k = min(range(len(times)), key=lambda j: abs(times[j] - want))
        lo = times[k]
        previous = cuts[-1][0] if cuts else 0.0
        if lo - previous >= SEGMENT_MIN_SECONDS and duration - lo >= SEGMENT_MIN_SECONDS:
            cuts.append(keyframes[k])
    if not cuts:
        return [job]
    # target k belongs to the segment holding k - lead: its pick is the first frame at or after that
    keys = [t - job.lead for t in job.targets]
    bounds = [bisect.bisect_left(keys, lo) for lo, _ in cuts]
    starts = [0, *bounds]
    ends = [*bounds, len(job.targets)]
    jobs = []
    for i, (a, b) in enumerate(zip(starts, ends)):
        if a >= b:
            return [job]  # a segment with no target: the cut was too fine
        lo, seek = (float("-inf"), None) if i == 0 else cuts[i - 1]
        jobs.append(replace(job, targets=job.targets[a:b], thread_type="SLICE", lo=lo, seek=seek,
                            last=i == len(cuts), prefix=f"s{i:02d}-"))  # fmt: skip
    return jobs


# ---- in the worker processes ----


def segment(blob: str, staging: str, job: v._Job, duration: float) -> dict:
    """Decode one segment's frames into staging/frames; its entries, geometry, and (last) the end."""
    folder = Path(staging)
    cancelled = workers.flag_check(folder / CANCEL_FLAG)
    with artifact.open_media(Path(blob)) as container:
        d = v._decode_frames(container, job, folder, cancelled)
        if d.last_t is None or not d.frames.entries:
            raise v._NotSegmentable("the segment decoded no frame")
        video_end = None
        if job.last:
            video_end = v._finish_tail(container, job, d)
            v._hold_last(d, duration, video_end)
    return {"entries": d.frames.entries, "geometry": list(asdict(d.frames.geometry).values()),
            "video_end": video_end}  # fmt: skip


def soundtrack(blob: str, staging: str) -> dict:
    """The first audio stream into staging/audio.wav (16 kHz mono)."""
    folder = Path(staging)
    with artifact.open_media(Path(blob)) as container:
        stream = next(iter(container.streams.audio))
        writer = write_wav(container, stream, folder / WAV_NAME, workers.flag_check(folder / CANCEL_FLAG))
    return {"seconds": writer.duration, "samples": writer.samples}
