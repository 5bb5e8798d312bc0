"""Metadata store: files, upload sessions and API keys, in SQLite by default (any SQLAlchemy URL).

Times are stored as integer microseconds since the epoch (UTC): exact and portable across backends.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, and_,
                        create_engine, delete, event, func, insert, or_, select, update)

from pollux.files.records import FileRecord, UploadSession

if TYPE_CHECKING:
    from pollux.settings import Settings

metadata = MetaData()

files = Table(
    "files", metadata,
    Column("id", String(40), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("display_name", String(512), nullable=False, default=""),
    Column("mime_type", String(128), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("error", Text),
    Column("video_duration", Float),
    Column("source", String(16), nullable=False, default="UPLOADED"),
    Column("meta", Text, nullable=False, default="{}"),
    Column("create_us", BigInteger, nullable=False),
    Column("update_us", BigInteger, nullable=False),
    Column("expire_us", BigInteger, nullable=False),
    Index("ix_files_project_create", "project", "create_us"),
    Index("ix_files_expire", "expire_us"),
)

sessions = Table(
    "upload_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("file_id", String(40), nullable=False),
    Column("display_name", String(512), nullable=False, default=""),
    Column("mime_type", String(128), nullable=False, default=""),
    Column("declared_size", BigInteger),
    Column("received", BigInteger, nullable=False, default=0),
    Column("protocol", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("final_file_id", String(40)),
    Column("create_us", BigInteger, nullable=False),
    Column("expire_us", BigInteger, nullable=False),
    Index("ix_sessions_project_status", "project", "status"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("prefix", String(16), nullable=False),
    Column("project", String(128), nullable=False),
    Column("create_us", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

schema_version = Table("schema_version", metadata, Column("version", Integer, primary_key=True))


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class MetadataStore:
    def __init__(self, url: str):
        self.engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._lock = threading.Lock()  # SQLite allows one writer; serialise ours instead of retrying
        metadata.create_all(self.engine)

    @classmethod
    def open(cls, settings: "Settings") -> "MetadataStore":
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        return cls(settings.resolved_database_url)

    # ---- files ----
    def insert_file(self, rec: FileRecord) -> None:
        with self._lock, self.engine.begin() as c:
            c.execute(insert(files).values(_file_row(rec)))

    def get_file(self, project: str, file_id: str) -> FileRecord | None:
        with self.engine.connect() as c:
            row = c.execute(select(files).where(files.c.id == file_id, files.c.project == project)).mappings().first()
        return _file_record(row) if row else None

    def file_exists(self, file_id: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(select(files.c.id).where(files.c.id == file_id)).first() is not None

    def list_files(self, project: str, limit: int, before: tuple[int, str] | None, now: int) -> list[FileRecord]:
        """Newest first; `before` is the (create_us, id) of the last row of the previous page."""
        q = select(files).where(files.c.project == project, files.c.expire_us > now)
        if before:
            us, fid = before
            q = q.where(or_(files.c.create_us < us, and_(files.c.create_us == us, files.c.id < fid)))
        q = q.order_by(files.c.create_us.desc(), files.c.id.desc()).limit(limit)
        with self.engine.connect() as c:
            return [_file_record(r) for r in c.execute(q).mappings()]

    def update_file(self, file_id: str, **values) -> bool:
        if "error" in values and values["error"] is not None:
            values["error"] = json.dumps(values["error"])
        if "meta" in values:
            values["meta"] = json.dumps(values["meta"])
        values["update_us"] = now_us()
        with self._lock, self.engine.begin() as c:
            return c.execute(update(files).where(files.c.id == file_id).values(**values)).rowcount > 0

    def delete_file(self, project: str, file_id: str) -> bool:
        with self._lock, self.engine.begin() as c:
            return c.execute(delete(files).where(files.c.id == file_id, files.c.project == project)).rowcount > 0

    def files_in_state(self, state: str) -> list[FileRecord]:
        with self.engine.connect() as c:
            return [_file_record(r) for r in c.execute(select(files).where(files.c.state == state)).mappings()]

    def expired_files(self, now: int) -> list[FileRecord]:
        with self.engine.connect() as c:
            return [_file_record(r) for r in c.execute(select(files).where(files.c.expire_us <= now)).mappings()]

    def all_file_ids(self) -> set[str]:
        with self.engine.connect() as c:
            return {r[0] for r in c.execute(select(files.c.id))}

    def project_usage(self, project: str, exclude_session: str | None = None) -> int:
        """Bytes held by the project: stored files plus bytes received by its open upload sessions."""
        with self.engine.connect() as c:
            stored = c.execute(select(func.coalesce(func.sum(files.c.size_bytes), 0))
                               .where(files.c.project == project)).scalar_one()
            q = select(func.coalesce(func.sum(sessions.c.received), 0)).where(
                sessions.c.project == project, sessions.c.status == "active")
            if exclude_session:
                q = q.where(sessions.c.id != exclude_session)
            pending = c.execute(q).scalar_one()
        return int(stored) + int(pending)

    # ---- upload sessions ----
    def insert_session(self, s: UploadSession) -> None:
        with self._lock, self.engine.begin() as c:
            c.execute(insert(sessions).values(
                id=s.id, project=s.project, file_id=s.file_id, display_name=s.display_name, mime_type=s.mime_type,
                declared_size=s.declared_size, received=s.received, protocol=s.protocol, status=s.status,
                create_us=_us(s.create_time), expire_us=_us(s.expire_time)))

    def get_session(self, session_id: str) -> UploadSession | None:
        with self.engine.connect() as c:
            row = c.execute(select(sessions).where(sessions.c.id == session_id)).mappings().first()
        return _session_record(row) if row else None

    def update_session(self, session_id: str, **values) -> None:
        with self._lock, self.engine.begin() as c:
            c.execute(update(sessions).where(sessions.c.id == session_id).values(**values))

    def session_file_id_taken(self, file_id: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(select(sessions.c.id).where(sessions.c.file_id == file_id,
                                                         sessions.c.status == "active")).first() is not None

    def stale_sessions(self, now: int) -> list[UploadSession]:
        with self.engine.connect() as c:
            rows = c.execute(select(sessions).where(or_(sessions.c.expire_us <= now,
                                                        sessions.c.status != "active"))).mappings()
            return [_session_record(r) for r in rows]

    def delete_session(self, session_id: str) -> None:
        with self._lock, self.engine.begin() as c:
            c.execute(delete(sessions).where(sessions.c.id == session_id))

    def active_session_ids(self) -> set[str]:
        with self.engine.connect() as c:
            return {r[0] for r in c.execute(select(sessions.c.id).where(sessions.c.status == "active"))}

    # ---- API keys ----
    def create_key(self, project: str) -> str:
        key = "px-" + secrets.token_urlsafe(30)
        with self._lock, self.engine.begin() as c:
            c.execute(insert(api_keys).values(key_hash=hash_key(key), prefix=key[:10], project=project,
                                              create_us=now_us(), revoked=False))
        return key

    def project_for_key(self, key: str) -> str | None:
        with self.engine.connect() as c:
            row = c.execute(select(api_keys.c.project).where(api_keys.c.key_hash == hash_key(key),
                                                             api_keys.c.revoked.is_(False))).first()
        return row[0] if row else None

    def list_keys(self) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(select(api_keys).order_by(api_keys.c.create_us)).mappings()
            return [{"prefix": r["prefix"], "project": r["project"], "created": from_us(r["create_us"]).isoformat(),
                     "revoked": r["revoked"]} for r in rows]

    def revoke_key(self, prefix: str) -> bool:
        with self._lock, self.engine.begin() as c:
            return c.execute(update(api_keys).where(api_keys.c.prefix.startswith(prefix), api_keys.c.revoked.is_(False))
                             .values(revoked=True)).rowcount > 0


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=FULL")  # a committed row survives power loss, like the fsynced blob
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _us(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def _file_row(r: FileRecord) -> dict:
    return dict(id=r.id, project=r.project, display_name=r.display_name, mime_type=r.mime_type,
                size_bytes=r.size_bytes, sha256=r.sha256, state=r.state,
                error=json.dumps(r.error) if r.error else None, video_duration=r.video_duration, source=r.source,
                meta=json.dumps(r.meta), create_us=_us(r.create_time), update_us=_us(r.update_time),
                expire_us=_us(r.expiration_time))


def _file_record(row) -> FileRecord:
    return FileRecord(
        id=row["id"], project=row["project"], display_name=row["display_name"], mime_type=row["mime_type"],
        size_bytes=row["size_bytes"], sha256=row["sha256"], state=row["state"],
        create_time=from_us(row["create_us"]), update_time=from_us(row["update_us"]),
        expiration_time=from_us(row["expire_us"]), error=json.loads(row["error"]) if row["error"] else None,
        video_duration=row["video_duration"], source=row["source"], meta=json.loads(row["meta"] or "{}"))


def _session_record(row) -> UploadSession:
    return UploadSession(
        id=row["id"], project=row["project"], file_id=row["file_id"], display_name=row["display_name"],
        mime_type=row["mime_type"], declared_size=row["declared_size"], received=row["received"],
        protocol=row["protocol"], status=row["status"], create_time=from_us(row["create_us"]),
        expire_time=from_us(row["expire_us"]), final_file_id=row["final_file_id"])
