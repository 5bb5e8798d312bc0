"""Metadata store: files, upload sessions and API keys, in SQLite by default (any SQLAlchemy URL).

Times are stored as integer microseconds since the epoch (UTC): exact and portable across backends.

A file has two ids: `id`, the storage key (global primary key, names its blob), and `name`, the
id clients see (unique per project). They are equal unless a client proposed a name another project
already holds: that project's name must not leak, so the new file gets its own storage key.

Integrity rules the service relies on: quota reservations are checked and taken in one locked
transaction (SQLite: this process's writer lock, one process per database; PostgreSQL: a transaction
advisory lock per project, so the check holds across nodes); a commit is recorded on its session (`committing` + the file row to insert) before the
blob is renamed, so start-up can finish it; a delete leaves a tombstone until the bytes are gone,
so start-up only ever deletes bytes the database says are garbage.

The schema is Alembic's (`pollux.migrations`): opening a store upgrades the database to head. Work that
must run on one node at a time (housekeeping, one upload session's writer) takes a named cluster lock,
`try_lock`: a PostgreSQL session advisory lock, held on a connection of its own, that the server drops
when the holder dies; on SQLite there is one process and the lock is always granted.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (BigInteger, Boolean, Column, Connection, Float, Index, Integer, MetaData, String, Table, Text,
                        and_, create_engine, delete, event, func, insert, or_, select, text, update)
from sqlalchemy.exc import ArgumentError, DatabaseError, DataError, OperationalError
from sqlalchemy.pool import NullPool

from pollux.errors import InvalidArgument

from pollux.files.records import FileRecord, UploadSession
from pollux.files.storage_errors import not_writable, out_of_space

if TYPE_CHECKING:
    from pollux.settings import Settings

metadata = MetaData()

files = Table(
    "files", metadata,
    Column("id", String(40), primary_key=True),  # storage key
    Column("name", String(40)),  # the id the project sees (NULL in rows older than the column: = id)
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
    Index("ix_files_project_name", "project", "name", unique=True),
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
    Column("status", String(16), nullable=False),  # active | committing | final | cancelled
    Column("final_file_id", String(40)),
    Column("reserved", BigInteger, nullable=False, default=0),  # quota bytes held (>= received)
    Column("commit_json", Text),  # while committing: the file row to insert once the blob is in place
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

# Files deleted whose bytes may still be on disk: the only blobs start-up may remove without a row.
tombstones = Table(
    "tombstones", metadata,
    Column("id", String(40), primary_key=True),
    Column("deleted_us", BigInteger, nullable=False),
)

schema_version = Table("schema_version", metadata, Column("version", Integer, primary_key=True))


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class StorageError(Exception):
    """The data dir cannot be used as it is (unreadable database, unexplained bytes, read-only):
    start-up stops with this message instead of guessing."""


ACTIVE_SESSION = ("active", "committing")  # sessions that hold quota and bytes


class NameTaken(Exception):
    """The project already has a file (or an unfinished upload) with the proposed name."""


class QuotaRefused(Exception):
    def __init__(self, used: int):
        super().__init__(used)
        self.used = used


class ClusterLock:
    """A held cluster lock (`MetadataStore.try_lock`); `release` gives it back (idempotent)."""

    def __init__(self, conn: Connection | None = None, key: int = 0):
        self._conn, self._key = conn, key

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            conn.commit()
        finally:
            conn.close()  # even when the unlock failed: a closed connection drops every lock it held


class MetadataStore:
    def __init__(self, url: str, pool_size: int = 5, max_overflow: int = 10):
        from pollux import migrations

        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
        pooling = {} if self.is_sqlite else {"pool_size": pool_size, "max_overflow": max_overflow,
                                             "pool_pre_ping": True}
        try:
            self.engine = create_engine(url, future=True, **pooling)
        except ArgumentError as e:
            raise StorageError(f"The database URL {safe_url(url)} is not valid: {e}.") from None
        except ImportError as e:  # e.g. postgresql+psycopg without psycopg installed
            raise StorageError(f"The database URL {safe_url(url)} needs a driver that is not installed ({e.name}): "
                               "pip install 'pollux[postgres]' for PostgreSQL.") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine, "handle_error", _refuse_unstorable)
        # SQLite allows one writer: serialise ours instead of retrying. PostgreSQL takes row and advisory locks.
        self._lock = threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        self._locks_engine = create_engine(url, poolclass=NullPool) if self.is_postgres else None
        self.key_revision = 0  # bumped by every revocation: key caches (api/auth.py) drop what they hold
        try:
            self.revision = migrations.upgrade(self.engine)
        except (DatabaseError, OperationalError) as e:
            self.engine.dispose()
            if self._locks_engine is not None:
                self._locks_engine.dispose()
            if out_of_space(e):
                raise StorageError(f"The disk holding {safe_url(url)} is full ({e.orig or e}): free some space and "
                                   "start again. Nothing was changed.") from None
            if not_writable(e):
                raise StorageError(f"The metadata database {safe_url(url)} is not writable ({e.orig or e}): mount the "
                                   "data dir read-write or pass another --data-dir.") from None
            raise StorageError(f"The metadata database {safe_url(url)} cannot be opened: {e.orig or e}. "
                               "Restore it from a backup or run `pollux doctor` to inspect the data dir.") from None

    @classmethod
    def open(cls, settings: "Settings") -> "MetadataStore":
        if settings.database_url is None:  # SQLite in the data dir
            Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        return cls(settings.resolved_database_url, pool_size=settings.database_pool_size,
                   max_overflow=settings.database_max_overflow)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction (on SQLite under this process's writer lock)."""
        with self._lock, self.engine.begin() as c:
            yield c

    # ---- cluster locks ----
    def try_lock(self, name: str) -> ClusterLock | None:
        """Take the cluster-wide lock `name` without waiting; None when another holder has it.
        Blocking (a round trip on PostgreSQL): call from a thread in async code."""
        if self._locks_engine is None:
            return ClusterLock()
        key = lock_key(name)
        conn = self._locks_engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        return ClusterLock(conn, key)

    @contextlib.contextmanager
    def cluster_lock(self, name: str, wait: float = 0.0) -> Iterator[bool]:
        """Hold the lock `name` for the block if it can be had within `wait` seconds; yields whether it was."""
        deadline, delay = time.monotonic() + wait, 0.02
        held = self.try_lock(name)
        while held is None and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            held = self.try_lock(name)
        try:
            yield held is not None
        finally:
            if held is not None:
                held.release()

    def _serialise(self, c: Connection, name: str) -> None:
        """Writers of `name` (a project's quota, a storage key) take turns until this transaction ends.
        SQLite: already so under the writer lock."""
        if self.is_postgres:
            c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})

    def checkpoint(self) -> None:
        """Fold SQLite's WAL into the main file, so `pollux.db` alone holds every row after a clean stop."""
        if self.is_sqlite:
            with self._lock, self.engine.connect() as c:
                c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        try:
            self.checkpoint()
        finally:
            self.engine.dispose()
            if self._locks_engine is not None:
                self._locks_engine.dispose()

    def integrity_problems(self) -> list[str]:
        if not self.is_sqlite:
            return []
        with self.engine.connect() as c:
            rows = [r[0] for r in c.exec_driver_sql("PRAGMA integrity_check")]
        return [] if rows == ["ok"] else rows

    def backup_to(self, path: Path) -> None:
        """A consistent copy of the database while the server runs (SQLite's online backup)."""
        import sqlite3

        if not self.is_sqlite:
            raise StorageError("`pollux backup` copies SQLite databases; back up other databases with their own tools.")
        with self.engine.connect() as c:
            src: Any = c.connection.dbapi_connection  # a sqlite3 connection (checked above)
            dst = sqlite3.connect(path)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                dst.close()

    # ---- files ----
    def insert_file(self, rec: FileRecord) -> None:
        with self.writing() as c:
            c.execute(delete(tombstones).where(tombstones.c.id == rec.key))
            c.execute(insert(files).values(_file_row(rec)))

    def get_file(self, project: str, file_id: str) -> FileRecord | None:
        with self.engine.connect() as c:
            row = c.execute(select(files).where(files.c.name == file_id, files.c.project == project)).mappings().first()
        return _file_record(row) if row else None

    def get_file_by_key(self, key: str) -> FileRecord | None:
        with self.engine.connect() as c:
            row = c.execute(select(files).where(files.c.id == key)).mappings().first()
        return _file_record(row) if row else None

    def file_exists(self, key: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(select(files.c.id).where(files.c.id == key)).first() is not None

    def list_files(self, project: str, limit: int, before: tuple[int, str] | None, now: int) -> list[FileRecord]:
        """Newest first; `before` is the (create_us, name) of the last row of the previous page."""
        q = select(files).where(files.c.project == project, files.c.expire_us > now)
        if before:
            us, fid = before
            q = q.where(or_(files.c.create_us < us, and_(files.c.create_us == us, files.c.name < fid)))
        q = q.order_by(files.c.create_us.desc(), files.c.name.desc()).limit(limit)
        with self.engine.connect() as c:
            return [_file_record(r) for r in c.execute(q).mappings()]

    def update_file(self, key: str, **values) -> bool:
        if "error" in values and values["error"] is not None:
            values["error"] = json.dumps(values["error"])
        if "meta" in values:
            values["meta"] = json.dumps(values["meta"])
        values["update_us"] = now_us()
        with self.writing() as c:
            return c.execute(update(files).where(files.c.id == key).values(**values)).rowcount > 0

    def delete_file(self, project: str, file_id: str) -> str | None:
        """Remove the row and leave a tombstone for its bytes; the storage key, or None if absent."""
        with self.writing() as c:
            key = c.execute(select(files.c.id).where(files.c.name == file_id, files.c.project == project)).scalar()
            if key is None or not c.execute(delete(files).where(files.c.id == key)).rowcount:
                return None  # (a concurrent delete on another node took it first)
            c.execute(delete(tombstones).where(tombstones.c.id == key))
            c.execute(insert(tombstones).values(id=key, deleted_us=now_us()))
            return key

    def tombstoned(self) -> set[str]:
        with self.engine.connect() as c:
            return {r[0] for r in c.execute(select(tombstones.c.id))}

    def forget_tombstone(self, key: str) -> None:
        with self.writing() as c:
            c.execute(delete(tombstones).where(tombstones.c.id == key))

    def files_in_state(self, state: str) -> list[FileRecord]:
        with self.engine.connect() as c:
            return [_file_record(r) for r in c.execute(select(files).where(files.c.state == state)).mappings()]

    def all_files(self) -> list[FileRecord]:
        with self.engine.connect() as c:
            return [_file_record(r) for r in c.execute(select(files)).mappings()]

    def expired_files(self, now: int) -> list[FileRecord]:
        with self.engine.connect() as c:
            return [_file_record(r) for r in c.execute(select(files).where(files.c.expire_us <= now)).mappings()]

    def project_usage(self, project: str, exclude_session: str | None = None) -> int:
        """Bytes held by the project: stored files plus the quota its unfinished uploads reserved."""
        with self.engine.connect() as c:
            return _usage(c, project, exclude_session)

    # ---- upload sessions ----
    def insert_session(self, s: UploadSession, reserve: int = 0, limit: int | None = None,
                       unique_name: bool = False) -> None:
        """Insert the session holding `reserve` quota bytes. Checked in the same transaction: the
        project's quota (QuotaRefused) and, for a proposed name, that the project does not hold it (NameTaken)."""
        with self.writing() as c:
            self._serialise(c, "project:" + s.project)
            if unique_name and _name_taken(c, s.project, s.file_id):
                raise NameTaken(s.file_id)
            if limit is not None and reserve:
                used = _usage(c, s.project, None)
                if used + reserve > limit:
                    raise QuotaRefused(used)
            c.execute(insert(sessions).values(
                id=s.id, project=s.project, file_id=s.file_id, display_name=s.display_name, mime_type=s.mime_type,
                declared_size=s.declared_size, received=s.received, protocol=s.protocol, status=s.status,
                reserved=reserve, create_us=_us(s.create_time), expire_us=_us(s.expire_time)))
        s.reserved = reserve

    def reserve(self, session_id: str, project: str, total: int, limit: int) -> int | None:
        """Raise the session's reservation to `total` bytes unless the project would pass `limit`
        (then return the bytes used by everything else). Atomic: the project's writers take turns."""
        with self.writing() as c:
            self._serialise(c, "project:" + project)
            used = _usage(c, project, session_id)
            if used + total > limit:
                return used
            c.execute(update(sessions).where(sessions.c.id == session_id, sessions.c.reserved < total)
                      .values(reserved=total))
        return None

    def get_session(self, session_id: str) -> UploadSession | None:
        with self.engine.connect() as c:
            row = c.execute(select(sessions).where(sessions.c.id == session_id)).mappings().first()
        return _session_record(row) if row else None

    def update_session(self, session_id: str, **values) -> None:
        with self.writing() as c:
            c.execute(update(sessions).where(sessions.c.id == session_id).values(**values))

    def advance_session(self, session_id: str, expected: int, received: int, **values) -> bool:
        """Compare-and-set the acknowledged offset: only from `expected`, only while the session is active."""
        with self.writing() as c:
            return c.execute(update(sessions).where(
                sessions.c.id == session_id, sessions.c.received == expected, sessions.c.status == "active")
                .values(received=received, **values)).rowcount > 0

    def begin_commit(self, session_id: str, rec: FileRecord) -> bool:
        """Record the intent to commit `rec` (before its blob is renamed); false if the session moved on.

        Picks `rec.key`: the file's id, or a fresh key when any project's file, upload or leftover bytes
        use that id (a name held elsewhere must look free, and blobs are keyed globally)."""
        with self.writing() as c:
            rec.key = rec.id
            self._serialise(c, "key:" + rec.key)
            while _key_taken(c, rec.key, session_id):
                rec.key = "k" + secrets.token_hex(12)
                self._serialise(c, "key:" + rec.key)
            return c.execute(update(sessions).where(sessions.c.id == session_id, sessions.c.status == "active")
                             .values(status="committing", final_file_id=rec.key,
                                     commit_json=json.dumps(_file_row(rec)))).rowcount > 0

    def finish_commit(self, session_id: str, rec: FileRecord) -> None:
        """Insert the file row and close the session in one transaction (the blob is already in place)."""
        with self.writing() as c:
            if c.execute(select(files.c.id).where(files.c.id == rec.key)).first() is None:
                c.execute(delete(tombstones).where(tombstones.c.id == rec.key))
                c.execute(insert(files).values(_file_row(rec)))
            c.execute(update(sessions).where(sessions.c.id == session_id).values(
                status="final", final_file_id=rec.key, reserved=0, commit_json=None))

    def sessions_in(self, *statuses: str) -> list[UploadSession]:
        with self.engine.connect() as c:
            rows = c.execute(select(sessions).where(sessions.c.status.in_(statuses))).mappings()
            return [_session_record(r) for r in rows]

    def stale_sessions(self, now: int) -> list[UploadSession]:
        """Sessions to drop: expired, or cancelled (a cancelled session answers like a missing one)."""
        with self.engine.connect() as c:
            rows = c.execute(select(sessions).where(or_(sessions.c.expire_us <= now,
                                                        sessions.c.status == "cancelled"))).mappings()
            return [_session_record(r) for r in rows]

    def delete_session(self, session_id: str) -> None:
        with self.writing() as c:
            c.execute(delete(sessions).where(sessions.c.id == session_id))

    def create_key(self, project: str) -> str:
        key = "px-" + secrets.token_urlsafe(30)
        with self.writing() as c:
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
        with self.writing() as c:
            revoked = c.execute(update(api_keys).where(api_keys.c.prefix.startswith(prefix),
                                                       api_keys.c.revoked.is_(False)).values(revoked=True)).rowcount > 0
        self.key_revision += 1  # after the commit: a lookup racing it is cached under the old revision
        return revoked


def _name_taken(c, project: str, name: str) -> bool:
    if c.execute(select(files.c.id).where(files.c.project == project, files.c.name == name)).first():
        return True
    return c.execute(select(sessions.c.id).where(
        sessions.c.project == project, sessions.c.file_id == name,
        sessions.c.status.in_(ACTIVE_SESSION))).first() is not None


def _key_taken(c, key: str, session_id: str) -> bool:
    """A storage key in use by any project's file, tombstoned bytes or another commit in flight."""
    return any(c.execute(q).first() is not None for q in (
        select(files.c.id).where(files.c.id == key),
        select(tombstones.c.id).where(tombstones.c.id == key),
        select(sessions.c.id).where(sessions.c.final_file_id == key, sessions.c.status == "committing",
                                    sessions.c.id != session_id)))


def _usage(c, project: str, exclude_session: str | None) -> int:
    """Stored bytes plus live reservations, read in ONE statement: PostgreSQL's READ COMMITTED gives each
    statement its own snapshot, and a commit (file row in, reservation to 0, one transaction) landing
    between two reads would be counted in neither, letting one upload past the quota."""
    stored = select(func.coalesce(func.sum(files.c.size_bytes), 0)).where(files.c.project == project)
    reserved = select(func.coalesce(func.sum(sessions.c.reserved), 0)).where(
        sessions.c.project == project, sessions.c.status.in_(ACTIVE_SESSION))
    if exclude_session:
        reserved = reserved.where(sessions.c.id != exclude_session)
    return int(c.execute(select(stored.scalar_subquery() + reserved.scalar_subquery())).scalar_one())


def lock_key(name: str) -> int:
    """A lock name as PostgreSQL's signed 64-bit advisory lock key (the same on every node)."""
    return int.from_bytes(hashlib.sha256(b"pollux:" + name.encode()).digest()[:8], "big", signed=True)


def _refuse_unstorable(ctx) -> None:
    """A value PostgreSQL cannot store (a NUL character, a string longer than its column) is the
    client's bad input, not a server fault: a 400, as SQLite (which stores anything) never needed."""
    if isinstance(ctx.sqlalchemy_exception, DataError):
        raise InvalidArgument("The request holds a value the server cannot store (a NUL character, or a text "
                              "longer than its field allows).") from ctx.original_exception


def safe_url(url: str) -> str:
    return url.split("@", 1)[-1] if "@" in url else url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=FULL")  # a committed row survives power loss, like the fsynced blob
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _us(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def _file_row(r: FileRecord) -> dict:
    return dict(id=r.key, name=r.id, project=r.project, display_name=r.display_name, mime_type=r.mime_type,
                size_bytes=r.size_bytes, sha256=r.sha256, state=r.state,
                error=json.dumps(r.error) if r.error else None, video_duration=r.video_duration, source=r.source,
                meta=json.dumps(r.meta), create_us=_us(r.create_time), update_us=_us(r.update_time),
                expire_us=_us(r.expiration_time))


def _file_record(row) -> FileRecord:
    return FileRecord(
        id=row["name"] or row["id"], key=row["id"], project=row["project"], display_name=row["display_name"], mime_type=row["mime_type"],
        size_bytes=row["size_bytes"], sha256=row["sha256"], state=row["state"],
        create_time=from_us(row["create_us"]), update_time=from_us(row["update_us"]),
        expiration_time=from_us(row["expire_us"]), error=json.loads(row["error"]) if row["error"] else None,
        video_duration=row["video_duration"], source=row["source"], meta=json.loads(row["meta"] or "{}"))


def _session_record(row) -> UploadSession:
    return UploadSession(
        id=row["id"], project=row["project"], file_id=row["file_id"], display_name=row["display_name"],
        mime_type=row["mime_type"], declared_size=row["declared_size"], received=row["received"],
        protocol=row["protocol"], status=row["status"], create_time=from_us(row["create_us"]),
        expire_time=from_us(row["expire_us"]), final_file_id=row["final_file_id"], reserved=row["reserved"],
        commit=_commit_record(row["commit_json"]))


def _commit_record(raw: str | None) -> FileRecord | None:
    """The file row a committing session will insert (stored as the row's own columns)."""
    if not raw:
        return None
    row = json.loads(raw)
    return _file_record(row)
