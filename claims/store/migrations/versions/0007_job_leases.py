"""Leases on jobs: the process doing a job's work holds it until it lapses.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

ACTIVE = sa.text("state IN ('queued', 'running')")

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs active at the upgrade hold no lease: the first replica to look takes them over.
    op.add_column("jobs", sa.Column("lease_owner", sa.String(length=128), nullable=True))
    op.add_column("jobs", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "jobs", sa.Column("takeovers", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    # every replica looks for lapsed leases every few seconds: among the active jobs only
    op.create_index(
        "ix_jobs_active_lease",
        "jobs",
        ["lease_expires_at"],
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_active_lease", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("takeovers")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
