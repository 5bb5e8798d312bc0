"""MIME tables, aliases, sniffing and the declared-vs-content check."""

from __future__ import annotations

from pathlib import Path

import pytest

from pollux.errors import InvalidArgument, UnsupportedMedia
from pollux.media import mime
from tests.fixtures.media import AUDIO_FORMATS, animated_bytes, image_bytes, write_audio, write_video


@pytest.mark.parametrize(
    ("given", "canonical", "kind"),
    [
        ("image/PNG", "image/png", "image"),
        ("image/jpg", "image/jpeg", "image"),
        ("image/jpeg; charset=binary", "image/jpeg", "image"),
        ("video/quicktime", "video/quicktime", "video"),
        ("video/x-msvideo", "video/avi", "video"),
        ("video/x-ms-wmv", "video/wmv", "video"),
        ("video/3gpp", "video/3gpp", "video"),
        ("audio/x-wav", "audio/wav", "audio"),
        ("audio/mpeg", "audio/mp3", "audio"),
        ("audio/x-flac", "audio/flac", "audio"),
        ("audio/x-aiff", "audio/aiff", "audio"),
        ("text/plain", "text/plain", None),
        ("application/pdf", "application/pdf", None),
    ],
)
def test_normalize_and_kind(given, canonical, kind):
    assert mime.normalize(given) == canonical
    assert mime.kind(given) == kind


def test_every_documented_type_is_supported():
    documented = [
        "image/png", "image/jpeg", "image/webp", "image/heic", "image/heif",
        "video/mp4", "video/mpeg", "video/mov", "video/avi", "video/x-flv", "video/mpg",
        "video/webm", "video/wmv", "video/3gpp",
        "audio/wav", "audio/mp3", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac",
    ]  # fmt: skip
    assert all(mime.kind(t) for t in documented)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("WEBP", "image/webp"),
        ("HEIF", "image/heic"),
        ("GIF", "image/gif"),
    ],
)
def test_sniff_images(fmt, expected):
    assert mime.sniff(image_bytes(fmt)) == expected


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("mp4", "video/mp4"), ("mov", "video/quicktime"), ("webm", "video/webm"), ("avi", "video/avi"),
     ("flv", "video/x-flv"), ("asf", "video/wmv"), ("mpeg", "video/mpeg"), ("mpegts", "video/mpeg"),
     ("3gp", "video/3gpp")],
)  # fmt: skip
def test_sniff_videos(tmp_path: Path, fmt, expected):
    path = write_video(tmp_path / f"v.{fmt}", fmt, seconds=1.0)
    assert mime.sniff(path.read_bytes()[: mime.SNIFF_BYTES]) == expected


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("wav", "audio/wav"), ("mp3", "audio/mp3"), ("aiff", "audio/aiff"), ("adts", "audio/aac"),
     ("ogg", "audio/ogg"), ("flac", "audio/flac")],
)  # fmt: skip
def test_sniff_audio(tmp_path: Path, fmt, expected):
    assert fmt in AUDIO_FORMATS
    path = write_audio(tmp_path / f"a.{fmt}", fmt, seconds=0.5)
    assert mime.sniff(path.read_bytes()[: mime.SNIFF_BYTES]) == expected


def test_sniff_raw_mp3_frame_and_unknown():
    assert mime.sniff(b"\xff\xfb\x90\x64" + bytes(100)) == "audio/mp3"
    assert mime.sniff(b"hello world") is None
    assert mime.sniff(b"") is None


def test_check_accepts_matching_and_family_members(tmp_path: Path):
    assert mime.check("image/jpg", image_bytes("JPEG")) == "image/jpeg"
    assert mime.check("image/heif", image_bytes("HEIF")) == "image/heif"  # HEIC content, HEIF label
    mov = write_video(tmp_path / "v.mov", "mov", seconds=1.0).read_bytes()[:4096]
    assert mime.check("video/mp4", mov) == "video/mp4"  # both ISO-BMFF
    assert mime.check("video/quicktime", mov) == "video/quicktime"
    assert mime.check("video/mov", mov) == "video/mov"
    mpeg = write_video(tmp_path / "v.mpeg", "mpeg", seconds=1.0).read_bytes()[:4096]
    assert mime.check("video/mpg", mpeg) == "video/mpg"


def test_check_mismatch_names_both_types():
    with pytest.raises(UnsupportedMedia) as err:
        mime.check("image/png", image_bytes("JPEG"))
    assert "image/png" in err.value.message and "image/jpeg" in err.value.message
    assert isinstance(err.value, InvalidArgument)  # -> 400 INVALID_ARGUMENT


def test_check_unrecognized_content():
    with pytest.raises(UnsupportedMedia, match="video/mp4.*not a recognized"):
        mime.check("video/mp4", b"this is not a video at all")


def test_check_unsupported_type_lists_supported_ones():
    with pytest.raises(UnsupportedMedia) as err:
        mime.check("image/gif", animated_bytes("GIF"))
    assert "image/gif" in err.value.message and "image/png" in err.value.message and "audio/flac" in err.value.message
    with pytest.raises(UnsupportedMedia, match="text/plain"):
        mime.check("text/plain", b"hello")


def test_check_empty():
    with pytest.raises(UnsupportedMedia, match="empty"):
        mime.check("image/png", b"")
