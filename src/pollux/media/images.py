"""Image preparation: decode, EXIF orientation, RGB, and the seed's 768/3072 scaling rule.

Scaling (the seed: "larger images are scaled down to a maximum resolution of 3072x3072 while
preserving their original aspect ratio, while smaller images are scaled up to 768x768"):
* longest side > 3072: scaled down so the longest side is 3072;
* longest side < 768: scaled up so the longest side is 768 (the image fits 768x768 exactly);
* otherwise the size is kept. Aspect ratio is always kept (each side rounded, at least 1 px).
Because the box is square the factor does not depend on orientation, so we resize before
rotating (cheaper) and can let JPEG decode at a reduced scale (`draft`) for big photos.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from pollux.errors import InvalidArgument, PolluxError
from pollux.media import decode_budget
from pollux.media import mime as mime_types
from pollux.media.prepared import PreparedImage

if TYPE_CHECKING:
    from pollux.settings import Settings

MAX_SIDE = 3072
MIN_SIDE = 768
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Pillow format names allowed per MIME type: content was sniffed already, this keeps Pillow
# from parsing anything else (JPEGs with a second picture open as MPO).
_FORMATS = {
    "image/png": ["PNG"],
    "image/jpeg": ["JPEG", "MPO"],
    "image/webp": ["WEBP"],
    "image/heic": ["HEIF"],
    "image/heif": ["HEIF"],
}


@cache
def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()


def target_size(width: int, height: int) -> tuple[int, int]:
    """The prepared size for an image of (width, height): see the module doc."""
    longest = max(width, height)
    if longest > MAX_SIDE:
        factor = MAX_SIDE / longest
    elif longest < MIN_SIDE:
        factor = MIN_SIDE / longest
    else:
        return width, height
    return max(1, round(width * factor)), max(1, round(height * factor))


def sha256_of(data: bytes | Path) -> str:
    if isinstance(data, Path):
        h = hashlib.sha256()
        with open(data, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    return hashlib.sha256(data).hexdigest()


def prepare_image(data: bytes | Path, mime: str, settings: Settings) -> PreparedImage:
    """Decode and prepare one image; InvalidArgument for bombs, truncated or corrupt data."""
    canonical = mime_types.normalize(mime)
    formats = _FORMATS.get(canonical)
    if formats is None:
        raise InvalidArgument(f"{mime} is not a supported image type.")
    if canonical in ("image/heic", "image/heif"):
        _register_heif()
    source = data if isinstance(data, Path) else io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            # We enforce settings.max_image_pixels ourselves, with a clear message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source, formats=formats) as im:
                image, original_size, plain = _decode(im, settings)
                file_mime = f"image/{im.format.lower()}" if plain and im.format else ""
    except PolluxError:
        raise
    except Image.DecompressionBombError:
        # Pillow's own hard stop (2x Image.MAX_IMAGE_PIXELS) fired before our check could.
        pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or settings.max_image_pixels)
        raise InvalidArgument(_too_large_message(None, min(settings.max_image_pixels, pillow_limit))) from None
    except Image.UnidentifiedImageError:
        raise InvalidArgument(f"The data is not a valid {canonical} image.") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, ... on bad data
        raise InvalidArgument(f"The image could not be decoded; it is truncated or corrupt ({_reason(exc)}).") from None
    return PreparedImage(image=image, original_size=original_size, mime_type=canonical, sha256=sha256_of(data),
                         encoded=(file_mime, data) if plain else None)


# What a server is sent as it came (PreparedImage.encoded): formats every OpenAI-compatible server decodes, in modes
# whose pixels need no conversion of ours (no alpha to composite, no palette, no 16 bits, no CMYK).
PASSTHROUGH = {"JPEG": ("RGB", "L"), "PNG": ("RGB", "L")}


def _decode(im: Image.Image, settings: Settings) -> tuple[Image.Image, tuple[int, int], bool]:
    """(RGB pixels at the seed's size, the original size after EXIF rotation, whether the file's own bytes show
    the original exactly: a passthrough format and mode, no EXIF rotation, no transparency)."""
    width, height = im.size
    if width * height > settings.max_image_pixels:
        raise InvalidArgument(_too_large_message((width, height), settings.max_image_pixels))
    size = target_size(width, height)
    if im.format == "JPEG" and size[0] < width:
        im.draft("RGB", size)  # decode at 1/2, 1/4, 1/8 scale when that still covers `size`
    budget = decode_budget.budget_for(settings)
    with budget.reserve(im.size[0] * im.size[1], settings.decode_wait_seconds):  # im.size: after draft
        # Decode before anything else reads the file: PNG's getexif() loads the pixels itself and swallows a
        # decode error, after which load() finds the image "loaded" and a corrupt file would pass.
        im.load()  # animated images: Image.open leaves us on the first frame
        orientation = _orientation(im)
        rgb = _resized_rgb(im, size)
    plain = (im.mode in PASSTHROUGH.get(im.format or "", ()) and orientation == 1 and "transparency" not in im.info
             and getattr(im, "n_frames", 1) == 1)
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    original = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return rgb, original, plain


# Modes Pillow resamples directly: shrinking in them first means the full-size image is never converted
# (a 13000x13000 grey PNG is 169 MB as L but 507 MB as RGB, and was once both at the same time).
_RESAMPLABLE = ("L", "LA", "RGB", "RGBA", "RGBX", "I", "F")


def _resized_rgb(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    shrinking = size[0] < im.size[0]
    if shrinking and im.mode in _RESAMPLABLE:
        return _to_rgb(im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))
    rgb = _to_rgb(im)
    if rgb.size != size:
        return rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0 if shrinking else None)
    return im.copy() if rgb is im else rgb  # `im` is unusable once the caller closes it


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF must not fail an otherwise good image
        return 1


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB; transparency is composited on white, high bit depths scaled to 8 bits."""
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if im.mode.startswith("I") or im.mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(arr * (255.0 / peak), 0, 255).astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")


def _too_large_message(size: tuple[int, int] | None, limit: int) -> str:
    what = f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else "its pixel count"
    return f"The image is too large to process: {what} exceeds the limit of {limit:,} pixels."


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
