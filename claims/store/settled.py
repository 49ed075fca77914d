"""Settled claims: those whose outcome adjusters have confirmed, with the labels they settled
on. The console compares a claim with the most recently settled ones."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from claims.store.orm import Feedback, FeedbackLabel, Prediction
from schemas.claim import Claim


@dataclass(frozen=True)
class SettledClaim:
    claim: Claim  # as it was last predicted
    labels: dict[str, str]  # task -> label: per task, the newest confirmed label
    settled_at: datetime  # when the newest confirmed feedback arrived
    prediction_id: str | None  # the answer the newest confirmed feedback named, if any


class SettledQueries:
    """Mixed into `Store`, whose sessions and `latest_claims` these use."""

    _reading: sessionmaker[Session]

    if TYPE_CHECKING:

        def latest_claims(self, claim_ids: Iterable[str]) -> dict[str, Claim]: ...

    def settled_claims(self, limit: int, leave_out: str | None = None) -> list[SettledClaim]:
        """The `limit` claims settled most recently, newest first, whose text is still stored
        (retention deletes it with the predictions); `leave_out`: a claim id not to list."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        settled_at = func.max(Feedback.received_at).label("settled_at")
        predicted = select(Prediction.prediction_id).where(Prediction.claim_id == Feedback.claim_id)
        recent = (
            select(Feedback.claim_id, settled_at)
            .where(Feedback.confirmed.is_(True), predicted.exists())
            .group_by(Feedback.claim_id)
            .order_by(settled_at.desc(), Feedback.claim_id)
            .limit(limit)
        )
        if leave_out is not None:
            recent = recent.where(Feedback.claim_id != leave_out)
        window = recent.subquery()
        settled_labels = (
            select(
                Feedback.claim_id, Feedback.prediction_id, FeedbackLabel.task, FeedbackLabel.label
            )
            .join(FeedbackLabel, FeedbackLabel.feedback_id == Feedback.feedback_id)
            .join(window, window.c.claim_id == Feedback.claim_id)
            .where(Feedback.confirmed.is_(True))
            .order_by(Feedback.received_at, Feedback.seq)  # so that the newest wins
        )
        labels: dict[str, dict[str, str]] = {}
        named: dict[str, str | None] = {}
        with self._reading() as session:
            when = dict(session.execute(recent).tuples().all())
            ids = list(when)
            for claim_id, prediction_id, task, label in session.execute(settled_labels):
                labels.setdefault(claim_id, {})[task] = label
                named[claim_id] = prediction_id or named.get(claim_id)
        claims = self.latest_claims(ids)
        return [
            SettledClaim(claims[claim_id], labels[claim_id], when[claim_id], named[claim_id])
            for claim_id in ids
            if claim_id in claims  # retention may have deleted its text since
        ]
