"""Media jobs across processes and machines: one row per PROCESSING file, claimed with a lease.

No queue delivers exactly once, so the design is at-least-once delivery, idempotent work (artifacts
are a deterministic function of the blob, under the file's own key) and a fenced commit:

- `claim` takes one due job and bumps its `attempt` (the fencing token) in a single statement:
  `UPDATE jobs SET attempt = attempt + 1, owner = …, lease_until_us = … WHERE id = (SELECT id …
  FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING …` on PostgreSQL; the same statement under
  `BEGIN IMMEDIATE` on SQLite (one writer at a time, so nothing to skip).
- the holder renews its lease with a heartbeat (`renew`); a worker that dies stops renewing, the
  lease passes and any worker claims the job again (attempt + 1).
- `complete` flips the file PROCESSING → ACTIVE/FAILED in the same transaction that deletes the job,
  only `WHERE id = ? AND attempt = ?`: a paused "zombie" holder whose job was claimed again meanwhile
  hits 0 rows and its result is discarded.

`lease_until_us` is when the job may next be claimed: its enqueue time, a holder's lease expiry or a
retry's backoff. `failures` counts attempts that ended badly (an error, or a holder that vanished
without giving the job back); past the limit the next claimant records the file as FAILED.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import (BigInteger, Column, Index, Integer, String, Table, Text, and_, case, delete, exists, func,
                        literal, or_, select, update)
from sqlalchemy.dialects import postgresql, sqlite

from pollux.files.records import State
from pollux.files.store import files, metadata, now_us

if TYPE_CHECKING:
    from pollux.files.store import MetadataStore

jobs = Table(
    "jobs", metadata,
    Column("id", String(40), primary_key=True),  # the file's storage key: one job per file
    Column("attempt", Integer, nullable=False, default=0),  # bumped by every claim: the fencing token
    Column("owner", String(128)),  # the current holder (NULL: free); a claim over a holder = it vanished
    Column("lease_until_us", BigInteger, nullable=False),  # claimable once this has passed
    Column("failures", Integer, nullable=False, default=0),
    Column("last_error", Text),  # JSON google.rpc.Status of the last failure
    Column("create_us", BigInteger, nullable=False),
    Index("ix_jobs_lease", "lease_until_us"),
)

# What `complete` found.
DONE, SUPERSEDED, GONE = "done", "superseded", "gone"


@dataclass(frozen=True)
class Job:
    key: str
    attempt: int
    failures: int  # failures before this attempt (a vanished holder counted)
    last_error: dict | None
    create_us: int


class JobStore:
    """The jobs table on the metadata store's database (SQLite or PostgreSQL), one interface."""

    def __init__(self, store: "MetadataStore"):
        self.engine = store.engine
        self.is_sqlite = store.is_sqlite
        # In one process, SQLite writers queue on the metadata store's lock instead of on busy_timeout.
        self._lock = getattr(store, "_lock", None) or threading.Lock()
        metadata.create_all(self.engine, tables=[jobs])  # until the Alembic revision 0003_jobs runs at start-up

    def _write(self):
        """A write transaction: `BEGIN IMMEDIATE` on SQLite takes the write lock up front."""
        return _Write(self)

    # ---- enqueue ----
    def enqueue(self, key: str) -> None:
        """Add the file's job unless it has one (idempotent: an upload's retry, another node's start-up)."""
        now = now_us()
        stmt = self._insert().values(id=key, attempt=0, failures=0, lease_until_us=now, create_us=now)
        with self._write() as c:
            c.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))

    def adopt_orphans(self) -> int:
        """A job for every PROCESSING file without one (databases older than the jobs table, or a node
        that died between committing an upload and enqueuing it). Returns how many were added."""
        now = now_us()
        orphans = select(files.c.id, literal(0), literal(0), literal(now), files.c.create_us).where(
            files.c.state == State.PROCESSING, ~exists().where(jobs.c.id == files.c.id))
        stmt = self._insert().from_select(["id", "attempt", "failures", "lease_until_us", "create_us"], orphans)
        with self._write() as c:
            return len(c.execute(stmt.on_conflict_do_nothing(index_elements=["id"]).returning(jobs.c.id)).all())

    def expire_dead_holders(self, host: str, alive) -> int:
        """End the leases of holders on `host` whose process is gone (`alive(pid)` false): after a crash and
        restart their jobs are claimable at once instead of when the lease passes. A reused pid only waits."""
        with self.engine.connect() as c:
            held = c.execute(select(jobs.c.id, jobs.c.attempt, jobs.c.owner).where(
                jobs.c.owner.startswith(f"{host}:"), jobs.c.lease_until_us > now_us())).all()
        dead = [row for row in held if not alive(_pid(row.owner))]
        for row in dead:
            with self._write() as c:  # still that attempt's: a live claimant is never touched
                c.execute(update(jobs).where(jobs.c.id == row.id, jobs.c.attempt == row.attempt)
                          .values(lease_until_us=now_us()))
        return len(dead)

    def _insert(self):
        return (sqlite.insert if self.is_sqlite else postgresql.insert)(jobs)

    # ---- claiming ----
    def claim(self, owner: str, lease_seconds: float) -> Job | None:
        """Take the longest-waiting due job for `owner`, or None. One statement: see the module doc."""
        now = now_us()
        due = jobs.c.lease_until_us <= now
        with self.engine.connect() as c:  # idle polls stay read-only: no write lock taken for nothing
            if c.execute(select(jobs.c.id).where(due).limit(1)).first() is None:
                return None
        pick = (select(jobs.c.id).where(due).order_by(jobs.c.lease_until_us).limit(1)
                .with_for_update(skip_locked=True).scalar_subquery())
        stmt = (update(jobs).where(jobs.c.id == pick)
                .values(attempt=jobs.c.attempt + 1, owner=owner, lease_until_us=now + int(lease_seconds * 1e6),
                        failures=jobs.c.failures + case((jobs.c.owner.is_(None), 0), else_=1))
                .returning(jobs.c.id, jobs.c.attempt, jobs.c.failures, jobs.c.last_error, jobs.c.create_us))
        with self._write() as c:
            row = c.execute(stmt).first()
        if row is None:
            return None
        return Job(row.id, row.attempt, row.failures, json.loads(row.last_error) if row.last_error else None,
                   row.create_us)

    def renew(self, job: Job, lease_seconds: float) -> bool:
        """The heartbeat: extend the lease; false if the job is no longer this attempt's."""
        with self._write() as c:
            return c.execute(update(jobs).where(*_fence(job))
                             .values(lease_until_us=now_us() + int(lease_seconds * 1e6))).rowcount > 0

    def holds(self, job: Job) -> bool:
        """Whether this attempt is still the job's latest (checked before touching shared artifacts)."""
        with self.engine.connect() as c:
            return c.execute(select(jobs.c.id).where(*_fence(job))).first() is not None

    # ---- endings ----
    def release(self, job: Job, delay_seconds: float = 0.0) -> bool:
        """Give the job back unfailed (the holder is stopping, or the disk is full): claimable after `delay_seconds`."""
        with self._write() as c:
            return c.execute(update(jobs).where(*_fence(job)).values(
                owner=None, lease_until_us=now_us() + int(delay_seconds * 1e6))).rowcount > 0

    def retry(self, job: Job, error: dict, delay_seconds: float) -> bool:
        """Record a failed attempt; the job is claimable again after the backoff."""
        with self._write() as c:
            return c.execute(update(jobs).where(*_fence(job)).values(
                owner=None, failures=jobs.c.failures + 1, last_error=json.dumps(error),
                lease_until_us=now_us() + int(delay_seconds * 1e6))).rowcount > 0

    def drop(self, job: Job) -> bool:
        """Remove the job without touching its file (the file was deleted or is no longer PROCESSING)."""
        with self._write() as c:
            return c.execute(delete(jobs).where(*_fence(job))).rowcount > 0

    def complete(self, job: Job, **file_values) -> str:
        """End the job and set the file's new state in one transaction, only for the job's latest attempt.

        DONE: the file was updated; SUPERSEDED: another attempt owns the job (nothing changed);
        GONE: the file was deleted meanwhile (the job is removed)."""
        values = dict(file_values, update_us=now_us())
        if values.get("error") is not None:
            values["error"] = json.dumps(values["error"])
        if "meta" in values:
            values["meta"] = json.dumps(values["meta"])
        with self._write() as c:
            if c.execute(delete(jobs).where(*_fence(job))).rowcount == 0:
                return SUPERSEDED
            changed = c.execute(update(files).where(files.c.id == job.key, files.c.state == State.PROCESSING)
                                .values(**values)).rowcount
            return DONE if changed else GONE

    # ---- observation ----
    def busy(self) -> int:
        """Jobs due now or held by a live lease (not those waiting out a backoff)."""
        with self.engine.connect() as c:
            return c.execute(select(func.count()).select_from(jobs).where(
                or_(jobs.c.lease_until_us <= now_us(), jobs.c.owner.is_not(None)))).scalar_one()

    def depth(self) -> tuple[int, int | None]:
        """(jobs waiting or running, the oldest one's enqueue time in µs) — the queue depth and job age."""
        with self.engine.connect() as c:
            n, oldest = c.execute(select(func.count(), func.min(jobs.c.create_us)).select_from(jobs)).one()
        return int(n), oldest

    def get(self, key: str) -> dict | None:
        with self.engine.connect() as c:
            row = c.execute(select(jobs).where(jobs.c.id == key)).mappings().first()
        return dict(row) if row else None


def _pid(owner: str) -> int:
    """The process id in an owner `host:pid/thread` (0 when unreadable: treated as alive by callers' checks)."""
    try:
        return int(owner.split("/", 1)[0].rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def _fence(job: Job):
    return (and_(jobs.c.id == job.key, jobs.c.attempt == job.attempt),)


class _Write:
    """`with store._write() as c:` — one committed write transaction (rolled back on error)."""

    def __init__(self, js: JobStore):
        self.js = js

    def __enter__(self):
        if self.js.is_sqlite:
            self.js._lock.acquire()
        try:
            self.conn = self.js.engine.connect()
            if self.js.is_sqlite:
                self.conn.exec_driver_sql("BEGIN IMMEDIATE")
            return self.conn
        except BaseException:
            self._unlock()
            raise

    def __exit__(self, exc_type, *_exc) -> None:
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            self.conn.close()
            self._unlock()

    def _unlock(self) -> None:
        if self.js.is_sqlite:
            self.js._lock.release()
