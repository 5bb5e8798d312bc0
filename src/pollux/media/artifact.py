"""Prepared-media artifacts: a folder next to the blob, built in a staging folder and renamed.

The rename is the commit: a folder named `artifact_dir` always holds a complete artifact with its
`manifest.json`; a crash leaves at most `<artifact_dir>.tmp`, which the next build (or
`discard`) removes. Cancellation removes everything the build wrote.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import av

from pollux.errors import Cancelled, FailedPrecondition, InvalidArgument

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
CANCELLED_MESSAGE = "Media preparation was cancelled (the file was deleted)."


def staging_path(artifact_dir: Path) -> Path:
    return artifact_dir.with_name(artifact_dir.name + ".tmp")


def discard(artifact_dir: Path) -> None:
    """Remove an artifact and any staging leftovers (file deleted, or re-preparing)."""
    shutil.rmtree(staging_path(artifact_dir), ignore_errors=True)
    shutil.rmtree(artifact_dir, ignore_errors=True)


def check_cancelled(cancelled: Callable[[], bool]) -> None:
    if cancelled():
        raise Cancelled(CANCELLED_MESSAGE)


@contextmanager
def building(artifact_dir: Path, cancelled: Callable[[], bool]) -> Iterator[Path]:
    """Yield an empty staging folder; on clean exit it becomes `artifact_dir` atomically."""
    staging = staging_path(artifact_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        check_cancelled(cancelled)
        shutil.rmtree(artifact_dir, ignore_errors=True)
        os.rename(staging, artifact_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(artifact_dir.parent)
    if cancelled():  # deleted between the last check and the rename: leave nothing behind
        discard(artifact_dir)
        raise Cancelled(CANCELLED_MESSAGE)


def write_manifest(folder: Path, manifest: dict) -> None:
    path = folder / MANIFEST
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"version": MANIFEST_VERSION, **manifest}, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())


def read_manifest(artifact_dir: Path, kind: str) -> dict:
    """The manifest of a complete artifact of `kind`; FailedPrecondition when absent or stale."""
    try:
        with open(artifact_dir / MANIFEST, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        raise FailedPrecondition(f"The prepared {kind} is not available; the file may still be processing.") from None
    if manifest.get("version") != MANIFEST_VERSION or manifest.get("kind") != kind:
        raise FailedPrecondition(f"The prepared {kind} is out of date; the file must be processed again.")
    return manifest


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_media(blob: Path) -> av.container.InputContainer:
    """Open a blob with PyAV; empty or unreadable files are InvalidArgument."""
    try:
        size = blob.stat().st_size
    except FileNotFoundError:
        raise InvalidArgument("The media file is missing.") from None
    if size == 0:
        raise InvalidArgument("The file is empty.")
    try:
        return av.open(str(blob), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise InvalidArgument(
            f"The file could not be read: it is corrupt or not a supported container ({_av_reason(exc)})."
        ) from None


def _av_reason(exc: Exception) -> str:
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)[:200]


def file_sha256(path: Path, cancelled: Callable[[], bool] = lambda: False) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 << 20):
            h.update(chunk)
            check_cancelled(cancelled)
    return h.hexdigest()
