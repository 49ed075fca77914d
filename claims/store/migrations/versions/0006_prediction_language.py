"""The language each answer read its claim as, and whether it was given or detected.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: the answers recorded before were not read for their language.
    op.add_column("predictions", sa.Column("language", sa.String(length=35), nullable=True))
    op.add_column("predictions", sa.Column("language_source", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("language_source")
        batch.drop_column("language")
