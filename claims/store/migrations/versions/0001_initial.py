"""Predictions, feedback and its labels, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("prediction_id", sa.String(length=128), nullable=False),
        sa.Column("claim_id", sa.String(length=128), nullable=False),
        sa.Column("claim", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_predictions")),
    )
    op.create_index(op.f("ix_predictions_claim_id"), "predictions", ["claim_id"])
    op.create_index(op.f("ix_predictions_created_at"), "predictions", ["created_at"])

    op.create_table(
        "feedback",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("feedback_id", sa.String(length=128), nullable=False),
        sa.Column("prediction_id", sa.String(length=128), nullable=True),
        sa.Column("claim_id", sa.String(length=128), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("adjuster_id", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.prediction_id"],
            name=op.f("fk_feedback_prediction_id_predictions"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_feedback")),
        sa.UniqueConstraint("feedback_id", name=op.f("uq_feedback_feedback_id")),
    )
    op.create_index(op.f("ix_feedback_adjuster_id"), "feedback", ["adjuster_id"])
    op.create_index(op.f("ix_feedback_claim_id"), "feedback", ["claim_id"])
    op.create_index(op.f("ix_feedback_received_at"), "feedback", ["received_at"])

    op.create_table(
        "feedback_labels",
        sa.Column("feedback_id", sa.String(length=128), nullable=False),
        sa.Column("task", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["feedback.feedback_id"],
            name=op.f("fk_feedback_labels_feedback_id_feedback"),
        ),
        sa.PrimaryKeyConstraint("feedback_id", "task", name=op.f("pk_feedback_labels")),
    )
    op.create_index(op.f("ix_feedback_labels_task"), "feedback_labels", ["task"])

    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_created_at"), "jobs", ["created_at"])
    op.create_index(op.f("ix_jobs_kind"), "jobs", ["kind"])


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("feedback_labels")
    op.drop_table("feedback")
    op.drop_table("predictions")
