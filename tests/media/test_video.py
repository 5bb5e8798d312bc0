"""Video preparation with real PyAV-encoded videos: containers, audio, errors, cancellation, clips."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pollux.errors import Cancelled, FailedPrecondition, InvalidArgument
from pollux.media import tokens
from pollux.media import video as video_mod
from pollux.media.artifact import staging_path
from pollux.media.video import frames_for, load_video, prepare_video
from pollux.prompt_types import VideoOptions
from pollux.settings import Settings
from tests.fixtures.media import level_at, never, write_audio, write_video

CONTAINERS = ["mp4", "mov", "webm", "avi", "flv", "asf", "mpeg", "mpegts", "3gp", "matroska"]


def _grey(path: Path) -> float:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L"), dtype=np.float32)
    h, w = arr.shape
    return float(arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean())


def _assert_frame_shows(frame, seconds: float, fps: float) -> None:
    """The picture is the clock frame of its timestamp (within about one source frame)."""
    slope = 220 / seconds
    assert abs(_grey(frame.path) - level_at(frame.timestamp, seconds)) <= slope * 1.5 / fps + 4


def _no_leftovers(artifact_dir: Path) -> bool:
    return not artifact_dir.exists() and not staging_path(artifact_dir).exists()


@pytest.mark.parametrize("audio", [False, True], ids=["silent", "with-audio"])
@pytest.mark.parametrize("fmt", CONTAINERS)
def test_containers(tmp_path: Path, settings: Settings, fmt: str, audio: bool):
    seconds = 3.0
    blob = write_video(tmp_path / f"in.{fmt}", fmt, seconds=seconds, fps=10, audio=audio)
    fps = 25 if fmt in ("mpeg", "mpegts") else 10
    out = tmp_path / "art"
    video = prepare_video(blob, out, settings, never)

    assert abs(video.duration - seconds) < 0.2
    assert video.original_size == (160, 120)
    assert len(video.frames) == tokens.count_video_frames(video.duration)
    for k, frame in enumerate(video.frames):
        assert abs(frame.timestamp - k) <= 0.5
        assert frame.path.is_file() and frame.path.parent.parent == out
        _assert_frame_shows(frame, seconds, fps)
    assert (video.audio is not None) == audio
    if audio:
        with wave.open(str(video.audio.wav_path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            assert abs(w.getnframes() / 16000 - seconds) < 0.2
        assert abs(video.audio.duration - seconds) < 0.2
        assert np.abs(video.audio.samples()).max() > 0.1  # the tone survived
    else:
        assert not (out / "audio.wav").exists()
    assert not staging_path(out).exists()


def test_manifest_and_load_round_trip(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=4.5, audio=True)
    prepared = prepare_video(blob, tmp_path / "art", settings, never)
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["duration"] == pytest.approx(4.5, abs=0.1)
    assert manifest["has_audio"] is True
    assert [f["t"] for f in manifest["frames"]] == [f.timestamp for f in prepared.frames]
    assert len(manifest["sha256"]) == 64
    loaded = load_video(blob, tmp_path / "art")
    assert loaded == prepared
    assert loaded.source_path == blob
    assert len(loaded.frames) == 5  # 0..4 s


def test_six_seconds_timestamps(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=6.0, fps=12, options={"bf": "3"})
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert [round(f.timestamp) for f in video.frames] == [0, 1, 2, 3, 4, 5]
    assert all(abs(f.timestamp - k) <= 0.5 for k, f in enumerate(video.frames))


def test_rotated_video_frames_are_upright_size(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", size=(160, 120), rotation=90)
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert video.original_size == (120, 160)
    with Image.open(video.frames[0].path) as im:
        assert im.size == (120, 160)


def test_large_frames_are_downscaled(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=1.0, size=(1280, 720))
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert video.original_size == (1280, 720)
    with Image.open(video.frames[0].path) as im:
        assert im.size == (768, 432)


def test_variable_frame_rate_gap_holds_the_frame_on_screen(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.webm", "webm", seconds=5.0, gap=(1.0, 3.5))
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert [f.timestamp for f in video.frames] == pytest.approx([0.0, 1.0, 2.0, 3.5, 4.0])
    assert video.frames[1].path == video.frames[2].path  # the 0.9 s frame, still on screen at 2 s
    assert abs(_grey(video.frames[2].path) - level_at(0.9, 5.0)) < 6


def test_audio_longer_than_video(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=3.0, audio=True, audio_seconds=5.0)
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert video.duration == pytest.approx(5.0, abs=0.1)
    assert video.audio.duration == pytest.approx(5.0, abs=0.1)
    assert 3 <= len(video.frames) <= 5
    assert all(abs(f.timestamp - k) <= 0.5 for k, f in enumerate(video.frames))


# ---- errors ----


def test_empty_file(tmp_path: Path, settings: Settings):
    blob = tmp_path / "empty.mp4"
    blob.write_bytes(b"")
    with pytest.raises(InvalidArgument, match="empty"):
        prepare_video(blob, tmp_path / "art", settings, never)
    assert _no_leftovers(tmp_path / "art")


def test_corrupt_file(tmp_path: Path, settings: Settings):
    blob = tmp_path / "corrupt.mp4"
    blob.write_bytes(np.random.default_rng(1).bytes(50_000))
    with pytest.raises(InvalidArgument, match="corrupt"):
        prepare_video(blob, tmp_path / "art", settings, never)
    assert _no_leftovers(tmp_path / "art")


def test_truncated_mp4(tmp_path: Path, settings: Settings):
    data = write_video(tmp_path / "in.mp4", "mp4", seconds=3.0).read_bytes()
    blob = tmp_path / "cut.mp4"
    blob.write_bytes(data[: len(data) // 2])  # the moov box (at the end) is gone
    with pytest.raises(InvalidArgument):
        prepare_video(blob, tmp_path / "art", settings, never)
    assert _no_leftovers(tmp_path / "art")


def test_truncated_stream_keeps_what_decodes(tmp_path: Path, settings: Settings):
    data = write_video(tmp_path / "in.mkv", "matroska", seconds=4.0).read_bytes()
    blob = tmp_path / "cut.mkv"
    blob.write_bytes(data[: int(len(data) * 0.6)])
    try:
        video = prepare_video(blob, tmp_path / "art", settings, never)
    except InvalidArgument:
        assert _no_leftovers(tmp_path / "art")
    else:
        assert video.frames and all(abs(f.timestamp - k) <= 0.5 for k, f in enumerate(video.frames))


def test_no_video_stream(tmp_path: Path, settings: Settings):
    blob = write_audio(tmp_path / "a.mp3", "mp3", seconds=1.0)
    with pytest.raises(InvalidArgument, match="no video stream"):
        prepare_video(blob, tmp_path / "art", settings, never)
    assert _no_leftovers(tmp_path / "art")


def test_longer_than_the_cap(tmp_path: Path):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=3.0)
    with pytest.raises(InvalidArgument, match="too long"):
        prepare_video(blob, tmp_path / "art", Settings(max_video_seconds=2.0), never)
    assert _no_leftovers(tmp_path / "art")


def test_longer_than_the_cap_when_the_container_does_not_say(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(video_mod, "known_duration", lambda container: None)
    blob = write_video(tmp_path / "in.webm", "webm", seconds=4.0)
    with pytest.raises(InvalidArgument, match="too long"):
        prepare_video(blob, tmp_path / "art", Settings(max_video_seconds=2.0), never)
    assert _no_leftovers(tmp_path / "art")
    video = prepare_video(blob, tmp_path / "art", Settings(max_video_seconds=10.0), never)
    assert video.duration == pytest.approx(4.0, abs=0.15)  # from the last frame
    assert len(video.frames) == 4


# ---- cancellation and crash safety ----


def test_cancelled_midway_leaves_nothing(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=6.0, fps=30, audio=True)
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled):
        prepare_video(blob, tmp_path / "art", settings, cancelled)
    assert _no_leftovers(tmp_path / "art")


def test_cancelled_right_after_the_rename_leaves_nothing(tmp_path: Path, settings: Settings, monkeypatch):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=2.0)
    renamed = {"done": False}
    real_rename = video_mod.artifact.os.rename

    def rename(src, dst):
        real_rename(src, dst)
        renamed["done"] = True

    monkeypatch.setattr(video_mod.artifact.os, "rename", rename)
    with pytest.raises(Cancelled):
        prepare_video(blob, tmp_path / "art", settings, lambda: renamed["done"])
    assert _no_leftovers(tmp_path / "art")


def test_failure_midway_leaves_no_half_artifact(tmp_path: Path, settings: Settings, monkeypatch):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=4.0)
    real_save = video_mod._save_frame
    saved = {"n": 0}

    def flaky_save(*args):
        saved["n"] += 1
        if saved["n"] == 3:
            raise OSError("disk full")
        real_save(*args)

    monkeypatch.setattr(video_mod, "_save_frame", flaky_save)
    with pytest.raises(OSError):
        prepare_video(blob, tmp_path / "art", settings, never)
    assert _no_leftovers(tmp_path / "art")
    with pytest.raises(FailedPrecondition):
        load_video(blob, tmp_path / "art")


def test_stale_staging_from_a_crash_is_replaced(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=2.0)
    staging = staging_path(tmp_path / "art")
    (staging / "frames").mkdir(parents=True)
    (staging / "frames" / "000000.jpg").write_bytes(b"half written")
    with pytest.raises(FailedPrecondition):
        load_video(blob, tmp_path / "art")  # a staging folder never counts as an artifact
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert len(video.frames) == 2 and not staging.exists()


# ---- prompt-time options ----


@pytest.fixture
def clock(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "clock.mp4", "mp4", seconds=6.0, fps=10, audio=True)
    return prepare_video(blob, tmp_path / "art", settings, never)


def test_default_options_use_stored_frames(clock):
    assert frames_for(clock, None) == clock.frames
    assert clock.frames_for(VideoOptions()) == clock.frames


def test_clip_offsets(clock):
    frames = frames_for(clock, VideoOptions(start=2.0, end=5.0))
    assert [round(f.timestamp) for f in frames] == [2, 3, 4]
    frames = frames_for(clock, VideoOptions(start=1.5))  # grid 2..5
    assert [round(f.timestamp) for f in frames] == [2, 3, 4, 5]
    assert len(frames) == tokens.count_video_frames(clock.duration, start=1.5)


def test_lower_fps_selects_stored_frames(clock):
    frames = frames_for(clock, VideoOptions(fps=0.5))
    assert [round(f.timestamp) for f in frames] == [0, 2, 4]
    assert all(f in clock.frames for f in frames)


def test_higher_fps_decodes_only_missing_frames_and_caches_them(clock, monkeypatch):
    options = VideoOptions(fps=4.0, start=1.0, end=3.0)
    frames = frames_for(clock, options)
    targets = tokens.sample_times(1.0, 3.0, 4.0)
    assert len(frames) == len(targets) == tokens.count_video_frames(clock.duration, 4.0, 1.0, 3.0)
    for frame, target in zip(frames, targets):
        assert abs(frame.timestamp - target) <= 0.125
        _assert_frame_shows(frame, 6.0, 10)
    assert frames[0] == clock.frames[1] and frames[4] == clock.frames[2]  # whole seconds reused
    cache = clock.artifact_dir / "frames_fps4"
    assert len(list(cache.glob("*.jpg"))) == len(targets) - 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(video_mod, "_sample_source", no_decoding)
    assert frames_for(clock, options) == frames


def test_higher_fps_late_clip_seeks(clock):
    frames = frames_for(clock, VideoOptions(fps=24, start=4.5, end=5.0))
    assert len(frames) == 12
    for frame, target in zip(frames, tokens.sample_times(4.5, 5.0, 24)):
        assert abs(frame.timestamp - target) <= 0.1
        _assert_frame_shows(frame, 6.0, 10)


@pytest.mark.parametrize(
    "options",
    [VideoOptions(fps=0), VideoOptions(fps=25), VideoOptions(fps=-1), VideoOptions(start=-1),
     VideoOptions(start=4, end=3), VideoOptions(start=6.5)],
)  # fmt: skip
def test_invalid_options(clock, options):
    with pytest.raises(InvalidArgument):
        frames_for(clock, options)


def test_end_offset_past_the_end_is_clamped(clock):
    assert frames_for(clock, VideoOptions(start=4, end=100)) == clock.frames[4:]


def test_frames_lost_to_nonref_skipping_trigger_a_full_decode(tmp_path: Path, settings: Settings, monkeypatch):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=4.0)
    passes = []
    real_decode = video_mod.decode_packet

    def lossy_decode(packet):
        frames = real_decode(packet)
        if packet.stream.type == "video":
            skipping = str(packet.stream.codec_context.skip_frame).upper().endswith("NONREF")
            if not passes or passes[-1] != skipping:
                passes.append(skipping)
            if skipping:  # pretend the decoder skipped everything around 2 s
                frames = [f for f in frames if not (1.4 <= f.time <= 2.6)]
        return frames

    monkeypatch.setattr(video_mod, "decode_packet", lossy_decode)
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert passes == [True, False]
    assert [round(f.timestamp, 1) for f in video.frames] == [0.0, 1.0, 2.0, 3.0]
    _assert_frame_shows(video.frames[2], 4.0, 10)


def test_one_second_gop_decodes_keyframes_only(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=5.0, fps=10, options={"g": "10", "keyint_min": "10"})
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert json.loads((tmp_path / "art" / "manifest.json").read_text())["skip_frame"] == "NONKEY"
    assert [f.timestamp for f in video.frames] == [0.0, 1.0, 2.0, 3.0, 4.0]
    for frame in video.frames:
        _assert_frame_shows(frame, 5.0, 10)


def test_long_gop_never_uses_keyframes_only(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=5.0, fps=10, options={"g": "25"})
    prepare_video(blob, tmp_path / "art", settings, never)
    assert json.loads((tmp_path / "art" / "manifest.json").read_text())["skip_frame"] == "NONREF"


def test_keyframes_only_steps_down_when_the_index_misleads(tmp_path: Path, settings: Settings, monkeypatch):
    monkeypatch.setattr(video_mod, "_keyframes_cover", lambda *args: True)
    blob = write_video(tmp_path / "in.mp4", "mp4", seconds=5.0, fps=10, options={"g": "25"})
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert json.loads((tmp_path / "art" / "manifest.json").read_text())["skip_frame"] == "NONREF"
    assert [round(f.timestamp) for f in video.frames] == [0, 1, 2, 3, 4]
    for frame in video.frames:
        _assert_frame_shows(frame, 5.0, 10)


def test_keyframes_only_with_a_longer_soundtrack_shows_the_true_last_frame(tmp_path: Path, settings: Settings):
    blob = write_video(
        tmp_path / "in.mp4", "mp4", seconds=5.0, options={"g": "10", "keyint_min": "10"}, audio=True, audio_seconds=5.5
    )
    video = prepare_video(blob, tmp_path / "art", settings, never)
    assert json.loads((tmp_path / "art" / "manifest.json").read_text())["skip_frame"] == "NONKEY"
    assert [f.timestamp for f in video.frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert abs(_grey(video.frames[5].path) - level_at(4.9, 5.0)) < 6  # the last picture, not the 4 s keyframe
