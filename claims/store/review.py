"""The store's review queue: answers that need a person until their claim has confirmed
feedback, and holds that keep two adjusters off the same claim."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session, sessionmaker

from claims.store.orm import Feedback, Prediction, ReviewItem, ReviewTask
from schemas.feedback import PredictionRecord
from schemas.review import QueueCounts, ReviewHold, ReviewQueueItem, ReviewState
from schemas.triage import TriageResult

# The queue page's age bands: (name, upper bound); the last has none.
AGE_BANDS: tuple[tuple[str, timedelta | None], ...] = (
    ("under 1 hour", timedelta(hours=1)),
    ("1 to 24 hours", timedelta(hours=24)),
    ("1 to 3 days", timedelta(days=3)),
    ("over 3 days", None),
)


class ReviewHeld(RuntimeError):
    """Another adjuster holds the item."""

    def __init__(self, hold: ReviewHold) -> None:
        super().__init__(f"held by {hold.adjuster_id} until {hold.until.isoformat()}")
        self.hold = hold


def review_rows(records: Sequence[PredictionRecord]) -> list[ReviewItem]:
    """The queue's rows for the answers among `records` that need review."""
    return [
        ReviewItem(
            prediction_id=record.prediction_id,
            claim_id=record.claim.claim_id,
            route=record.result.decision.route,
            line_of_business=record.claim.line_of_business,
            created_at=record.created_at,
            tasks=[ReviewTask(task=task) for task in _review_tasks(record.result)],
        )
        for record in records
        if record.result.decision.needs_review
    ]


def _review_tasks(result: TriageResult) -> list[str]:
    reasons = result.decision.review_reasons
    return list(dict.fromkeys(reason.task for reason in reasons if reason.task is not None))


def _resolved() -> ColumnElement[bool]:
    """The item's claim has confirmed feedback given since the answer."""
    return (
        select(Feedback.seq)
        .where(
            Feedback.claim_id == ReviewItem.claim_id,
            Feedback.confirmed.is_(True),
            Feedback.received_at >= ReviewItem.created_at,
        )
        .exists()
    )


def _held_by_another(adjuster_id: str, now: datetime) -> ColumnElement[bool]:
    return and_(
        ReviewItem.claimed_by.is_not(None),
        ReviewItem.claimed_by != adjuster_id,
        ReviewItem.claimed_until > now,
    )


def _not_held_by_another(
    session: Session, prediction_id: str, adjuster_id: str, now: datetime
) -> ReviewItem:
    """The item, locked for the change; LookupError when it is not on the queue, ReviewHeld
    when another adjuster's hold on it still runs."""
    row = session.get(ReviewItem, prediction_id, with_for_update=True)
    if row is None:
        raise LookupError(f"no answer {prediction_id!r} on the review queue")
    held = _hold(row, now)
    if held is not None and held.adjuster_id != adjuster_id:
        raise ReviewHeld(held)
    return row


def _hold(row: ReviewItem, now: datetime) -> ReviewHold | None:
    if row.claimed_by is None or row.claimed_until is None or row.claimed_until <= now:
        return None
    return ReviewHold(adjuster_id=row.claimed_by, until=row.claimed_until)


class ReviewQueries:
    """Mixed into `Store`, whose sessions these are."""

    _reading: sessionmaker[Session]
    _writing: sessionmaker[Session]

    def review_queue(
        self,
        *,
        route: str | None = None,
        task: str | None = None,
        line_of_business: str | None = None,
        min_age: timedelta | None = None,
        max_age: timedelta | None = None,
        available_to: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[ReviewQueueItem], int]:
        """(one page, oldest first; how many match in all). `available_to`: leave out what
        other adjusters hold."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit ({limit}) and offset ({offset}) must not be negative")
        now = datetime.now(UTC)
        conditions = [~_resolved()]
        if route is not None:
            conditions.append(ReviewItem.route == route)
        if task is not None:
            conditions.append(ReviewItem.tasks.any(ReviewTask.task == task))
        if line_of_business is not None:
            conditions.append(ReviewItem.line_of_business == line_of_business)
        if min_age is not None:
            conditions.append(ReviewItem.created_at <= now - min_age)
        if max_age is not None:
            conditions.append(ReviewItem.created_at >= now - max_age)
        if available_to is not None:
            conditions.append(~_held_by_another(available_to, now))
        page = (
            select(ReviewItem, Prediction.result)
            .join(Prediction, Prediction.prediction_id == ReviewItem.prediction_id)
            .where(*conditions)
            .order_by(ReviewItem.created_at, ReviewItem.prediction_id)
            .limit(limit)
            .offset(offset)
        )
        counted = select(func.count()).select_from(ReviewItem).where(*conditions)
        with self._reading() as session:
            total = session.scalar(counted) or 0
            items = [
                _queue_item(row, TriageResult.model_validate_json(result), now)
                for row, result in session.execute(page)
            ]
        return items, total

    def review_counts(self) -> QueueCounts:
        """Open items by route and by age band."""
        now = datetime.now(UTC)
        bounded = [(name, bound) for name, bound in AGE_BANDS if bound is not None]
        band = case(
            *[(ReviewItem.created_at > now - bound, name) for name, bound in bounded],
            else_=AGE_BANDS[-1][0],
        )
        query = (
            select(ReviewItem.route, band.label("band"), func.count())
            .where(~_resolved())
            .group_by(ReviewItem.route, band)
        )
        by_route: dict[str, int] = {}
        by_age = {name: 0 for name, _ in AGE_BANDS}
        with self._reading() as session:
            for route, name, count in session.execute(query):
                by_route[route] = by_route.get(route, 0) + count
                by_age[name] += count
        return QueueCounts(
            by_route=dict(sorted(by_route.items())), by_age=by_age, total=sum(by_route.values())
        )

    def hold_review(self, prediction_id: str, adjuster_id: str, minutes: int) -> ReviewHold:
        """Holds the item for `adjuster_id` (again, for a holder extending its hold).
        LookupError: no such item; ReviewHeld: another adjuster holds it."""
        now = datetime.now(UTC)
        with self._writing.begin() as session:
            row = _not_held_by_another(session, prediction_id, adjuster_id, now)
            row.claimed_by, row.claimed_until = adjuster_id, now + timedelta(minutes=minutes)
            return ReviewHold(adjuster_id=adjuster_id, until=row.claimed_until)

    def release_review(self, prediction_id: str, adjuster_id: str) -> None:
        """Gives the item back to the queue; only its holder may, before the hold runs out."""
        with self._writing.begin() as session:
            row = _not_held_by_another(session, prediction_id, adjuster_id, datetime.now(UTC))
            row.claimed_by = row.claimed_until = None

    def review_state(self, prediction_id: str) -> ReviewState:
        now = datetime.now(UTC)
        with self._reading() as session:
            row = session.get(ReviewItem, prediction_id)
            if row is None:
                return ReviewState(on_queue=False, needs_review=False, held_by=None)
            resolved = session.scalar(
                select(_resolved()).where(ReviewItem.prediction_id == prediction_id)
            )
            return ReviewState(on_queue=not resolved, needs_review=True, held_by=_hold(row, now))


def _queue_item(row: ReviewItem, result: TriageResult, now: datetime) -> ReviewQueueItem:
    return ReviewQueueItem(
        prediction_id=row.prediction_id,
        claim_id=row.claim_id,
        line_of_business=row.line_of_business,
        route=row.route,
        review_reasons=result.decision.review_reasons,
        tasks=[task.task for task in row.tasks],
        model_version=result.served_by.model_version,
        created_at=row.created_at,
        held_by=_hold(row, now),
        language=result.language,
    )
