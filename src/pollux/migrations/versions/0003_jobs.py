"""Media jobs: one row per PROCESSING file, claimed with a lease and a fencing attempt (files/jobs.py).

Existing PROCESSING files get their jobs at start-up (`JobStore.adopt_orphans`), not here: every node
runs that anyway, for files whose node died between committing an upload and queuing its job.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_jobs"
down_revision = "0002_round2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(128)),
        sa.Column("lease_until_us", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("create_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_jobs_lease", "jobs", ["lease_until_us"])


def downgrade() -> None:
    op.drop_index("ix_jobs_lease", table_name="jobs")
    op.drop_table("jobs")
