"""Image preparation: formats, orientation, the 768/3072 rule, bombs and corrupt data."""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

import pytest
from PIL import Image

from pollux.errors import InvalidArgument
from pollux.media.images import prepare_image, target_size
from pollux.settings import Settings
from tests.fixtures.media import animated_bytes, image_bytes

FORMATS = [
    ("PNG", "image/png"),
    ("JPEG", "image/jpeg"),
    ("WEBP", "image/webp"),
    ("HEIF", "image/heic"),
    ("HEIF", "image/heif"),
]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((4000, 3000), (3072, 2304)),  # down: longest side 3072
        ((3000, 4000), (2304, 3072)),
        ((6144, 100), (3072, 50)),
        ((3072, 3072), (3072, 3072)),  # inside the range: kept
        ((1000, 300), (1000, 300)),  # longest side >= 768: kept
        ((768, 10), (768, 10)),
        ((640, 480), (768, 576)),  # up: longest side 768
        ((100, 200), (384, 768)),
        ((1, 1), (768, 768)),
    ],
)
def test_target_size(size, expected):
    assert target_size(*size) == expected


@pytest.mark.parametrize(("fmt", "mime"), FORMATS)
def test_formats_small_image_scaled_up(fmt, mime, settings):
    data = image_bytes(fmt, (64, 48))
    prepared = prepare_image(data, mime, settings)
    assert prepared.image.mode == "RGB"
    assert prepared.image.size == (768, 576)
    assert prepared.original_size == (64, 48)
    assert prepared.mime_type == mime
    assert prepared.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("fmt", "mime"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("HEIF", "image/heic")])
def test_large_image_scaled_down(fmt, mime, settings):
    prepared = prepare_image(image_bytes(fmt, (4000, 1000)), mime, settings)
    assert prepared.image.size == (3072, 768)
    assert prepared.original_size == (4000, 1000)


def test_mid_size_image_kept(settings):
    assert prepare_image(image_bytes("PNG", (1000, 300)), "image/png", settings).image.size == (1000, 300)


def _corners(im: Image.Image) -> tuple:
    w, h = im.size
    return tuple(im.getpixel(p) for p in [(2, 2), (w - 3, 2), (2, h - 3), (w - 3, h - 3)])


def test_exif_rotated_jpeg(settings):
    # Orientation 6: the stored 1000x800 picture is shown rotated 90 degrees clockwise.
    prepared = prepare_image(image_bytes("JPEG", (1000, 800), exif_orientation=6), "image/jpeg", settings)
    assert prepared.original_size == (800, 1000)
    assert prepared.image.size == (800, 1000)
    top_left, top_right, bottom_left, bottom_right = _corners(prepared.image)
    # Stored: red ramps left->right, top half blue. Rotated clockwise: the stored bottom-left
    # (dark, no blue) is now top-left, the stored top-right (red + blue) is bottom-right.
    assert top_left[0] < 30 and top_left[2] < 30
    assert top_right[0] < 30 and top_right[2] > 220
    assert bottom_right[0] > 220 and bottom_right[2] > 220
    assert bottom_left[0] > 220 and bottom_left[2] < 30


@pytest.mark.parametrize("orientation", [3, 8])
def test_other_orientations(orientation, settings):
    prepared = prepare_image(image_bytes("PNG", (1000, 800), exif_orientation=orientation), "image/png", settings)
    assert prepared.image.size == ((1000, 800) if orientation == 3 else (800, 1000))
    if orientation == 3:  # 180 degrees: the blue half is now at the bottom
        assert _corners(prepared.image)[0][2] < 30 and _corners(prepared.image)[2][2] > 220


def test_rotated_large_jpeg_is_scaled_and_rotated(settings):
    prepared = prepare_image(image_bytes("JPEG", (4000, 3000), exif_orientation=6), "image/jpeg", settings)
    assert prepared.original_size == (3000, 4000)
    assert prepared.image.size == (2304, 3072)


def test_transparency_composited_on_white(settings):
    im = Image.new("RGBA", (800, 800), (0, 0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    prepared = prepare_image(buf.getvalue(), "image/png", settings)
    assert prepared.image.getpixel((10, 10)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16"])
def test_modes_become_rgb(mode, settings):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    prepared = prepare_image(image_bytes(fmt, (800, 600), mode=mode), f"image/{fmt.lower()}", settings)
    assert prepared.image.mode == "RGB" and prepared.image.size == (800, 600)


@pytest.mark.parametrize(("fmt", "mime"), [("WEBP", "image/webp"), ("PNG", "image/png")])
def test_animated_first_frame(fmt, mime, settings):
    prepared = prepare_image(animated_bytes(fmt), mime, settings)
    r, g, _ = prepared.image.getpixel((100, 100))
    assert r > 200 and g < 50  # red, the first frame


def test_decompression_bomb_guard():
    small_limit = Settings(max_image_pixels=1000 * 1000)
    with pytest.raises(InvalidArgument, match="too large.*1,000,000"):
        prepare_image(image_bytes("PNG", (1001, 1000)), "image/png", small_limit)
    prepare_image(image_bytes("PNG", (1000, 1000)), "image/png", small_limit)


def test_pillow_bomb_error_is_invalid_argument():
    # A PNG header claiming 30000x30000 (past Pillow's own hard limit) and no pixel data.
    huge = bytearray(image_bytes("PNG", (8, 8)))
    huge[16:24] = (30000).to_bytes(4, "big") * 2
    huge[29:33] = zlib.crc32(bytes(huge[12:29])).to_bytes(4, "big")  # keep the IHDR chunk valid
    with pytest.raises(InvalidArgument, match="too large"):
        prepare_image(bytes(huge), "image/png", Settings(max_image_pixels=10**10))


@pytest.mark.parametrize(("fmt", "mime"), FORMATS)
def test_truncated_images(fmt, mime, settings):
    data = image_bytes(fmt, (300, 200))
    with pytest.raises(InvalidArgument):
        prepare_image(data[: len(data) // 2], mime, settings)


@pytest.mark.parametrize(("fmt", "mime"), FORMATS)
def test_garbage_and_wrong_content(fmt, mime, settings):
    with pytest.raises(InvalidArgument):
        prepare_image(b"\x00" * 64, mime, settings)
    other = "PNG" if fmt != "PNG" else "JPEG"
    with pytest.raises(InvalidArgument):
        prepare_image(image_bytes(other), mime, settings)


def test_empty_and_unsupported(settings):
    with pytest.raises(InvalidArgument):
        prepare_image(b"", "image/png", settings)
    with pytest.raises(InvalidArgument, match="not a supported image"):
        prepare_image(image_bytes("GIF"), "image/gif", settings)


def test_from_path(tmp_path: Path, settings):
    data = image_bytes("JPEG", (900, 900))
    path = tmp_path / "blob"
    path.write_bytes(data)
    prepared = prepare_image(path, "image/jpeg", settings)
    assert prepared.image.size == (900, 900)
    assert prepared.sha256 == hashlib.sha256(data).hexdigest()
