"""Schema migrations (Alembic), shipped inside the package and configured here: no alembic.ini.

Start-up and `pollux migrate` call `upgrade(engine)`, for SQLite and PostgreSQL alike. A database made
before migrations existed (its tables, no `alembic_version`) is stamped `0001_initial` first; the later
revisions check what is already there, so it reaches head without losing a row. On PostgreSQL the whole
run holds an advisory lock: nodes starting together against one empty database migrate one at a time,
and the later ones find it at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

MIGRATION_LOCK = 0x706F6C6C75780001  # "pollux" + 1: the advisory lock key all nodes migrate under
FIRST = "0001_initial"


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.attributes["connection"] = connection
    return cfg


def target_metadata():
    """The live `metadata` with every table module loaded (what the schema must equal at head)."""
    from pollux.files import cache_store, interaction_store, jobs, limits_store, upload_parts  # noqa: F401  (tables)
    from pollux.files.store import metadata

    return metadata


def head() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the database to the newest revision; the revision it is at afterwards."""
    with engine.connect() as c:
        postgres = c.dialect.name == "postgresql"
        if postgres:
            c.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _signed(MIGRATION_LOCK)})
            c.commit()
        try:
            legacy = current(c) is None and inspect(c).has_table("files")
            c.commit()  # Alembic runs its own transactions on this connection
            if legacy:  # made by a version before migrations: it has 0001's tables
                command.stamp(_config(c), FIRST)
            command.upgrade(_config(c), "head")
            c.commit()
            at = current(c)
            c.commit()
            return at
        finally:
            if postgres:
                c.rollback()
                c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _signed(MIGRATION_LOCK)})
                c.commit()


def _signed(key: int) -> int:
    return key - (1 << 64) if key >= 1 << 63 else key
