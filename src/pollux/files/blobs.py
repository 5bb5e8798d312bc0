"""Local-disk blob store. Bytes land in `staging/`, are fsynced, then renamed into `blobs/`.

The service records its intent to commit on the session row before the rename and inserts the file
row after it, so either side of a crash is recoverable (see `files/recovery.py`). Nothing here
decides what is garbage: `inventory()` reports what is on disk and the caller, holding the
database's view, removes only what it can prove nobody owns. The seam for an S3-compatible store
later is this class's public methods.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pollux.files.store import StorageError

PROBE = ".pollux-write-probe"


@dataclass
class Inventory:
    """What lies on disk, by owner: blob storage keys, artifact owners' keys, staging session ids."""

    blobs: set[str] = field(default_factory=set)
    artifacts: dict[str, list[str]] = field(default_factory=dict)  # owner key → entry names
    staging: set[str] = field(default_factory=set)


class LocalBlobStore:
    def __init__(self, root: Path, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync
        self.staging = self.root / "staging"
        self.blobs = self.root / "blobs"
        self.artifacts = self.root / "artifacts"
        try:
            for d in (self.staging, self.blobs, self.artifacts):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"The data dir {self.root} cannot be used: {e.strerror or e} ({e.filename}).") from None

    def check_writable(self) -> None:
        """Stop start-up with a clear message on a read-only or unwritable data dir."""
        probe = self.staging / PROBE
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):  # full, not read-only: serve reads, refuse writes clearly
                probe.unlink(missing_ok=True)
                return
            raise StorageError(f"The data dir {self.root} is not writable ({e.strerror or e}). Pollux needs to write "
                               "uploads and metadata there: mount it read-write or pass another --data-dir.") from None

    def staging_path(self, session_id: str) -> Path:
        return self.staging / f"{session_id}.part"

    def open_staging(self, session_id: str, offset: int) -> BinaryIO:
        """Open the session's staging file for writing at `offset`, dropping any bytes past it.

        Bytes past the last acknowledged offset are from a chunk whose request never finished
        (a crash or a dropped connection); the client re-sends them.
        """
        path = self.staging_path(session_id)
        fh = open(path, "r+b" if path.exists() else "w+b")
        fh.truncate(offset)
        fh.seek(offset)
        return fh

    def cut_staging(self, session_id: str, size: int) -> None:
        """Drop a failed chunk's bytes (past `size`, the acknowledged offset); best effort on a sick disk."""
        try:
            os.truncate(self.staging_path(session_id), size)
        except OSError:
            pass

    def sync_staging(self, fh: BinaryIO) -> None:
        fh.flush()
        if self.fsync:
            os.fsync(fh.fileno())

    def staging_size(self, session_id: str) -> int:
        try:
            return self.staging_path(session_id).stat().st_size
        except FileNotFoundError:
            return 0

    def has_staging(self, session_id: str) -> bool:
        return self.staging_path(session_id).exists()

    def commit(self, session_id: str, key: str) -> Path:
        """Make the staged bytes durable and visible as the blob `key`."""
        src, dst = self.staging_path(session_id), self.blob_path(key)
        if self.fsync:
            with open(src, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(src, dst)
        if self.fsync:
            _fsync_dir(self.blobs)
        return dst

    def uncommit(self, key: str, session_id: str) -> None:
        """Put a renamed blob back in staging (a commit whose row never came: the upload resumes)."""
        os.replace(self.blob_path(key), self.staging_path(session_id))

    def discard_staging(self, session_id: str) -> None:
        self.staging_path(session_id).unlink(missing_ok=True)

    def blob_path(self, key: str) -> Path:
        return self.blobs / key

    def blob_size(self, key: str) -> int | None:
        try:
            return self.blob_path(key).stat().st_size
        except FileNotFoundError:
            return None

    def artifact_dir(self, key: str) -> Path:
        return self.artifacts / key

    def remove(self, key: str) -> None:
        self.blob_path(key).unlink(missing_ok=True)
        self.remove_artifacts(key)

    def remove_artifacts(self, key: str) -> None:
        for d in (self.artifacts / key, self.artifacts / f"{key}.tmp"):  # and a half-built one
            _remove_tree(d)

    def remove_artifact_entry(self, name: str) -> None:
        _remove_tree(self.artifacts / name)

    def inventory(self) -> Inventory:
        inv = Inventory()
        inv.blobs = {p.name for p in self.blobs.iterdir()}
        for p in self.artifacts.iterdir():
            inv.artifacts.setdefault(p.name.split(".", 1)[0], []).append(p.name)
        inv.staging = {p.name.removesuffix(".part") for p in self.staging.iterdir() if p.name != PROBE}
        return inv

    def copy_blob(self, key: str, dest_root: Path) -> bool:
        """Copy `key`'s blob and finished artifacts under `dest_root` (a backup); false if it is gone."""
        target = dest_root / "blobs" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(self.blob_path(key), target)
        except FileNotFoundError:
            return False
        artifact = self.artifact_dir(key)
        if artifact.is_dir():
            try:
                shutil.copytree(artifact, dest_root / "artifacts" / key, dirs_exist_ok=True)
            except (shutil.Error, FileNotFoundError):  # rebuilt meanwhile: artifacts are derived, skip it
                shutil.rmtree(dest_root / "artifacts" / key, ignore_errors=True)
        return True

    # The seam media processing uses (files/processing.py); on local disk every node sees the same files.
    def local_blob(self, key: str) -> Path:
        return self.blob_path(key)

    def publish_artifacts(self, key: str) -> None:
        """After processing succeeded, make the artifacts visible to every node: here they already are."""

    def fetch_artifacts(self, key: str) -> Path | None:
        path = self.artifact_dir(key)
        return path if path.is_dir() else None


def _remove_tree(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
