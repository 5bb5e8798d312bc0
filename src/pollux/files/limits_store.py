"""Per-project rate limits and the shared counters that enforce them across API nodes.

Limits are rows (project, model): `model` is a Gemini model name, or `*` for "each model" (Gemini's
limits are per project per model, so `*` gives every model its own budget, not one shared one).
Counters are fixed-window buckets keyed (project, model, metric, window start); a request adds to
all its buckets in one `INSERT … ON CONFLICT DO UPDATE … RETURNING` (SQLite ≥ 3.35 and PostgreSQL
alike), so every node sees the same totals and the check costs one round trip. A refused request's
increments are rolled back: a request Gemini refuses does not use up the window either.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, String, Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from pollux.files.store import MetadataStore, metadata, now_us

ANY_MODEL = "*"
METRICS = ("rpm", "tpm", "rpd")

rate_limits = Table(
    "rate_limits", metadata,
    Column("project", String(128), primary_key=True),
    Column("model", String(128), primary_key=True),  # a Gemini model name, or "*": each model
    Column("rpm", BigInteger),  # NULL: no limit on that metric
    Column("tpm", BigInteger),
    Column("rpd", BigInteger),
    Column("update_us", BigInteger, nullable=False),
)

rate_counters = Table(
    "rate_counters", metadata,
    Column("project", String(128), primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("metric", String(8), primary_key=True),  # rpm | tpm | rpd
    Column("window_start", BigInteger, primary_key=True),  # epoch seconds
    Column("value", BigInteger, nullable=False),
    Index("ix_rate_counters_window", "window_start"),
)


@dataclass(frozen=True)
class Limits:
    project: str
    model: str
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None

    def get(self, metric: str) -> int | None:
        return getattr(self, metric)


@dataclass(frozen=True)
class Charge:
    """Add `amount` to one bucket, allowed up to `limit`."""

    metric: str
    window_start: int
    amount: int
    limit: int


class LimitStore:
    def __init__(self, store: MetadataStore):
        self.engine = store.engine
        # Until the Alembic chain owns these tables (0004_rate_limits), make them here: idempotent.
        metadata.create_all(self.engine, tables=[rate_limits, rate_counters])
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        self._insert = dialect.insert

    def set_limits(self, limits: Limits) -> None:
        """Replace the project's limits for the model (a metric left None is unlimited)."""
        row = dict(project=limits.project, model=limits.model, rpm=limits.rpm, tpm=limits.tpm, rpd=limits.rpd,
                   update_us=now_us())
        stmt = self._insert(rate_limits).values(row)
        stmt = stmt.on_conflict_do_update(index_elements=["project", "model"],
                                          set_={k: stmt.excluded[k] for k in ("rpm", "tpm", "rpd", "update_us")})
        with self.engine.begin() as c:
            c.execute(stmt)

    def clear_limits(self, project: str, model: str | None = None) -> int:
        q = delete(rate_limits).where(rate_limits.c.project == project)
        if model is not None:
            q = q.where(rate_limits.c.model == model)
        with self.engine.begin() as c:
            return c.execute(q).rowcount

    def all_limits(self) -> list[Limits]:
        with self.engine.connect() as c:
            rows = c.execute(select(rate_limits).order_by(rate_limits.c.project, rate_limits.c.model)).mappings()
            return [Limits(r["project"], r["model"], r["rpm"], r["tpm"], r["rpd"]) for r in rows]

    def usage(self, project: str, since: int) -> list[tuple[str, str, int, int]]:
        """(model, metric, window_start, value) of the project's buckets starting at or after `since`."""
        c_ = rate_counters.c
        with self.engine.connect() as c:
            rows = c.execute(select(c_.model, c_.metric, c_.window_start, c_.value)
                             .where(c_.project == project, c_.window_start >= since)
                             .order_by(c_.model, c_.metric, c_.window_start))
            return [tuple(r) for r in rows]

    def consume(self, project: str, model: str, charges: list[Charge]) -> dict[str, int]:
        """Add every charge atomically; if any bucket would pass its limit, add nothing and return
        {metric: total it would have reached} for the buckets over their limit (else {})."""
        if not charges:
            return {}
        stmt = self._insert(rate_counters).values([
            dict(project=project, model=model, metric=ch.metric, window_start=ch.window_start, value=ch.amount)
            for ch in charges])
        stmt = stmt.on_conflict_do_update(index_elements=["project", "model", "metric", "window_start"],
                                          set_={"value": rate_counters.c.value + stmt.excluded.value})
        stmt = stmt.returning(rate_counters.c.metric, rate_counters.c.value)
        limit_of = {ch.metric: ch.limit for ch in charges}
        with self.engine.connect() as c:
            tx = c.begin()
            totals = dict(c.execute(stmt).all())
            over = {m: v for m, v in totals.items() if v > limit_of[m]}
            if over:
                tx.rollback()
            else:
                tx.commit()
        return over

    def sweep(self, before: int) -> int:
        """Drop buckets whose window started before `before` (epoch seconds): they can count no more."""
        with self.engine.begin() as c:
            return c.execute(delete(rate_counters).where(rate_counters.c.window_start < before)).rowcount
