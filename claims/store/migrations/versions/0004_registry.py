"""The model registry's records: versions with their lineage, and the champion's generations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("parent_version", sa.String(length=128), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("lineage", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_model_versions")),
    )
    op.create_index(op.f("ix_model_versions_registered_at"), "model_versions", ["registered_at"])
    op.create_index(op.f("ix_model_versions_parent_version"), "model_versions", ["parent_version"])
    op.create_table(
        "champion_events",
        sa.Column("generation", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("previous_version", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("previous", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version"],
            ["model_versions.version"],
            name=op.f("fk_champion_events_version_model_versions"),
        ),
        sa.PrimaryKeyConstraint("generation", name=op.f("pk_champion_events")),
    )


def downgrade() -> None:
    op.drop_table("champion_events")
    op.drop_index(op.f("ix_model_versions_parent_version"), table_name="model_versions")
    op.drop_index(op.f("ix_model_versions_registered_at"), table_name="model_versions")
    op.drop_table("model_versions")
