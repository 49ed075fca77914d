"""A job's owner (the API key that created it) and its command, in the store with the rest of the
job instead of in files beside its log, so that any replica can check one and start the other.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs from before have neither: only an admin reads them, as when their owner was not
    # recorded, and one whose process dies after the upgrade is failed rather than resumed.
    op.add_column("jobs", sa.Column("owner_key", sa.String(length=32), nullable=True))
    op.add_column("jobs", sa.Column("command", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("command")
        batch.drop_column("owner_key")
