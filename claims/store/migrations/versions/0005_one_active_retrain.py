"""At most one retrain queued or running, enforced by a partial unique index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ONE_ACTIVE = sa.text("kind = 'retrain' AND state IN ('queued', 'running')")


def upgrade() -> None:
    # A store from before may hold several active retrains (the check ran per process): all
    # but the newest are marked failed, or the index could not be made.
    op.execute(
        "UPDATE jobs SET state = 'failed', error = 'superseded by a later retrain' "
        "WHERE kind = 'retrain' AND state IN ('queued', 'running') AND job_id NOT IN ("
        "SELECT job_id FROM (SELECT job_id FROM jobs WHERE kind = 'retrain' "
        "AND state IN ('queued', 'running') ORDER BY created_at DESC LIMIT 1) AS newest)"
    )
    op.create_index(
        "uq_jobs_one_active_retrain",
        "jobs",
        ["kind"],
        unique=True,
        sqlite_where=ONE_ACTIVE,
        postgresql_where=ONE_ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_one_active_retrain", table_name="jobs")
