"""Acknowledged chunks of resumable uploads kept in object storage (one object per chunk).

A chunk is written to its own object under the session's staging prefix, with a unique suffix, so two
nodes racing on one offset never overwrite each other's bytes. The row naming the winning object is
inserted in the same transaction as the compare-and-set that advances the session's acknowledged
offset: a chunk is acknowledged exactly when its row exists, on whichever node took it. The local
blob store keeps its single staging file and never writes here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, String, Table, delete, insert, select, update

from pollux.files.store import MetadataStore, metadata, now_us, sessions

upload_parts = Table(
    "upload_parts", metadata,
    Column("session_id", String(64), primary_key=True),
    Column("chunk_offset", BigInteger, primary_key=True),  # where the chunk starts in the upload
    Column("size", BigInteger, nullable=False),
    Column("object_key", String(512), nullable=False),  # the chunk's object, relative to the store's prefix
    Column("create_us", BigInteger, nullable=False),
    Index("ix_upload_parts_object", "object_key"),
)


@dataclass(frozen=True)
class Part:
    offset: int
    size: int
    key: str  # object key relative to the blob store's prefix


def advance_with_part(store: MetadataStore, session_id: str, expected: int, received: int, part: Part) -> bool:
    """Acknowledge `part`: move the session from `expected` to `received` and record the chunk, or do
    neither (another node took this offset, or the session is no longer active)."""
    with store._lock, store.engine.begin() as c:
        moved = c.execute(update(sessions).where(
            sessions.c.id == session_id, sessions.c.received == expected, sessions.c.status == "active")
            .values(received=received)).rowcount > 0
        if moved:
            c.execute(delete(upload_parts).where(upload_parts.c.session_id == session_id,
                                                 upload_parts.c.chunk_offset >= part.offset))
            c.execute(insert(upload_parts).values(session_id=session_id, chunk_offset=part.offset, size=part.size,
                                                  object_key=part.key, create_us=now_us()))
        return moved


def parts_of(store: MetadataStore, session_id: str) -> list[Part]:
    """The session's acknowledged chunks in upload order (each starting where the previous ended)."""
    with store.engine.connect() as c:
        rows = c.execute(select(upload_parts).where(upload_parts.c.session_id == session_id)
                         .order_by(upload_parts.c.chunk_offset)).mappings()
        return [Part(r["chunk_offset"], r["size"], r["object_key"]) for r in rows]


def sessions_with_parts(store: MetadataStore) -> set[str]:
    with store.engine.connect() as c:
        return {r[0] for r in c.execute(select(upload_parts.c.session_id).distinct())}


def owned_keys(store: MetadataStore) -> set[str]:
    with store.engine.connect() as c:
        return {r[0] for r in c.execute(select(upload_parts.c.object_key))}


def forget_parts(store: MetadataStore, session_id: str) -> None:
    with store._lock, store.engine.begin() as c:
        c.execute(delete(upload_parts).where(upload_parts.c.session_id == session_id))


def record_commit_sha(store: MetadataStore, session_id: str, sha256: str) -> None:
    """Fill in the SHA-256 of a commit whose digest was computed while its bytes were assembled
    (before the blob becomes visible, so a roll-forward inserts the right hash)."""
    import json

    with store._lock, store.engine.begin() as c:
        raw = c.execute(select(sessions.c.commit_json).where(sessions.c.id == session_id)).scalar()
        if raw:
            row = json.loads(raw)
            row["sha256"] = sha256
            c.execute(update(sessions).where(sessions.c.id == session_id).values(commit_json=json.dumps(row)))
