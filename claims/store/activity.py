"""The store's activity over time, for the console's plots: answers by route, the share that
needed review, and how often adjusters' confirmed feedback agreed with the model. Counted by
the database, a day or a week (from Monday) of UTC at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy import (
    ColumnElement,
    Engine,
    SQLColumnExpression,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, sessionmaker

from claims.store.orm import Feedback, FeedbackLabel, Prediction, ReviewItem

Bucket = Literal["day", "week"]


@dataclass(frozen=True)
class RouteVolume:
    """Answers given in one bucket that went to one route, and how many of them needed review."""

    start: date
    route: str
    answers: int
    needed_review: int


@dataclass(frozen=True)
class Agreement:
    """Confirmed feedback labels for one task on one model version's answers in one bucket
    (by when the feedback arrived), and how many equal the label the model answered."""

    start: date
    task: str
    model_version: str
    compared: int
    agreed: int


@dataclass(frozen=True)
class Activity:
    since: date  # the first bucket's start
    until: date  # the day after the last bucket
    bucket: Bucket
    volumes: list[RouteVolume]
    agreement: list[Agreement]

    @property
    def last_day(self) -> date:
        return self.until - timedelta(days=1)

    def starts(self) -> list[date]:
        """Every bucket's start, those without activity too, oldest first."""
        step = timedelta(days=7 if self.bucket == "week" else 1)
        starts, at = [], self.since
        while at < self.until:
            starts.append(at)
            at += step
        return starts


def bucket_start(day: date, bucket: Bucket) -> date:
    """The first day of the bucket `day` falls in (weeks begin on Monday, as ISO weeks do)."""
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


class ActivityQueries:
    """Mixed into `Store`, whose sessions these are."""

    _engine: Engine
    _reading: sessionmaker[Session]

    def activity(self, days: int, bucket: Bucket, today: date | None = None) -> Activity:
        """The last `days` days up to and including `today` (UTC), whole buckets: a weekly
        series starts on the Monday of the first week."""
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        today = today or datetime.now(UTC).date()
        since = bucket_start(today - timedelta(days=days - 1), bucket)
        until = today + timedelta(days=1)
        start = datetime.combine(since, datetime.min.time(), UTC)
        end = datetime.combine(until, datetime.min.time(), UTC)
        answered = self._bucket(Prediction.created_at, bucket)
        route = self._json_text(Prediction.result, "decision", "route")
        volumes = (
            select(answered, route, func.count(), func.count(ReviewItem.prediction_id))
            .select_from(Prediction)
            .outerjoin(ReviewItem, ReviewItem.prediction_id == Prediction.prediction_id)
            .where(Prediction.created_at >= start, Prediction.created_at < end)
            .group_by(answered, route)
        )
        received = self._bucket(Feedback.received_at, bucket)
        answer = self._json_text(Prediction.result, "predictions", FeedbackLabel.task, "label")
        agreed = func.sum(case((FeedbackLabel.label == answer, 1), else_=0))
        agreement = (
            select(received, FeedbackLabel.task, Prediction.model_version, func.count(), agreed)
            .select_from(Feedback)
            .join(FeedbackLabel, FeedbackLabel.feedback_id == Feedback.feedback_id)
            .join(Prediction, Prediction.prediction_id == Feedback.prediction_id)
            .where(
                and_(
                    Feedback.confirmed.is_(True),
                    Feedback.received_at >= start,
                    Feedback.received_at < end,
                    answer.is_not(None),  # a task the answer did not predict: nothing to agree
                )
            )
            .group_by(received, FeedbackLabel.task, Prediction.model_version)
        )
        with self._reading() as session:
            route_rows = [
                RouteVolume(date.fromisoformat(day), route or "unknown", count, review)
                for day, route, count, review in session.execute(volumes)
            ]
            agreement_rows = [
                Agreement(date.fromisoformat(day), task, version, count, int(agreeing or 0))
                for day, task, version, count, agreeing in session.execute(agreement)
            ]
        return Activity(
            since=since,
            until=until,
            bucket=bucket,
            volumes=sorted(route_rows, key=lambda row: (row.start, row.route)),
            agreement=sorted(
                agreement_rows, key=lambda row: (row.start, row.task, row.model_version)
            ),
        )

    def _bucket(self, column: SQLColumnExpression[datetime], bucket: Bucket) -> ColumnElement[str]:
        """The bucket's first day as YYYY-MM-DD text, the same on both backends."""
        if self._engine.dialect.name == "postgresql":
            utc = func.timezone("UTC", column)
            return func.to_char(func.date_trunc(bucket, utc), "YYYY-MM-DD")
        # SQLite keeps UTC text; weekday 0 moves a day to the next Sunday (a Sunday stays)
        modifiers = ("weekday 0", "-6 days") if bucket == "week" else ()
        return func.date(column, *modifiers)

    def _json_text(
        self, column: SQLColumnExpression[str], *path: str | SQLColumnExpression[str]
    ) -> ColumnElement[str]:
        """A value inside a JSON text column, as text; a path step may be a column's value."""
        if self._engine.dialect.name == "postgresql":
            return func.jsonb_extract_path_text(cast(column, JSONB), *path)
        json_path: ColumnElement[str] = literal("$", String)
        for step in path:
            json_path = json_path + '."' + step + '"'
        return func.json_extract(column, json_path)
