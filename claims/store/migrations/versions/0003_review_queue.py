"""The review queue: answers that need a person, and who holds each one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BACKFILL_CHUNK = 1000


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("prediction_id", sa.String(length=128), nullable=False),
        sa.Column("claim_id", sa.String(length=128), nullable=False),
        sa.Column("route", sa.String(length=128), nullable=False),
        sa.Column("line_of_business", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.prediction_id"],
            name=op.f("fk_review_items_prediction_id_predictions"),
        ),
        sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_review_items")),
    )
    for column in ("claim_id", "route", "line_of_business", "created_at"):
        op.create_index(op.f(f"ix_review_items_{column}"), "review_items", [column])
    op.create_table(
        "review_tasks",
        sa.Column("prediction_id", sa.String(length=128), nullable=False),
        sa.Column("task", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["review_items.prediction_id"],
            name=op.f("fk_review_tasks_prediction_id_review_items"),
        ),
        sa.PrimaryKeyConstraint("prediction_id", "task", name=op.f("pk_review_tasks")),
    )
    op.create_index(op.f("ix_review_tasks_task"), "review_tasks", ["task"])
    _backfill()


def _backfill() -> None:
    """Answers recorded before this revision that need review join the queue, as new ones do.
    Read as plain JSON: the migration must not depend on today's Pydantic models."""
    connection = op.get_bind()
    predictions = sa.table(
        "predictions",
        sa.column("prediction_id", sa.String),
        sa.column("claim_id", sa.String),
        sa.column("claim", sa.Text),
        sa.column("result", sa.Text),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    items = sa.table(
        "review_items",
        sa.column("prediction_id", sa.String),
        sa.column("claim_id", sa.String),
        sa.column("route", sa.String),
        sa.column("line_of_business", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    tasks = sa.table("review_tasks", sa.column("prediction_id", sa.String), sa.column("task"))
    rows = connection.execute(sa.select(predictions).order_by(predictions.c.prediction_id))
    while chunk := rows.fetchmany(BACKFILL_CHUNK):
        new_items, new_tasks = [], []
        for row in chunk:
            decision = json.loads(row.result)["decision"]
            if not decision["needs_review"]:
                continue
            new_items.append(
                {
                    "prediction_id": row.prediction_id,
                    "claim_id": row.claim_id,
                    "route": decision["route"],
                    "line_of_business": json.loads(row.claim).get("line_of_business"),
                    "created_at": row.created_at,  # as the prediction's, on either backend
                }
            )
            new_tasks += [
                {"prediction_id": row.prediction_id, "task": task}
                for task in _review_tasks(decision["review_reasons"])
            ]
        if new_items:
            connection.execute(items.insert(), new_items)
        if new_tasks:
            connection.execute(tasks.insert(), new_tasks)


def _review_tasks(reasons: list[dict]) -> list[str]:
    """Before this revision a low confidence named its task only in its detail: `task: ...`."""
    named = [
        reason.get("task") or reason["detail"].split(":", 1)[0]
        for reason in reasons
        if reason["code"] == "low_confidence"
    ]
    return list(dict.fromkeys(named))


def downgrade() -> None:
    op.drop_table("review_tasks")
    op.drop_table("review_items")
