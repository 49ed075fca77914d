"""The review queue in the store, on SQLite and, when a server is given, PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from claims.store import ReviewHeld, Store
from claims.store.store import alembic_config
from schemas.feedback import FeedbackItem, PredictionRecord
from schemas.triage import Decision, ReviewReason
from tests.test_store import a_prediction


def needing_review(
    prediction_id: str,
    claim_id: str,
    *,
    route: str = "siu",
    task: str | None = None,
    line: str | None = "motor",
    age: timedelta = timedelta(0),
) -> PredictionRecord:
    record = a_prediction(prediction_id, claim_id, created_at=datetime.now(UTC) - age)
    reasons = [ReviewReason(code="route", detail=f"route {route}: rule")]
    if task is not None:
        reasons.append(ReviewReason(code="low_confidence", detail=f"{task}: x at 40%", task=task))
    decision = Decision(
        route=route,
        route_reason="rule",
        needs_review=True,
        review_reasons=reasons,
        policy_version="policy-1",
    )
    claim = record.claim.model_copy(update={"line_of_business": line})
    result = record.result.model_copy(update={"decision": decision})
    return record.model_copy(update={"claim": claim, "result": result})


def confirmed(feedback_id: str, claim_id: str, *, is_confirmed: bool = True) -> FeedbackItem:
    return FeedbackItem(
        feedback_id=feedback_id,
        claim_id=claim_id,
        labels={"severity": "high"},
        reason_code="checked",
        adjuster_id="adj-1",
        confirmed=is_confirmed,
    )


def queued(store: Store, **filters: object) -> list[str]:
    items, total = store.review_queue(**filters)  # type: ignore[arg-type]
    assert total >= len(items)
    return [item.prediction_id for item in items]


def test_only_answers_needing_review_are_queued_oldest_first(store: Store) -> None:
    store.record_predictions(
        [
            needing_review("pr-new", "C-1"),
            a_prediction("pr-fine", "C-2"),
            needing_review("pr-old", "C-3", age=timedelta(hours=2)),
        ]
    )
    assert queued(store) == ["pr-old", "pr-new"]


def test_confirmed_feedback_on_the_claim_takes_it_off_the_queue(store: Store) -> None:
    store.record_predictions([needing_review("pr-1", "C-1"), needing_review("pr-2", "C-2")])
    store.add_feedback(confirmed("fb-tentative", "C-1", is_confirmed=False))
    assert queued(store) == ["pr-1", "pr-2"]
    store.add_feedback(confirmed("fb-sure", "C-1"))
    assert queued(store) == ["pr-2"]
    assert store.review_state("pr-1").on_queue is False
    assert store.review_state("pr-2").on_queue is True


def test_the_queue_filters_counts_and_pages(store: Store) -> None:
    store.record_predictions(
        [
            needing_review("pr-a", "C-a", route="siu", task="severity", age=timedelta(days=4)),
            needing_review("pr-b", "C-b", route="complex", line="home", age=timedelta(hours=5)),
            needing_review("pr-c", "C-c", route="siu", task="claim_type"),
        ]
    )
    assert queued(store, route="siu") == ["pr-a", "pr-c"]
    assert queued(store, task="severity") == ["pr-a"]
    assert queued(store, line_of_business="home") == ["pr-b"]
    assert queued(store, min_age=timedelta(hours=1)) == ["pr-a", "pr-b"]
    assert queued(store, max_age=timedelta(days=1)) == ["pr-b", "pr-c"]
    page, total = store.review_queue(limit=1, offset=1)
    assert [item.prediction_id for item in page] == ["pr-b"] and total == 3
    counts = store.review_counts()
    assert counts.by_route == {"complex": 1, "siu": 2} and counts.total == 3
    assert counts.by_age == {
        "under 1 hour": 1,
        "1 to 24 hours": 1,
        "1 to 3 days": 0,
        "over 3 days": 1,
    }


def test_one_adjuster_holds_an_item_until_released_or_expired(store: Store) -> None:
    store.record_predictions([needing_review("pr-1", "C-1"), needing_review("pr-2", "C-2")])
    hold = store.hold_review("pr-1", "adj-1", minutes=30)
    assert hold.adjuster_id == "adj-1" and hold.until > datetime.now(UTC)
    with pytest.raises(ReviewHeld, match="adj-1"):
        store.hold_review("pr-1", "adj-2", minutes=30)
    with pytest.raises(ReviewHeld):
        store.release_review("pr-1", "adj-2")
    assert queued(store, available_to="adj-2") == ["pr-2"]
    assert queued(store, available_to="adj-1") == ["pr-1", "pr-2"]
    [first, _], _ = store.review_queue()
    assert first.held_by is not None and first.held_by.adjuster_id == "adj-1"
    store.release_review("pr-1", "adj-1")
    assert store.hold_review("pr-1", "adj-2", minutes=1).adjuster_id == "adj-2"
    with pytest.raises(LookupError):
        store.hold_review("pr-nowhere", "adj-1", minutes=1)


def test_an_expired_hold_frees_the_item(store: Store, database_url: str) -> None:
    store.record_predictions([needing_review("pr-1", "C-1")])
    store.hold_review("pr-1", "adj-1", minutes=30)
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        past = datetime.now(UTC) - timedelta(minutes=1)
        connection.execute(text("UPDATE review_items SET claimed_until = :t"), {"t": past})
    engine.dispose()
    assert queued(store, available_to="adj-2") == ["pr-1"]
    assert store.hold_review("pr-1", "adj-2", minutes=5).adjuster_id == "adj-2"


def test_forgetting_predictions_takes_them_off_the_queue(store: Store) -> None:
    store.record_predictions(
        [needing_review("pr-old", "C-1", task="severity", age=timedelta(days=400))]
    )
    store.record_predictions([needing_review("pr-new", "C-2")])
    assert store.forget_predictions(datetime.now(UTC) - timedelta(days=1)) == (1, 0)
    assert queued(store) == ["pr-new"]


def test_the_migration_queues_answers_recorded_before_it(database_url: str) -> None:
    store = Store(database_url)
    store.record_predictions(
        [
            needing_review("pr-1", "C-1", task="severity", line="home"),
            a_prediction("pr-2", "C-2"),
        ]
    )
    store.close()
    command.downgrade(alembic_config(database_url), "0002")
    store = Store(database_url)  # upgrades to head again, backfilling the queue
    try:
        [item], total = store.review_queue()
        assert (item.prediction_id, item.route, item.tasks, total) == (
            "pr-1",
            "siu",
            ["severity"],
            1,
        )
        assert item.line_of_business == "home"
    finally:
        store.close()
