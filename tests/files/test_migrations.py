"""Schema migrations (pollux.migrations): from an empty database, from databases made before
migrations existed (frozen copies of their DDL, with rows), the result equal to the models, two nodes
migrating one empty PostgreSQL database at once, and `pollux migrate`."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from pollux import migrations
from pollux.files.store import MetadataStore

HEAD = "0005_upload_parts"  # the newest revision: bump it with each new one (a test then checks the chain)

# The schema as first shipped (git ef128f4): no per-project names, no reservations, no tombstones.
FIRST_DDL = """
CREATE TABLE files (id VARCHAR(40) NOT NULL, project VARCHAR(128) NOT NULL, display_name VARCHAR(512) NOT NULL,
  mime_type VARCHAR(128) NOT NULL, size_bytes BIGINT NOT NULL, sha256 VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL,
  error TEXT, video_duration FLOAT, source VARCHAR(16) NOT NULL, meta TEXT NOT NULL, create_us BIGINT NOT NULL,
  update_us BIGINT NOT NULL, expire_us BIGINT NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_files_expire ON files (expire_us);
CREATE INDEX ix_files_project_create ON files (project, create_us);
CREATE TABLE upload_sessions (id VARCHAR(64) NOT NULL, project VARCHAR(128) NOT NULL, file_id VARCHAR(40) NOT NULL,
  display_name VARCHAR(512) NOT NULL, mime_type VARCHAR(128) NOT NULL, declared_size BIGINT, received BIGINT NOT NULL,
  protocol VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL, final_file_id VARCHAR(40), create_us BIGINT NOT NULL,
  expire_us BIGINT NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_sessions_project_status ON upload_sessions (project, status);
CREATE TABLE api_keys (key_hash VARCHAR(64) NOT NULL, prefix VARCHAR(16) NOT NULL, project VARCHAR(128) NOT NULL,
  create_us BIGINT NOT NULL, revoked BOOLEAN NOT NULL, PRIMARY KEY (key_hash));
CREATE TABLE schema_version (version INTEGER NOT NULL, PRIMARY KEY (version));
"""

# What main's create_all + hand-written ALTERs made just before migrations (the tables FIRST_DDL lacks,
# and the columns added to files and upload_sessions; here created at once, as create_all did).
ROUND2_DDL = """
CREATE TABLE cached_contents (id VARCHAR(40) NOT NULL, project VARCHAR(128) NOT NULL, model VARCHAR(256) NOT NULL,
  display_name VARCHAR(512) NOT NULL, request_json TEXT NOT NULL, total_tokens INTEGER NOT NULL,
  create_us BIGINT NOT NULL, update_us BIGINT NOT NULL, expire_us BIGINT NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_cached_contents_expire ON cached_contents (expire_us);
CREATE INDEX ix_cached_contents_project_create ON cached_contents (project, create_us);
CREATE TABLE files (id VARCHAR(40) NOT NULL, name VARCHAR(40), project VARCHAR(128) NOT NULL,
  display_name VARCHAR(512) NOT NULL, mime_type VARCHAR(128) NOT NULL, size_bytes BIGINT NOT NULL,
  sha256 VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, error TEXT, video_duration FLOAT,
  source VARCHAR(16) NOT NULL, meta TEXT NOT NULL, create_us BIGINT NOT NULL, update_us BIGINT NOT NULL,
  expire_us BIGINT NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_files_expire ON files (expire_us);
CREATE INDEX ix_files_project_create ON files (project, create_us);
CREATE UNIQUE INDEX ix_files_project_name ON files (project, name);
CREATE TABLE interactions (id VARCHAR(64) NOT NULL, project VARCHAR(128) NOT NULL, previous_id VARCHAR(64),
  body TEXT NOT NULL, create_us BIGINT NOT NULL, expire_us BIGINT NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_interactions_project_id ON interactions (project, id);
CREATE INDEX ix_interactions_expire ON interactions (expire_us);
CREATE TABLE schema_version (version INTEGER NOT NULL, PRIMARY KEY (version));
CREATE TABLE tombstones (id VARCHAR(40) NOT NULL, deleted_us BIGINT NOT NULL, PRIMARY KEY (id));
CREATE TABLE upload_sessions (id VARCHAR(64) NOT NULL, project VARCHAR(128) NOT NULL, file_id VARCHAR(40) NOT NULL,
  display_name VARCHAR(512) NOT NULL, mime_type VARCHAR(128) NOT NULL, declared_size BIGINT, received BIGINT NOT NULL,
  protocol VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL, final_file_id VARCHAR(40), reserved BIGINT NOT NULL,
  commit_json TEXT, create_us BIGINT NOT NULL, expire_us BIGINT NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_sessions_project_status ON upload_sessions (project, status);
CREATE TABLE api_keys (key_hash VARCHAR(64) NOT NULL, prefix VARCHAR(16) NOT NULL, project VARCHAR(128) NOT NULL,
  create_us BIGINT NOT NULL, revoked BOOLEAN NOT NULL, PRIMARY KEY (key_hash));
"""

FILE_ROW = ("INSERT INTO files (id, project, display_name, mime_type, size_bytes, sha256, state, source, meta, "
            "create_us, update_us, expire_us) VALUES ('old1', 'demo', 'cat', 'image/png', 7, :sha, 'ACTIVE', "
            "'UPLOADED', '{}', 1, 2, 9000000000000000)")
SESSION_ROW = ("INSERT INTO upload_sessions (id, project, file_id, display_name, mime_type, received, protocol, "
               "status, create_us, expire_us) VALUES ('sess1', 'demo', 'up1', '', 'video/mp4', 5, 'resumable', "
               "'active', 1, 9000000000000000)")
# Rows as main wrote them: a storage key apart from the name (another project held it), a reservation.
FILE_ROW2 = ("INSERT INTO files (id, name, project, display_name, mime_type, size_bytes, sha256, state, source, meta, "
             "create_us, update_us, expire_us) VALUES ('k0123', 'old1', 'demo', 'cat', 'image/png', 7, :sha, "
             "'ACTIVE', 'UPLOADED', '{}', 1, 2, 9000000000000000)")
SESSION_ROW2 = ("INSERT INTO upload_sessions (id, project, file_id, display_name, mime_type, received, reserved, "
                "protocol, status, create_us, expire_us) VALUES ('sess1', 'demo', 'up1', '', 'video/mp4', 5, 8, "
                "'resumable', 'active', 1, 9000000000000000)")
TOMBSTONE_ROW = "INSERT INTO tombstones (id, deleted_us) VALUES ('gone1', 3)"
SHAPES = {  # name: (DDL, rows, the file's storage key, the session's reservation, tombstones)
    "first-release": (FIRST_DDL, [FILE_ROW, SESSION_ROW], "old1", 5, set()),
    "before-migrations": (ROUND2_DDL, [FILE_ROW2, SESSION_ROW2, TOMBSTONE_ROW], "k0123", 8, {"gone1"}),
}
KEY_ROW = ("INSERT INTO api_keys (key_hash, prefix, project, create_us, revoked) "
           "VALUES (:h, 'px-abcdefg', 'demo', 1, false)")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pollux.db'}"
    return request.getfixturevalue("postgres_url")


def _differences(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}),
                                    migrations.target_metadata())
    finally:
        engine.dispose()


def _build(url: str, ddl: str, *rows: tuple[str, dict]) -> None:
    engine = create_engine(url)
    with engine.begin() as c:
        for statement in filter(str.strip, ddl.split(";")):
            c.execute(text(statement))
        for sql, params in rows:
            c.execute(text(sql), params)
    engine.dispose()


def _open(url: str) -> MetadataStore:
    store = MetadataStore(url)
    assert store.revision == HEAD == migrations.head()
    return store


def test_an_empty_database_migrates_to_the_models(db_url):
    _open(db_url).close()
    assert _differences(db_url) == []


@pytest.mark.parametrize("shape", SHAPES)
def test_a_database_made_before_migrations_keeps_every_row(db_url, shape):
    from pollux.files.store import hash_key

    ddl, rows, key, reserved, tombstones = SHAPES[shape]
    _build(db_url, ddl, *[(sql, {"sha": "a" * 64}) for sql in rows], (KEY_ROW, {"h": hash_key("px-old")}))
    store = _open(db_url)
    try:
        rec = store.get_file("demo", "old1")  # found by its name (the first release had none: it is the id)
        assert rec is not None and rec.key == key and rec.size_bytes == 7 and rec.sha256 == "a" * 64
        s = store.get_session("sess1")
        assert s.received == 5 and s.reserved == reserved  # an old session holds at least what it received
        assert store.project_usage("demo") == 7 + reserved
        assert store.project_for_key("px-old") == "demo"
        assert store.tombstoned() == tombstones
    finally:
        store.close()
    assert _differences(db_url) == []
    _open(db_url).close()  # at head: opening again changes nothing


def test_two_nodes_migrate_one_empty_database_at_once(postgres_url):
    barrier = threading.Barrier(4)
    revisions, errors = [], []

    def node():
        barrier.wait()
        try:
            store = MetadataStore(postgres_url)
            revisions.append(store.revision)
            store.close()
        except Exception as e:  # a lost race would be a duplicate-table or duplicate-version error
            errors.append(e)

    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and revisions == [HEAD] * 4
    engine = create_engine(postgres_url)
    with engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
    engine.dispose()
    assert _differences(postgres_url) == []


def test_pollux_migrate_prints_the_revision(db_url, tmp_path):
    from typer.testing import CliRunner

    from pollux.cli import app

    result = CliRunner().invoke(app, ["migrate", "--database-url", db_url, "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert f"at revision {HEAD}" in result.output
    assert "@" not in result.output  # no credentials echoed
    assert _differences(db_url) == []


def test_pollux_migrate_on_the_data_dir(tmp_path):
    from typer.testing import CliRunner

    from pollux.cli import app

    result = CliRunner().invoke(app, ["migrate", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "pollux.db").exists() and HEAD in result.output


def test_an_unreachable_database_is_a_clean_refusal(tmp_path):
    from typer.testing import CliRunner

    from pollux.cli import app
    from tests.fixtures.server import free_port

    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    result = CliRunner().invoke(app, ["migrate", "--database-url", url])
    assert result.exit_code == 2 and "cannot be opened" in result.output


def test_a_malformed_database_url_is_a_clean_refusal():
    from typer.testing import CliRunner

    from pollux.cli import app

    result = CliRunner().invoke(app, ["migrate", "--database-url", "no-such-scheme"])
    assert result.exit_code == 2 and "is not valid" in result.output
