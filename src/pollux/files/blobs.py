"""Local-disk blob store. Bytes land in `staging/`, are fsynced, then renamed into `blobs/`.

The rename happens before the metadata row commits, so a crash leaves at worst an orphan blob
(removed at start-up), never a row whose bytes are missing or partial. The seam for an
S3-compatible store later is this class's public methods.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO


class LocalBlobStore:
    def __init__(self, root: Path, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync
        self.staging = self.root / "staging"
        self.blobs = self.root / "blobs"
        self.artifacts = self.root / "artifacts"
        for d in (self.staging, self.blobs, self.artifacts):
            d.mkdir(parents=True, exist_ok=True)

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

    def staging_size(self, session_id: str) -> int:
        try:
            return self.staging_path(session_id).stat().st_size
        except FileNotFoundError:
            return 0

    def commit(self, session_id: str, file_id: str) -> Path:
        """Make the staged bytes durable and visible as `file_id`'s blob."""
        src, dst = self.staging_path(session_id), self.blob_path(file_id)
        if self.fsync:
            with open(src, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(src, dst)
        if self.fsync:
            _fsync_dir(self.blobs)
        return dst

    def discard_staging(self, session_id: str) -> None:
        self.staging_path(session_id).unlink(missing_ok=True)

    def blob_path(self, file_id: str) -> Path:
        return self.blobs / file_id

    def artifact_dir(self, file_id: str) -> Path:
        return self.artifacts / file_id

    def remove(self, file_id: str) -> None:
        self.blob_path(file_id).unlink(missing_ok=True)
        for d in (self.artifacts / file_id, self.artifacts / f"{file_id}.tmp"):  # and a half-built one
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)

    def remove_orphans(self, file_ids: set[str], session_ids: set[str]) -> int:
        """Delete blobs, artifacts and staging files that no metadata row owns."""
        removed = 0
        for p in self.blobs.iterdir():
            if p.name not in file_ids:
                p.unlink(missing_ok=True)
                removed += 1
        for p in self.artifacts.iterdir():
            if p.name.split(".", 1)[0] not in file_ids:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed += 1
        for p in self.staging.iterdir():
            if p.name.removesuffix(".part") not in session_ids:
                p.unlink(missing_ok=True)
                removed += 1
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
