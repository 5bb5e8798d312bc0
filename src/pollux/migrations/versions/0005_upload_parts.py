"""upload_parts: acknowledged chunks of resumable uploads kept as objects (S3 blob store)

Revision ID: 0005_upload_parts
Revises: 0004_rate_limits
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_upload_parts"
down_revision = "0004_rate_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_parts",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("chunk_offset", sa.BigInteger, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False),
        sa.Column("create_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_upload_parts_object", "upload_parts", ["object_key"])


def downgrade() -> None:
    op.drop_index("ix_upload_parts_object", table_name="upload_parts")
    op.drop_table("upload_parts")
