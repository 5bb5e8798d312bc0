"""The entry points the Files API and prompt assembly call; they pick the right preparation.

* Video and audio need processing: the file is PROCESSING while a worker runs `prepare_file`,
  which writes the artifact folder (see `artifact`) and returns the metadata to store.
* Images are cheap: `prepare_file` only validates them (decodes fully) and, for the expensive
  ones (HEIC/HEIF, or larger than 3072 px), caches the prepared pixels as a PNG in the artifact
  folder; `load_prepared` uses that cache or prepares from the blob on the fly.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from pollux.errors import UnsupportedMedia
from pollux.lru import BytesLRU
from pollux.media import artifact
from pollux.media import mime as mime_types
from pollux.media.audio import load_audio, prepare_audio
from pollux.media.images import MAX_SIDE, prepare_image
from pollux.media.prepared import Prepared, PreparedAudio, PreparedImage, PreparedVideo
from pollux.media.video import load_video, prepare_video

if TYPE_CHECKING:
    from pollux.settings import Settings

IMAGE_CACHE = "image.png"
PREPARED_IMAGE_MEMORY = 64 * 1024 * 1024  # bytes of prepared pixels kept for ACTIVE files' images
_inline_locks = [threading.Lock() for _ in range(32)]  # striped by content hash


def _never() -> bool:
    return False


def _kind(mime: str) -> str:
    kind = mime_types.kind(mime)
    if kind is None:
        raise UnsupportedMedia(f"Unsupported MIME type: {mime}. Supported types: {', '.join(mime_types.supported())}.")
    return kind


def needs_processing(mime: str) -> bool:
    """True for video and audio (the file is PROCESSING until `prepare_file` finishes)."""
    return mime_types.kind(mime) in ("video", "audio")


def prepare_file(
    mime: str, blob: Path, artifact_dir: Path, settings: Settings, cancelled: Callable[[], bool] = _never
) -> dict:
    """Prepare an uploaded file; returns metadata to store on the file.

    Video: {"videoDuration": seconds, "hasAudio": bool}; audio: {"duration": seconds};
    image: {"width": w, "height": h} (original size after EXIF rotation).
    Raises InvalidArgument (the file becomes FAILED with its message) or Cancelled.
    """
    mime = mime_types.normalize(mime)
    kind = _kind(mime)
    if kind == "video":
        video = prepare_video(blob, artifact_dir, settings, cancelled)
        return {"videoDuration": video.duration, "hasAudio": video.audio is not None}
    if kind == "audio":
        return {"duration": prepare_audio(blob, artifact_dir, settings, cancelled).duration}
    image = prepare_image(blob, mime, settings)
    if _worth_caching(image):
        _cache_image(image, artifact_dir, cancelled)
    if (key := _image_key(blob, settings)) is not None:
        _prepared_images.put(key, image)  # the first question about the upload needs no second decode
    return {"width": image.original_size[0], "height": image.original_size[1]}


def load_prepared(mime: str, blob: Path, artifact_dir: Path, settings: Settings) -> Prepared:
    """The prepared media of an ACTIVE file (never decodes a video again)."""
    mime = mime_types.normalize(mime)
    kind = _kind(mime)
    if kind == "video":
        return load_video(blob, artifact_dir)
    if kind == "audio":
        return load_audio(blob, artifact_dir)
    key = _image_key(blob, settings)
    if key is not None and (hit := _prepared_images.get(key)) is not None:
        return hit
    image = _load_cached_image(artifact_dir)
    if image is None:
        image = prepare_image(blob, mime, settings)
        if _worth_caching(image):
            try:
                _cache_image(image, artifact_dir, _never)
            except Exception:
                pass  # the cache is an optimisation (e.g. two prompts racing to write it)
    if key is not None:
        _prepared_images.put(key, image)
    return image


def _image_key(blob: Path, settings: Settings) -> tuple | None:
    """The file's identity: a commit renames the staged bytes into place, keeping inode and mtime."""
    try:
        st = blob.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, settings.max_image_pixels)


def _pixel_bytes(image: PreparedImage) -> int:
    w, h = image.image.size
    kept = image.encoded[1] if image.encoded is not None else b""  # an inline image's own bytes, kept with it
    return w * h * len(image.image.getbands()) + (len(kept) if isinstance(kept, bytes) else 0)


# Recently used prepared images: asking about the same uploaded image again costs no decode and no resize
# (the emulator and cached engines would otherwise spend most of a request there).
_prepared_images: BytesLRU[PreparedImage] = BytesLRU(PREPARED_IMAGE_MEMORY, _pixel_bytes)


def prepare_inline(mime: str, data: bytes, settings: Settings, scratch_dir: Path, digest: str | None = None
                   ) -> Prepared:
    """Prepare an inlineData part. Images stay in memory; video and audio are written under
    `scratch_dir/inline-<sha256>/` and prepared there, so the same bytes sent again are reused.
    `digest`: the bytes' SHA-256 (hex) where the caller has it already.
    """
    canonical = mime_types.check(mime, data[: mime_types.SNIFF_BYTES])
    kind = _kind(canonical)
    digest = digest or hashlib.sha256(data).hexdigest()
    if kind == "image":  # the same inline bytes again (a client re-sending its image) decode nothing
        key = _inline_image_key(digest, canonical, settings)
        if (hit := _prepared_images.get(key)) is None:
            _prepared_images.put(key, hit := prepare_image(data, canonical, settings))
        return hit
    folder = scratch_dir / f"inline-{digest[:32]}"
    blob, artifact_dir = folder / "source", folder / "prepared"
    with _inline_lock(digest):
        try:
            return _load_av(kind, blob, artifact_dir)
        except Exception:
            pass  # not prepared yet (or a stale leftover): prepare below
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"source.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, blob)
        if kind == "video":
            return prepare_video(blob, artifact_dir, settings, _never)
        return prepare_audio(blob, artifact_dir, settings, _never)


def inline_image_ready(mime: str, data: bytes, settings: Settings) -> str | None:
    """The bytes' SHA-256 when they are an image `prepare_inline` has prepared already (a cache hit, nothing
    to decode); None otherwise, or when the MIME type is not one it would accept."""
    if not mime:
        return None
    try:
        canonical = mime_types.check(mime, data[: mime_types.SNIFF_BYTES])
    except UnsupportedMedia:
        return None
    if mime_types.kind(canonical) != "image":
        return None
    digest = hashlib.sha256(data).hexdigest()
    return digest if _prepared_images.get(_inline_image_key(digest, canonical, settings)) is not None else None


def _inline_image_key(digest: str, canonical: str, settings: Settings) -> tuple:
    return ("inline", digest, canonical, settings.max_image_pixels)


def discard_prepared(artifact_dir: Path) -> None:
    """Remove a file's artifact and staging leftovers (file deleted or expired)."""
    artifact.discard(artifact_dir)


def _load_av(kind: str, blob: Path, artifact_dir: Path) -> PreparedVideo | PreparedAudio:
    return load_video(blob, artifact_dir) if kind == "video" else load_audio(blob, artifact_dir)


def _inline_lock(digest: str) -> threading.Lock:
    return _inline_locks[int(digest[:8], 16) % len(_inline_locks)]


def _worth_caching(image: PreparedImage) -> bool:
    """HEIC costs ~1.5 CPU-s per photo and big photos a large resize; a PNG reloads faster."""
    return image.mime_type in ("image/heic", "image/heif") or max(image.original_size) > MAX_SIDE


def _cache_image(image: PreparedImage, artifact_dir: Path, cancelled: Callable[[], bool]) -> None:
    with artifact.building(artifact_dir, cancelled) as staging:
        image.image.save(staging / IMAGE_CACHE, format="PNG", compress_level=1)
        artifact.write_manifest(
            staging,
            {
                "kind": "image",
                "file": IMAGE_CACHE,
                "original_size": list(image.original_size),
                "mime_type": image.mime_type,
                "sha256": image.sha256,
            },
        )


def _load_cached_image(artifact_dir: Path) -> PreparedImage | None:
    if not (artifact_dir / artifact.MANIFEST).exists():
        return None
    try:
        manifest = artifact.read_manifest(artifact_dir, "image")
        with Image.open(artifact_dir / manifest["file"], formats=["PNG"]) as im:
            pixels = im.convert("RGB")
    except Exception:
        return None  # a damaged cache is not an error: prepare from the blob again
    return PreparedImage(
        image=pixels,
        original_size=tuple(manifest["original_size"]),
        mime_type=manifest["mime_type"],
        sha256=manifest["sha256"],
    )
