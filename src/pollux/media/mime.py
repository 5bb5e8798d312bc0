"""Supported MIME types, their aliases, and content sniffing (magic bytes).

`check(declared, head)` is what uploads and inline parts go through: the declared type must be
supported and the first bytes must look like that kind of file. Containers that clients label
loosely are accepted as one family (MP4/MOV/3GP are all ISO-BMFF; MPEG program and transport
streams; HEIC/HEIF); anything else that disagrees is a 400 naming both types.
"""

from __future__ import annotations

from pollux.errors import UnsupportedMedia

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
VIDEO_TYPES = (
    "video/mp4", "video/mpeg", "video/mov", "video/avi", "video/x-flv", "video/mpg",
    "video/webm", "video/wmv", "video/3gpp", "video/quicktime",
)  # fmt: skip
AUDIO_TYPES = ("audio/wav", "audio/mp3", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac")

ALIASES = {
    "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png",
    "image/heic-sequence": "image/heic", "image/heif-sequence": "image/heif",
    "video/x-msvideo": "video/avi", "video/msvideo": "video/avi", "video/vnd.avi": "video/avi",
    "video/x-ms-wmv": "video/wmv", "video/x-ms-asf": "video/wmv", "video/flv": "video/x-flv",
    "video/x-m4v": "video/mp4", "video/m4v": "video/mp4", "video/x-quicktime": "video/quicktime",
    "video/3gp": "video/3gpp", "video/x-mpeg": "video/mpeg", "video/mp2t": "video/mpeg",
    "audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav",
    "audio/mpeg": "audio/mp3", "audio/mpeg3": "audio/mp3", "audio/x-mp3": "audio/mp3",
    "audio/x-mpeg-3": "audio/mp3", "audio/x-aiff": "audio/aiff", "audio/aif": "audio/aiff",
    "audio/x-aac": "audio/aac", "audio/aacp": "audio/aac", "audio/mp4": "audio/aac",
    "audio/m4a": "audio/aac", "audio/x-m4a": "audio/aac", "audio/x-ogg": "audio/ogg",
    "application/ogg": "audio/ogg", "audio/opus": "audio/ogg", "audio/x-flac": "audio/flac",
}  # fmt: skip

_KIND = {t: t.split("/", 1)[0] for t in IMAGE_TYPES + VIDEO_TYPES + AUDIO_TYPES}

# Declared types that accept content sniffed as another member of the same family.
_FAMILIES = [
    {"video/mp4", "video/mov", "video/quicktime", "video/3gpp", "audio/aac"},  # ISO-BMFF (m4a too)
    {"video/mpeg", "video/mpg"},
    {"image/heic", "image/heif"},
    {"video/webm"},  # Matroska and WebM share EBML; sniffed as video/webm
]

SNIFF_BYTES = 4096  # how much of the head `check` wants

_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"heif", b"mif2"}
_3GP_BRANDS = (b"3gp", b"3g2")
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def bare(mime: str) -> str:
    """Lowercase, parameters stripped: the type as the client named it (what a File's mimeType echoes)."""
    return mime.split(";", 1)[0].strip().lower()


def normalize(mime: str) -> str:
    """Lowercase, parameters stripped, alias mapped to its canonical type."""
    base = bare(mime)
    return ALIASES.get(base, base)


def kind(mime: str) -> str | None:
    """ "image", "video" or "audio" for a supported type (aliases included), else None."""
    return _KIND.get(normalize(mime))


def supported() -> tuple[str, ...]:
    return IMAGE_TYPES + VIDEO_TYPES + AUDIO_TYPES


def sniff(head: bytes) -> str | None:
    """Canonical type of the content from its first bytes, or None if unrecognized."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/avi"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"  # recognized so errors can name it; not supported
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"FLV\x01"):
        return "video/x-flv"
    if head.startswith(_ASF_GUID):
        return "video/wmv"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "video/mpeg"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "video/mpeg"  # MPEG transport stream
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    mpeg_audio = _sniff_mpeg_audio(head)
    if mpeg_audio is None and head.startswith(b"BM") and len(head) >= 14:
        return "image/bmp"
    return mpeg_audio


def _sniff_ftyp(head: bytes) -> str | None:
    size = int.from_bytes(head[:4], "big")
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    brands = [major, *compatible]
    if major in _HEIC_BRANDS or major in _HEIF_BRANDS:
        return "image/heic" if any(b in _HEIC_BRANDS for b in brands) else "image/heif"
    if major in (b"avif", b"avis"):
        return "image/avif"  # recognized so the error can say so; not supported
    if major == b"qt  ":
        return "video/quicktime"
    if major.startswith(_3GP_BRANDS):
        return "video/3gpp"
    if major in _M4A_BRANDS:
        return "audio/aac"
    return "video/mp4"


def _sniff_mpeg_audio(head: bytes) -> str | None:
    """ID3-tagged or raw MPEG audio (MP3) and ADTS AAC, told apart by the frame header."""
    offset = 0
    if head.startswith(b"ID3") and len(head) >= 10:
        offset = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F))
        if offset + 2 > len(head):
            return "audio/mp3"  # a tag larger than the head: ID3 almost always means MP3
    frame = head[offset : offset + 2]
    if len(frame) < 2 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return "audio/mp3" if offset else None
    layer = (frame[1] >> 1) & 0x03
    if layer == 0:
        return "audio/aac" if frame[1] & 0xF0 == 0xF0 else None
    return "audio/mp3"


def _describe(sniffed: str | None) -> str:
    if sniffed is None:
        return "not a recognized image, video or audio format"
    return sniffed


def check(declared: str, head: bytes) -> str:
    """The canonical declared type if supported and matching the content; else UnsupportedMedia."""
    canonical = normalize(declared)
    if canonical not in _KIND:
        raise UnsupportedMedia(
            f"Unsupported MIME type: {declared or '(none)'}. Supported types: {', '.join(supported())}."
        )
    if not head:
        raise UnsupportedMedia(f"The file declared as {declared} is empty.")
    sniffed = sniff(head)
    if sniffed == canonical or any(canonical in f and sniffed in f for f in _FAMILIES):
        return canonical
    raise UnsupportedMedia(
        f"The declared MIME type {declared} does not match the content, which is {_describe(sniffed)}."
    )
