"""The schema as first shipped: files, upload_sessions, api_keys, schema_version.

Frozen DDL (never the live `metadata`): a migration must describe the schema of its day.

Revision ID: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(512), nullable=False),
        sa.Column("mime_type", sa.String(128), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("video_duration", sa.Float),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("create_us", sa.BigInteger, nullable=False),
        sa.Column("update_us", sa.BigInteger, nullable=False),
        sa.Column("expire_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_files_project_create", "files", ["project", "create_us"])
    op.create_index("ix_files_expire", "files", ["expire_us"])
    op.create_table(
        "upload_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("display_name", sa.String(512), nullable=False),
        sa.Column("mime_type", sa.String(128), nullable=False),
        sa.Column("declared_size", sa.BigInteger),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("final_file_id", sa.String(40)),
        sa.Column("create_us", sa.BigInteger, nullable=False),
        sa.Column("expire_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_sessions_project_status", "upload_sessions", ["project", "status"])
    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("create_us", sa.BigInteger, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table("schema_version", sa.Column("version", sa.Integer, primary_key=True))


def downgrade() -> None:
    for table in ("schema_version", "api_keys", "upload_sessions", "files"):
        op.drop_table(table)
