"""Everything added after the first release: per-project file names, quota reservations and commit
intents on sessions, tombstones, cached_contents, interactions.

Databases made before migrations existed were grown by hand-written `ALTER TABLE`s one column at a
time, so each step here checks what is already there: a database stamped `0001_initial` at any of
those intermediate shapes reaches the same schema without losing a row.

Revision ID: 0002_round2
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_round2"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    tables = set(insp.get_table_names())
    have = {t: {c["name"] for c in insp.get_columns(t)} for t in ("files", "upload_sessions")}

    if "name" not in have["files"]:
        op.add_column("files", sa.Column("name", sa.String(40)))
    if "reserved" not in have["upload_sessions"]:
        op.add_column("upload_sessions", sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"))
    if "commit_json" not in have["upload_sessions"]:
        op.add_column("upload_sessions", sa.Column("commit_json", sa.Text))

    files = sa.table("files", sa.column("id"), sa.column("name"))
    sessions = sa.table("upload_sessions", sa.column("reserved"), sa.column("received"))
    op.execute(files.update().where(files.c.name.is_(None)).values(name=files.c.id))
    # A session older than reservations holds at least the bytes it already received.
    op.execute(sessions.update().where(sessions.c.reserved < sessions.c.received).values(reserved=sessions.c.received))
    if "ix_files_project_name" not in {ix["name"] for ix in insp.get_indexes("files")}:
        op.create_index("ix_files_project_name", "files", ["project", "name"], unique=True)

    if "tombstones" not in tables:
        op.create_table(
            "tombstones",
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("deleted_us", sa.BigInteger, nullable=False),
        )
    if "cached_contents" not in tables:
        op.create_table(
            "cached_contents",
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("project", sa.String(128), nullable=False),
            sa.Column("model", sa.String(256), nullable=False),
            sa.Column("display_name", sa.String(512), nullable=False),
            sa.Column("request_json", sa.Text, nullable=False),
            sa.Column("total_tokens", sa.Integer, nullable=False),
            sa.Column("create_us", sa.BigInteger, nullable=False),
            sa.Column("update_us", sa.BigInteger, nullable=False),
            sa.Column("expire_us", sa.BigInteger, nullable=False),
        )
        op.create_index("ix_cached_contents_project_create", "cached_contents", ["project", "create_us"])
        op.create_index("ix_cached_contents_expire", "cached_contents", ["expire_us"])
    if "interactions" not in tables:
        op.create_table(
            "interactions",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("project", sa.String(128), nullable=False),
            sa.Column("previous_id", sa.String(64)),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("create_us", sa.BigInteger, nullable=False),
            sa.Column("expire_us", sa.BigInteger, nullable=False),
        )
        op.create_index("ix_interactions_project_id", "interactions", ["project", "id"])
        op.create_index("ix_interactions_expire", "interactions", ["expire_us"])


def downgrade() -> None:
    for table in ("interactions", "cached_contents", "tombstones"):
        op.drop_table(table)
    op.drop_index("ix_files_project_name", table_name="files")
    with op.batch_alter_table("upload_sessions") as batch:
        batch.drop_column("commit_json")
        batch.drop_column("reserved")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("name")
