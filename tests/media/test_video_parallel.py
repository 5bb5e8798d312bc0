"""Segment-parallel sampling (media/video_parallel.py) against a sequential pass and a decode-all baseline.

The videos are PyAV-encoded here: a bar that moves 7 px per frame over a grey ramp, so a frame one
source frame off differs visibly (the mean absolute difference jumps), and the ramp tells the time.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from pollux.errors import Cancelled
from pollux.media import video as video_mod
from pollux.media import video_parallel, workers
from pollux.media.artifact import staging_path
from pollux.media.video import prepare_video
from pollux.settings import Settings
from tests.fixtures.media import never

SIZE = (320, 240)
FPS = 30
SECONDS = 40.0


def _encode(path: Path, *, gop: int, gap: tuple[float, float] | None = None, audio: bool = False) -> Path:
    w, h = SIZE
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.options = {"g": str(gop), "keyint_min": str(gop), "bf": "3", "preset": "veryfast",
                                    "crf": "18", "sc_threshold": "0"}  # fmt: skip
        vs.codec_context.time_base = Fraction(1, FPS)
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=44100)
            astream.layout = "mono"
        for i in range(int(SECONDS * FPS)):
            t = i / FPS
            if gap is not None and gap[0] <= t < gap[1]:
                continue  # variable frame rate: no frames at all in the gap
            pixels = np.full((h, w, 3), int(16 + 200 * t / SECONDS), dtype=np.uint8)
            x = (i * 7) % (w - 24)
            pixels[40:200, x : x + 24] = (240, 40, 40)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        if astream is not None:
            n = 1024
            for k in range(int(SECONDS * 44100 / n)):
                tone = (0.2 * np.sin(2 * np.pi * 440 * (k * n + np.arange(n)) / 44100)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(tone[None, :], format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = 44100, k * n, Fraction(1, 44100)
                out.mux(astream.encode(af))
            out.mux(astream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("parallel")
    return {
        "sparse": _encode(folder / "sparse.mp4", gop=300, audio=True),  # a keyframe every 10 s
        "vfr": _encode(folder / "vfr.mp4", gop=150, gap=(18.4, 21.7)),  # 5 s GOP, a 3.3 s hole
        "gop1s": _encode(folder / "gop1s.mp4", gop=FPS),  # keyframes only (NONKEY)
    }


@pytest.fixture
def settings() -> Settings:
    return Settings(max_video_seconds=600.0)


@pytest.fixture(autouse=True)
def two_cores(monkeypatch):
    monkeypatch.setattr(workers, "cores", lambda: 2)  # two segments whatever this machine has


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def _baseline(blob: Path) -> tuple[list[tuple[float, np.ndarray]], dict[float, np.ndarray]]:
    """Decode every frame; for each second k the first frame with pts >= k - half a frame (the
    frame on screen at k over a gap), and every frame near a whole second by its pts."""
    picks, near = [], {}
    with av.open(str(blob)) as c:
        lead = 0.5 / FPS
        k, prev = 0, None
        for frame in c.decode(c.streams.video[0]):
            pixels = frame.to_ndarray(format="rgb24")
            if abs(frame.time - round(frame.time)) <= 0.1:
                near[round(frame.time, 4)] = pixels
            while frame.time >= k - lead and k < SECONDS:
                held = frame.time > k + 0.5 and prev is not None
                picks.append((float(k), prev) if held else (frame.time, pixels))
                k += 1
            prev = pixels
    return picks, near


def _segmented(tmp_path: Path, name: str) -> bool:
    files = json.loads((tmp_path / name / "manifest.json").read_text())["frames"]
    return any(f["file"].startswith("frames/s01-") for f in files)


@pytest.mark.parametrize("kind", ["sparse", "vfr", "gop1s"])
def test_segments_match_sequential_and_baseline(tmp_path: Path, settings: Settings, videos, kind: str):
    blob = videos[kind]
    par = prepare_video(blob, tmp_path / "par", settings, never)
    assert _segmented(tmp_path, "par")  # the parallel path ran, in two segments
    seq = video_mod._prepare(blob, tmp_path / "seq", settings, never, None)
    manifest = json.loads((tmp_path / "par" / "manifest.json").read_text())
    assert manifest["skip_frame"] == json.loads((tmp_path / "seq" / "manifest.json").read_text())["skip_frame"]
    assert manifest["skip_frame"] == ("NONKEY" if kind == "gop1s" else "NONREF")

    # exactly what one sequential pass gives: same timestamps, same pictures
    assert [f.timestamp for f in par.frames] == [f.timestamp for f in seq.frames]
    assert par.duration == seq.duration
    for a, b in zip(par.frames, seq.frames):
        assert np.abs(_pixels(a.path) - _pixels(b.path)).mean() < 0.5

    # and the decode-everything baseline: timestamps within 0.05 s (skipping non-reference frames
    # may pick the frame after: 1/30 s later), and each picture is the baseline's frame of the
    # same timestamp (JPEG-close; one frame off would move the bar 7 px)
    picks, near = _baseline(blob)
    assert len(par.frames) == len(picks) == int(SECONDS)
    for frame, (t, held_pixels) in zip(par.frames, picks):
        assert abs(frame.timestamp - t) <= 0.05
        same = near.get(round(frame.timestamp, 4), held_pixels)
        assert np.abs(_pixels(frame.path) - same.astype(np.float32)).mean() < 3.0


def test_vfr_gap_holds_the_frame_on_screen(tmp_path: Path, settings: Settings, videos):
    video = prepare_video(videos["vfr"], tmp_path / "par", settings, never)
    times = [f.timestamp for f in video.frames]
    assert times[19:22] == [19.0, 20.0, 21.0]  # held over the hole, stamped with the target time
    assert video.frames[19].path == video.frames[21].path  # the last frame before 18.4 s
    assert times[22] == pytest.approx(22.0, abs=0.05)


def test_soundtrack_is_decoded_alongside(tmp_path: Path, settings: Settings, videos):
    par = prepare_video(videos["sparse"], tmp_path / "par", settings, never)
    seq = video_mod._prepare(videos["sparse"], tmp_path / "seq", settings, never, None)
    assert par.audio is not None and par.audio.duration == pytest.approx(seq.audio.duration, abs=1e-6)
    assert par.audio.wav_path.read_bytes() == seq.audio.wav_path.read_bytes()


def test_three_segments(tmp_path: Path, settings: Settings, videos, monkeypatch):
    monkeypatch.setattr(workers, "cores", lambda: 3)
    monkeypatch.setattr(video_parallel, "SEGMENT_MIN_SECONDS", 5.0)
    blob = videos["vfr"]  # keyframes every 5 s: cuts near 13.3 and 26.7 s
    par = prepare_video(blob, tmp_path / "par", settings, never)
    names = {f.path.name[:4] for f in par.frames}
    assert {"s00-", "s01-", "s02-"} <= names
    seq = video_mod._prepare(blob, tmp_path / "seq", settings, never, None)
    assert [f.timestamp for f in par.frames] == [f.timestamp for f in seq.frames]


def test_short_videos_stay_in_process(settings: Settings, videos):
    job = video_mod._Job([0.0, 1.0], 0.03, 0.5, "NONREF", 0.0, 15.0, 600.0)
    assert video_parallel.split(job, [(0.0, 0), (1.0, 15)], 5.0, 2) == [job]


def test_seek_landing_late_falls_back_to_sequential(tmp_path: Path, settings: Settings, videos, monkeypatch):
    real_split = video_parallel.split

    def late(job, keyframes, duration, cores):  # each keyframe claimed 2 s before it really is
        return real_split(job, [(t - 2.0, ts) for t, ts in keyframes], duration, cores)

    monkeypatch.setattr(video_parallel, "split", late)
    video = prepare_video(videos["sparse"], tmp_path / "art", settings, never)
    assert not _segmented(tmp_path, "art")  # decoded in one pass instead
    assert [round(f.timestamp) for f in video.frames] == list(range(int(SECONDS)))


def test_cancelled_midway_leaves_nothing(tmp_path: Path, settings: Settings, videos):
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # after the workers have started

    with pytest.raises(Cancelled):
        prepare_video(videos["sparse"], tmp_path / "art", settings, cancelled)
    assert not (tmp_path / "art").exists() and not staging_path(tmp_path / "art").exists()
