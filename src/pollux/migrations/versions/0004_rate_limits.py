"""Per-project rate limits and their shared counters (pollux.files.limits_store).

Revision ID: 0004_rate_limits
Revises: 0003_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_rate_limits"
down_revision = "0003_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("project", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("rpm", sa.BigInteger),
        sa.Column("tpm", sa.BigInteger),
        sa.Column("rpd", sa.BigInteger),
        sa.Column("update_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rate_counters",
        sa.Column("project", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("window_start", sa.BigInteger, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_rate_counters_window", "rate_counters", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_rate_counters_window", table_name="rate_counters")
    op.drop_table("rate_counters")
    op.drop_table("rate_limits")
