"""`pollux backup DIR`: a consistent copy of a data dir, taken while the server runs.

The database is copied first with SQLite's online backup (one point in time); then the bytes of
every file in that copy. A file deleted between the two has no bytes to copy, so its row leaves the
copy too, and unfinished uploads are left out (their staging bytes are not copied): a server started
on DIR lists exactly the files whose bytes are there, and its start-up checks find nothing unexplained.

It copies a local blob store only. Blobs on S3 are backed up with the store's own tools (bucket
versioning or replication, `aws s3 sync s3://BUCKET/PREFIX DEST`, `weed` / `mc mirror`), and a
PostgreSQL database with `pg_dump`; `backup` says so instead of copying half of a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete

from pollux.files.blobs import BlobStore, LocalBlobStore
from pollux.files.store import MetadataStore, StorageError, files, sessions, tombstones


@dataclass
class BackupResult:
    files: int
    dropped: int  # rows whose file was deleted while the backup ran
    bytes: int


def backup(store: MetadataStore, blobs: BlobStore, dest: Path) -> BackupResult:
    if not isinstance(blobs, LocalBlobStore):
        raise StorageError(f"`pollux backup` copies a local data dir; {blobs.describe()} is backed up with the "
                           "store's own tools (bucket versioning or replication, or `aws s3 sync` of the bucket's "
                           "prefix), together with the metadata database (`pg_dump` for PostgreSQL).")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise StorageError(f"{dest} is not empty; back up into a new or empty directory.")
    dest.mkdir(parents=True, exist_ok=True)
    db_path = dest / "pollux.db"
    store.backup_to(db_path)
    copy = MetadataStore(f"sqlite:///{db_path.resolve()}")
    try:
        kept, dropped, size = 0, 0, 0
        for rec in copy.all_files():
            if blobs.copy_blob(rec.key, dest):
                kept += 1
                size += rec.size_bytes
            else:
                with copy.engine.begin() as c:
                    c.execute(delete(files).where(files.c.id == rec.key))
                dropped += 1
        with copy.engine.begin() as c:
            c.execute(delete(sessions).where(sessions.c.status != "final"))
            c.execute(delete(tombstones))
    finally:
        copy.close()
    for sub in ("staging", "artifacts", "blobs"):
        (dest / sub).mkdir(exist_ok=True)
    return BackupResult(files=kept, dropped=dropped, bytes=size)
