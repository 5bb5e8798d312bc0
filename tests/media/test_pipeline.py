"""The entry points the Files API and prompt assembly call."""

from __future__ import annotations

from pathlib import Path

import pytest

from pollux.errors import Cancelled, InvalidArgument, UnsupportedMedia
from pollux.media import pipeline
from pollux.media.artifact import staging_path
from pollux.media.prepared import PreparedAudio, PreparedImage, PreparedVideo
from pollux.settings import Settings
from tests.fixtures.media import image_bytes, never, write_audio, write_video


@pytest.mark.parametrize(
    ("mime", "expected"),
    [("video/mp4", True), ("video/quicktime", True), ("audio/mpeg", True), ("audio/wav", True),
     ("image/png", False), ("image/heic", False), ("text/plain", False)],
)  # fmt: skip
def test_needs_processing(mime, expected):
    assert pipeline.needs_processing(mime) is expected


def test_video_file(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "blob", "webm", seconds=3.0, audio=True)
    meta = pipeline.prepare_file("video/webm", blob, tmp_path / "art", settings, never)
    assert meta["videoDuration"] == pytest.approx(3.0, abs=0.1) and meta["hasAudio"] is True
    video = pipeline.load_prepared("video/webm", blob, tmp_path / "art", settings)
    assert isinstance(video, PreparedVideo) and len(video.frames) == 4  # 3.008 s -> 0..3
    pipeline.discard_prepared(tmp_path / "art")
    assert not (tmp_path / "art").exists()


def test_audio_file(tmp_path: Path, settings: Settings):
    blob = write_audio(tmp_path / "blob", "mp3", seconds=1.5)
    meta = pipeline.prepare_file("audio/mpeg", blob, tmp_path / "art", settings, never)
    assert meta["duration"] == pytest.approx(1.5, abs=0.06)
    assert isinstance(pipeline.load_prepared("audio/mpeg", blob, tmp_path / "art", settings), PreparedAudio)


def test_cancelled_file(tmp_path: Path, settings: Settings):
    blob = write_video(tmp_path / "blob", "mp4", seconds=2.0)
    with pytest.raises(Cancelled):
        pipeline.prepare_file("video/mp4", blob, tmp_path / "art", settings, lambda: True)
    assert not (tmp_path / "art").exists() and not staging_path(tmp_path / "art").exists()


def test_small_image_is_prepared_on_the_fly(tmp_path: Path, settings: Settings):
    blob = tmp_path / "blob"
    blob.write_bytes(image_bytes("JPEG", (640, 480), exif_orientation=6))
    assert pipeline.prepare_file("image/jpeg", blob, tmp_path / "art", settings) == {"width": 480, "height": 640}
    assert not (tmp_path / "art").exists()  # cheap to redo: no cache
    image = pipeline.load_prepared("image/jpeg", blob, tmp_path / "art", settings)
    assert isinstance(image, PreparedImage) and image.image.size == (576, 768)


def test_heic_is_cached(tmp_path: Path, settings: Settings, monkeypatch):
    blob = tmp_path / "blob"
    blob.write_bytes(image_bytes("HEIF", (800, 600)))
    assert pipeline.prepare_file("image/heic", blob, tmp_path / "art", settings) == {"width": 800, "height": 600}
    assert (tmp_path / "art" / "image.png").exists()

    def no_decode(*args):
        raise AssertionError("decoded the HEIC again")

    monkeypatch.setattr(pipeline, "prepare_image", no_decode)
    image = pipeline.load_prepared("image/heic", blob, tmp_path / "art", settings)
    assert image.image.size == (800, 600) and image.original_size == (800, 600) and image.mime_type == "image/heic"


def test_corrupt_image_file(tmp_path: Path, settings: Settings):
    blob = tmp_path / "blob"
    blob.write_bytes(image_bytes("PNG", (300, 300))[:200])
    with pytest.raises(InvalidArgument):
        pipeline.prepare_file("image/png", blob, tmp_path / "art", settings)


def test_unsupported(tmp_path: Path, settings: Settings):
    with pytest.raises(UnsupportedMedia):
        pipeline.prepare_file("text/plain", tmp_path / "blob", tmp_path / "art", settings)


def test_inline_image(tmp_path: Path, settings: Settings):
    image = pipeline.prepare_inline("image/png", image_bytes("PNG", (100, 50)), settings, tmp_path)
    assert isinstance(image, PreparedImage) and image.image.size == (768, 384)
    assert list(tmp_path.iterdir()) == []


def test_inline_video_is_reused(tmp_path: Path, settings: Settings, monkeypatch):
    data = write_video(tmp_path / "v.mp4", "mp4", seconds=2.0, audio=True).read_bytes()
    scratch = tmp_path / "scratch"
    first = pipeline.prepare_inline("video/mp4", data, settings, scratch)
    assert isinstance(first, PreparedVideo) and len(first.frames) == 2 and first.audio is not None

    def no_decode(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(pipeline, "prepare_video", no_decode)
    assert pipeline.prepare_inline("video/mp4", data, settings, scratch) == first


def test_inline_audio(tmp_path: Path, settings: Settings):
    data = write_audio(tmp_path / "a.wav", "wav", seconds=1.0).read_bytes()
    audio = pipeline.prepare_inline("audio/wav", data, settings, tmp_path / "scratch")
    assert audio.duration == pytest.approx(1.0, abs=0.01)


def test_inline_mismatch(tmp_path: Path, settings: Settings):
    with pytest.raises(UnsupportedMedia, match="video/mp4.*image/png"):
        pipeline.prepare_inline("video/mp4", image_bytes("PNG"), settings, tmp_path)
