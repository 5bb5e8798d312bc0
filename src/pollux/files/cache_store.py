"""The `cached_contents` table (explicit context caches), in the File API's database and `metadata`.

A row keeps the cache's request as the client sent it (contents, systemInstruction, tools,
toolConfig: wire JSON), so every later prompt rebuilds exactly the same prefix. Times are integer
microseconds, as in `store.py`. Rows are per project; an expired row is never returned and the
sweeper deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, and_, delete, insert, or_, select, update

from pollux.files.store import MetadataStore, metadata

cached_contents = Table(
    "cached_contents", metadata,
    Column("id", String(40), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("model", String(256), nullable=False),  # "models/..." as the cache was created for
    Column("display_name", String(512), nullable=False, default=""),
    Column("request_json", Text, nullable=False),  # {"contents", "systemInstruction", "tools", "toolConfig"}
    Column("total_tokens", Integer, nullable=False),
    Column("create_us", BigInteger, nullable=False),
    Column("update_us", BigInteger, nullable=False),
    Column("expire_us", BigInteger, nullable=False),
    Index("ix_cached_contents_project_create", "project", "create_us"),
    Index("ix_cached_contents_expire", "expire_us"),
)


@dataclass
class CacheRecord:
    id: str
    project: str
    model: str
    display_name: str
    request_json: str
    total_tokens: int
    create_us: int
    update_us: int
    expire_us: int


class CacheStore:
    """Rows of `cached_contents` through the File API's engine and write transactions (`MetadataStore.writing`)."""

    def __init__(self, store: MetadataStore):
        self.store = store

    def insert(self, rec: CacheRecord) -> None:
        with self.store.writing() as c:
            c.execute(insert(cached_contents).values(**rec.__dict__))

    def get(self, project: str, cache_id: str, now: int) -> CacheRecord | None:
        with self.store.engine.connect() as c:
            row = c.execute(select(cached_contents).where(
                cached_contents.c.project == project, cached_contents.c.id == cache_id,
                cached_contents.c.expire_us > now)).first()
        return CacheRecord(**row._mapping) if row else None

    def list(self, project: str, limit: int, before: tuple[int, str] | None, now: int) -> list[CacheRecord]:
        """Newest first; `before` is the (create_us, id) of the last row of the previous page."""
        t = cached_contents.c
        query = select(cached_contents).where(t.project == project, t.expire_us > now)
        if before is not None:
            query = query.where(or_(t.create_us < before[0], and_(t.create_us == before[0], t.id < before[1])))
        with self.store.engine.connect() as c:
            rows = c.execute(query.order_by(t.create_us.desc(), t.id.desc()).limit(limit)).all()
        return [CacheRecord(**r._mapping) for r in rows]

    def set_expiry(self, project: str, cache_id: str, expire_us: int, now: int) -> bool:
        t = cached_contents.c
        with self.store.writing() as c:
            done = c.execute(update(cached_contents).where(t.project == project, t.id == cache_id, t.expire_us > now)
                             .values(expire_us=expire_us, update_us=now))
        return done.rowcount > 0

    def delete(self, project: str, cache_id: str, now: int) -> bool:
        t = cached_contents.c
        with self.store.writing() as c:
            done = c.execute(delete(cached_contents).where(t.project == project, t.id == cache_id, t.expire_us > now))
        return done.rowcount > 0

    def take_expired(self, now: int) -> list[str]:
        """Delete the expired rows; their ids (to release what engines pinned for them)."""
        t = cached_contents.c
        with self.store.writing() as c:
            ids = [r.id for r in c.execute(select(t.id).where(t.expire_us <= now))]
            if ids:
                c.execute(delete(cached_contents).where(t.id.in_(ids)))
        return ids

    def live(self, now: int) -> list[CacheRecord]:
        """Every live cache (start-up pins them again)."""
        with self.store.engine.connect() as c:
            rows = c.execute(select(cached_contents).where(cached_contents.c.expire_us > now)).all()
        return [CacheRecord(**r._mapping) for r in rows]
