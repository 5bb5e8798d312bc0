"""Blob stores: where uploaded bytes and their derived artifacts live. `BlobStore` is the interface;
`LocalBlobStore` (this module) keeps them on local disk, `S3BlobStore` (`s3_blobs.py`) in any S3.
`open_blob_store` picks one from `blob_url` (`file://DIR`, the default being the data dir; `s3://BUCKET/PREFIX`).

Local layout: bytes land in `staging/`, are fsynced, then renamed into `blobs/`. The service records
its intent to commit on the session row before the blob becomes visible and inserts the file row
after, so either side of a crash is recoverable (see `files/recovery.py`). Nothing here decides what
is garbage: `inventory()` reports what is stored and the caller, holding the database's view,
removes only what it can prove nobody owns.

The seam with media processing: `local_blob(key)` (a local path holding the bytes), `artifact_dir(key)`
(where processing writes), `publish_artifacts(key)` (make them visible to every node) and
`fetch_artifacts(key)` (a local copy for readers on any node).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol
from urllib.parse import urlparse

from pollux.files.store import StorageError
from pollux.files.upload_parts import Part

if TYPE_CHECKING:
    from pollux.files.store import MetadataStore
    from pollux.settings import Settings

PROBE = ".pollux-write-probe"


@dataclass
class Inventory:
    """What lies on disk, by owner: blob storage keys, artifact owners' keys, staging session ids."""

    blobs: set[str] = field(default_factory=set)
    artifacts: dict[str, list[str]] = field(default_factory=dict)  # owner key → entry names
    staging: set[str] = field(default_factory=set)


class ChunkWriter(Protocol):
    """One chunk of an upload being written at its offset (every call blocks: run it in a thread)."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> Part | None:
        """Make the chunk's bytes durable; the object to record with the acknowledgement (None: the
        local store's staging file needs no record)."""

    def discard(self) -> None:
        """Drop this chunk's bytes (a failed write); the acknowledged ones stay."""

    def close(self) -> None: ...


class Assembly(Protocol):
    """A commit's bytes, gathered at the blob's key but not yet visible."""

    sha256: str  # hex digest of every byte

    @property
    def path(self) -> Path:
        """A local file holding the bytes (decoded now for images)."""

    def complete(self) -> None:
        """Make the blob durable and visible at its key."""

    def abort(self) -> None: ...


class BlobStore(Protocol):
    """What the file service, recovery, doctor and processing use; see the module docstring."""

    root: Path  # the local data dir (locks, caches)

    def describe(self) -> str: ...
    def check_writable(self) -> None: ...
    def open_chunk(self, session_id: str, offset: int) -> ChunkWriter: ...
    def drop_chunk(self, part: Part) -> None: ...
    def staged_head(self, session_id: str, size: int) -> bytes: ...
    def staged_digest(self, session_id: str, received: int): ...
    def staging_size(self, session_id: str) -> int: ...
    def has_staging(self, session_id: str) -> bool: ...
    def assemble(self, session_id: str, key: str, size: int, hasher, local: bool) -> Assembly: ...
    def commit_in_flight(self, key: str) -> bool: ...
    def uncommit(self, key: str, session_id: str) -> None: ...
    def discard_staging(self, session_id: str) -> None: ...
    def blob_size(self, key: str) -> int | None: ...
    def blob_sha256(self, key: str) -> str: ...
    def local_blob(self, key: str) -> Path: ...
    def blob_path(self, key: str) -> Path: ...
    def artifact_dir(self, key: str) -> Path: ...
    def publish_artifacts(self, key: str) -> None: ...
    def fetch_artifacts(self, key: str) -> Path | None: ...
    def remove(self, key: str) -> None: ...
    def remove_artifacts(self, key: str) -> None: ...
    def remove_artifact_entry(self, name: str) -> None: ...
    def inventory(self) -> Inventory: ...
    def sweep(self) -> int: ...


def open_blob_store(settings: "Settings", store: "MetadataStore") -> BlobStore:
    """The blob store `settings.blob_url` names (default: the data dir, as a single node always had)."""
    url = settings.blob_url or ""
    if not url:
        return LocalBlobStore(settings.data_dir, fsync=settings.fsync)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(parsed.netloc + parsed.path) if parsed.path or parsed.netloc else settings.data_dir,
                              fsync=settings.fsync)
    if parsed.scheme == "s3":
        from pollux.files.s3_blobs import S3BlobStore

        return S3BlobStore.from_settings(settings, store, bucket=parsed.netloc, prefix=parsed.path.strip("/"))
    raise StorageError(f"blob_url {url!r} is not file://DIR or s3://BUCKET/PREFIX.")


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

    # ---- the BlobStore interface, on one disk ----
    def describe(self) -> str:
        return f"the data dir {self.root}"

    def open_chunk(self, session_id: str, offset: int) -> ChunkWriter:
        return _StagingChunk(self, session_id, offset)

    def drop_chunk(self, part: Part) -> None:
        pass  # never called: local chunks carry no Part

    def staged_head(self, session_id: str, size: int) -> bytes:
        with open(self.staging_path(session_id), "rb") as fh:
            return fh.read(size)

    def staged_digest(self, session_id: str, received: int):
        """The SHA-256 state of the first `received` staged bytes (FileNotFoundError: they are gone)."""
        hasher = hashlib.sha256()
        if not received:
            return hasher
        path = self.staging_path(session_id)
        with open(path, "rb") as fh:
            left = received
            while left:
                block = fh.read(min(left, 8 << 20))
                if not block:
                    raise FileNotFoundError(path)
                hasher.update(block)
                left -= len(block)
        return hasher

    def assemble(self, session_id: str, key: str, size: int, hasher, local: bool) -> Assembly:
        return _Rename(self, session_id, key, hasher.hexdigest())

    def blob_sha256(self, key: str) -> str:
        from pollux.media.artifact import file_sha256

        return file_sha256(self.blob_path(key))

    def local_blob(self, key: str) -> Path:
        return self.blob_path(key)

    def publish_artifacts(self, key: str) -> None:
        pass  # every reader shares this disk

    def fetch_artifacts(self, key: str) -> Path | None:
        d = self.artifact_dir(key)
        return d if d.is_dir() else None

    def sweep(self) -> int:
        return 0  # nothing is left in flight on a local disk

    def commit_in_flight(self, key: str) -> bool:
        return False  # one process per data dir, and its session locks serialise a commit


class _StagingChunk:
    def __init__(self, blobs: LocalBlobStore, session_id: str, offset: int):
        self.blobs, self.session_id, self.offset = blobs, session_id, offset
        self.fh = blobs.open_staging(session_id, offset)

    def write(self, data: bytes) -> None:
        self.fh.write(data)

    def finish(self) -> None:
        self.blobs.sync_staging(self.fh)
        self.fh.close()

    def discard(self) -> None:
        self.fh.close()
        self.blobs.cut_staging(self.session_id, self.offset)

    def close(self) -> None:
        self.fh.close()


@dataclass
class _Rename:
    blobs: LocalBlobStore
    session_id: str
    key: str
    sha256: str

    @property
    def path(self) -> Path:
        return self.blobs.staging_path(self.session_id)

    def complete(self) -> None:
        self.blobs.commit(self.session_id, self.key)

    def abort(self) -> None:
        pass  # the bytes are still staged: the upload can be finalized again


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
