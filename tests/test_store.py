"""The durable store on real databases: SQLite in a temporary folder, and PostgreSQL when
CLAIMS_TEST_DATABASE_URL names one (`.ci/run` starts one), with a fresh database per test."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from claims.store import FeedbackConflict, Store, StoreError, UnknownPrediction
from claims.store.orm import Base, Feedback, FeedbackLabel
from claims.store.store import alembic_config
from schemas.claim import Claim
from schemas.feedback import FeedbackItem, FeedbackRecord, PredictionRecord
from schemas.jobs import JobState
from schemas.triage import (
    Decision,
    LabelProbability,
    ServedBy,
    TaskPrediction,
    TriageResult,
)

REPO = Path(__file__).resolve().parents[1]


def a_prediction(
    prediction_id: str,
    claim_id: str,
    *,
    version: str = "v1",
    created_at: datetime | None = None,
    description: str = "Clmt states IV rear-ended at light by OV. PD to rear bumper, no inj.",
) -> PredictionRecord:
    claim = Claim(
        claim_id=claim_id,
        description=description,
        loss_date=date(2025, 6, 1),
        reported_date=date(2025, 6, 2),
        initial_estimate=1800.0,
        currency="USD",
        attributes={"region": "north"},
    )
    result = TriageResult(
        prediction_id=prediction_id,
        claim_id=claim_id,
        predictions={
            "severity": TaskPrediction(
                label="low",
                probability=0.8,
                probabilities={"low": 0.8, "high": 0.2},
                alternatives=[LabelProbability(label="high", probability=0.2)],
            )
        },
        decision=Decision(
            route="fast_track",
            route_reason="low severity",
            needs_review=False,
            review_reasons=[],
            policy_version="policy-1",
        ),
        served_by=ServedBy(source="tuned", model_version=version),
    )
    return PredictionRecord(
        prediction_id=prediction_id,
        claim=claim,
        result=result,
        model_version=version,
        source="tuned",
        created_at=created_at or datetime.now(UTC),
    )


def an_item(feedback_id: str, **fields: object) -> FeedbackItem:
    values: dict[str, object] = {
        "labels": {"severity": "high"},
        "reason_code": "missed_injury",
        "adjuster_id": "adj-1",
    }
    return FeedbackItem(feedback_id=feedback_id, **{**values, **fields})


def feedback_ids(records: list[FeedbackRecord]) -> list[str]:
    return [record.feedback_id for record in records]


# Schema


def test_migrations_reach_head_once_and_create_exactly_the_tables(database_url: str) -> None:
    Store(database_url).close()
    Store(database_url).close()  # the second upgrade finds head and does nothing
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert context.get_current_revision() == head
            assert compare_metadata(context, Base.metadata) == []

        command.downgrade(alembic_config(database_url), "base")
        assert inspect(engine).get_table_names() == ["alembic_version"]
        Store(database_url).close()
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_processes_opening_a_new_database_at_once_all_start(
    database_url: str, tmp_path: Path
) -> None:
    """The service and a retrain job may both be the first to open the store."""
    go = tmp_path / "go"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from claims.store import Store\n"
        "from schemas.feedback import FeedbackItem\n"
        "url, go, n = sys.argv[1:]\n"
        "print('ready', flush=True)\n"
        "while not Path(go).exists(): time.sleep(0.005)\n"
        "store = Store(url)\n"
        "store.add_feedback(FeedbackItem(feedback_id=f'fb-{n}', claim_id='CLM-1',\n"
        "    labels={'severity': 'high'}, reason_code='r', adjuster_id='adj-1'))\n"
        "store.close()\n"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, database_url, str(go), str(n)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    go.touch()
    for child in children:
        _, errors = child.communicate(timeout=60)
        assert child.returncode == 0, errors

    store = Store(database_url)
    try:
        assert sorted(feedback_ids(store.list_feedback())) == [f"fb-{n}" for n in range(3)]
    finally:
        store.close()


# Predictions


def test_a_store_opened_while_another_process_writes_a_new_file_waits_for_it(
    tmp_path: Path,
) -> None:
    """Switching the file to WAL mode, SQLite answers "database is locked" at once, past the
    busy timeout, while another connection holds a write lock."""
    path = tmp_path / "claims.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE elsewhere (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO elsewhere VALUES (1)")
    threading.Timer(0.3, other.execute, args=("COMMIT",)).start()
    store = Store(f"sqlite:///{path}")
    try:
        assert store.list_feedback() == []
    finally:
        store.close()
        other.close()


def test_predictions_round_trip(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    first = a_prediction("pred-1", "CLM-1", created_at=datetime(2025, 6, 3, 12, 0, tzinfo=paris))
    second = a_prediction("pred-2", "CLM-2", version="v2")
    store.record_predictions([first, second])

    assert store.prediction("pred-1") == first
    assert store.prediction("pred-2") == second
    assert store.prediction("pred-1").created_at.tzinfo == UTC
    assert store.prediction("pred-unknown") is None


def test_predictions_are_recorded_all_or_none(store: Store) -> None:
    store.record_predictions([a_prediction("pred-1", "CLM-1")])
    with pytest.raises(StoreError, match="recording 2 predictions"):  # told without values
        store.record_predictions([a_prediction("pred-2", "CLM-2"), a_prediction("pred-1", "X")])
    assert store.prediction("pred-2") is None
    assert store.prediction("pred-1").claim.claim_id == "CLM-1"


def test_a_prediction_without_a_timezone_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone"):
        store.record_predictions([a_prediction("pred-1", "CLM-1", created_at=datetime(2025, 6, 3))])


def test_latest_claims_are_the_newest_prediction_per_claim(store: Store) -> None:
    now = datetime.now(UTC)
    store.record_predictions(
        [
            a_prediction("pred-new", "CLM-1", created_at=now, description="Second report."),
            a_prediction("pred-old", "CLM-1", created_at=now - timedelta(days=1)),
            a_prediction("pred-2", "CLM-2", created_at=now - timedelta(days=2)),
        ]
    )
    asked = [f"CLM-unknown-{n}" for n in range(1500)] + ["CLM-1", "CLM-2", "CLM-1"]

    claims = store.latest_claims(iter(asked))

    assert set(claims) == {"CLM-1", "CLM-2"}
    assert claims["CLM-1"].description == "Second report."
    assert claims["CLM-2"] == store.prediction("pred-2").claim
    assert store.latest_claims([]) == {}


# Feedback


def test_feedback_on_a_prediction_takes_its_claim_and_model_version(store: Store) -> None:
    store.record_predictions([a_prediction("pred-1", "CLM-1", version="v7")])
    before = datetime.now(UTC)

    record, created = store.add_feedback(an_item("fb-1", prediction_id="pred-1", note="  mri  "))

    assert created
    assert (record.claim_id, record.model_version, record.note) == ("CLM-1", "v7", "mri")
    assert before <= record.received_at <= datetime.now(UTC)
    assert store.list_feedback() == [record]
    assert store.list_feedback()[0].received_at.tzinfo == UTC


def test_feedback_on_a_claim_alone_has_no_model_version(store: Store) -> None:
    record, created = store.add_feedback(an_item("fb-1", claim_id="CLM-9"))
    assert created
    assert (record.claim_id, record.prediction_id, record.model_version) == ("CLM-9", None, None)


def test_feedback_on_an_unknown_prediction_is_refused(store: Store) -> None:
    with pytest.raises(UnknownPrediction, match="pred-missing"):
        store.add_feedback(an_item("fb-1", prediction_id="pred-missing"))
    assert store.list_feedback() == []


def test_feedback_naming_another_claim_than_its_prediction_is_refused(store: Store) -> None:
    store.record_predictions([a_prediction("pred-1", "CLM-1")])
    with pytest.raises(ValueError, match=r"pred-1.*CLM-1.*CLM-2"):
        store.add_feedback(an_item("fb-1", prediction_id="pred-1", claim_id="CLM-2"))
    assert store.list_feedback() == []


def test_the_same_feedback_twice_is_stored_once(store: Store) -> None:
    store.record_predictions([a_prediction("pred-1", "CLM-1")])
    item = an_item("fb-1", prediction_id="pred-1")

    first, created = store.add_feedback(item)
    again, created_again = store.add_feedback(item)
    # Naming the claim the prediction resolves to is the same content.
    named, created_named = store.add_feedback(item.model_copy(update={"claim_id": "CLM-1"}))

    assert created and not created_again and not created_named
    assert again == first == named
    assert store.list_feedback() == [first]


@pytest.mark.parametrize(
    "change",
    [
        {"labels": {"severity": "low"}},
        {"labels": {"severity": "high", "siu_referral": "yes"}},
        {"confirmed": True},
        {"note": "a second thought"},
        {"claim_id": "CLM-2"},
    ],
)
def test_the_same_feedback_id_with_other_content_conflicts(
    store: Store, change: dict[str, object]
) -> None:
    store.record_predictions([a_prediction("pred-1", "CLM-1")])
    item = an_item("fb-1", prediction_id="pred-1")
    stored, _ = store.add_feedback(item)

    with pytest.raises(FeedbackConflict, match="fb-1"):
        store.add_feedback(item.model_copy(update=change))
    assert store.list_feedback() == [stored]


def test_concurrent_duplicates_are_stored_once(store: Store) -> None:
    store.record_predictions([a_prediction("pred-1", "CLM-1")])
    item = an_item("fb-1", prediction_id="pred-1")
    start = threading.Barrier(8)

    def submit(_: int) -> tuple[FeedbackRecord, bool]:
        start.wait()
        return store.add_feedback(item)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(8)))

    assert sorted(created for _, created in answers) == [False] * 7 + [True]
    assert len({record.model_dump_json() for record, _ in answers}) == 1
    assert len(store.list_feedback()) == 1


def test_a_duplicate_committed_while_we_insert_is_answered_as_stored(
    store: Store, database_url: str
) -> None:
    """Another process commits the same feedback_id while our insert waits on it."""
    item = an_item("fb-1", claim_id="CLM-1")
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with Session(engine) as other:
            other.add(
                Feedback(
                    feedback_id="fb-1",
                    claim_id="CLM-1",
                    reason_code=item.reason_code,
                    adjuster_id=item.adjuster_id,
                    confirmed=False,
                    received_at=datetime.now(UTC),
                    labels=[FeedbackLabel(task="severity", label="high")],
                )
            )
            other.flush()  # holds the row (PostgreSQL) or the write lock (SQLite)
            with ThreadPoolExecutor(1) as pool:
                answer = pool.submit(store.add_feedback, item)
                time.sleep(0.3)
                other.commit()
                record, created = answer.result(timeout=30)
    finally:
        engine.dispose()

    assert not created
    assert record.feedback_id == "fb-1"
    assert len(store.list_feedback()) == 1


def test_acknowledged_feedback_survives_a_killed_process(store: Store, database_url: str) -> None:
    script = (
        "import sys\n"
        "from claims.store import Store\n"
        "from schemas.feedback import FeedbackItem\n"
        "store = Store(sys.argv[1])\n"
        "for n in range(1_000_000):\n"
        "    store.add_feedback(FeedbackItem(feedback_id=f'fb-{n}', claim_id='CLM-1',\n"
        "        labels={'severity': 'high'}, reason_code='r', adjuster_id='adj-1'))\n"
        "    print(f'fb-{n}', flush=True)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script, database_url], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    acknowledged = [writer.stdout.readline().strip() for _ in range(40)]
    writer.send_signal(signal.SIGKILL)
    acknowledged += writer.stdout.read().split()
    writer.wait(timeout=30)

    stored = set(feedback_ids(store.list_feedback(limit=1_000_000)))
    assert "" not in acknowledged
    assert set(acknowledged) <= stored


def test_list_feedback_filters_and_pages(store: Store) -> None:
    store.record_predictions([a_prediction("pred-1", "CLM-1"), a_prediction("pred-2", "CLM-2")])
    a, _ = store.add_feedback(an_item("a", prediction_id="pred-1", confirmed=True))
    b, _ = store.add_feedback(
        an_item(
            "b",
            claim_id="CLM-2",
            labels={"claim_type": "theft", "siu_referral": "yes"},
            adjuster_id="adj-2",
        )
    )
    c, _ = store.add_feedback(
        an_item("c", prediction_id="pred-2", labels={"severity": "low"}, confirmed=True)
    )
    d, _ = store.add_feedback(
        an_item("d", claim_id="CLM-3", labels={"claim_type": "fire"}, adjuster_id="adj-2")
    )
    listed = store.list_feedback

    assert listed() == [a, b, c, d]
    assert feedback_ids(listed(claim_id="CLM-2")) == ["b", "c"]
    assert feedback_ids(listed(task="severity")) == ["a", "c"]
    assert feedback_ids(listed(task="claim_type")) == ["b", "d"]
    assert listed(task="fraud_ring") == []
    assert feedback_ids(listed(adjuster_id="adj-2")) == ["b", "d"]
    assert feedback_ids(listed(since=b.received_at)) == ["b", "c", "d"]
    assert feedback_ids(listed(until=c.received_at)) == ["a", "b"]
    assert feedback_ids(listed(since=b.received_at, until=d.received_at)) == ["b", "c"]
    paris = timezone(timedelta(hours=2))
    assert feedback_ids(listed(since=c.received_at.astimezone(paris))) == ["c", "d"]
    assert feedback_ids(listed(confirmed=True)) == ["a", "c"]
    assert feedback_ids(listed(confirmed=False)) == ["b", "d"]
    assert feedback_ids(listed(task="claim_type", adjuster_id="adj-2", confirmed=False)) == [
        "b",
        "d",
    ]
    assert feedback_ids(listed(limit=3)) == ["a", "b", "c"]
    assert feedback_ids(listed(limit=2, offset=2)) == ["c", "d"]
    assert listed(offset=4) == []
    assert b.labels == {"claim_type": "theft", "siu_referral": "yes"}
    with pytest.raises(ValueError, match="timezone"):
        listed(since=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        listed(limit=-1)


def test_confirmed_corrections_are_every_confirmed_item_oldest_first(store: Store) -> None:
    first, _ = store.add_feedback(an_item("fb-1", claim_id="CLM-1", confirmed=True))
    store.add_feedback(an_item("fb-2", claim_id="CLM-1", labels={"severity": "low"}))
    third, _ = store.add_feedback(
        an_item("fb-3", claim_id="CLM-1", labels={"severity": "medium"}, confirmed=True)
    )
    fourth, _ = store.add_feedback(an_item("fb-4", claim_id="CLM-2", confirmed=True))
    for n in range(5, 110):  # more than list_feedback's default page
        store.add_feedback(an_item(f"fb-{n}", claim_id="CLM-3", confirmed=True))

    corrections = store.confirmed_corrections()

    assert corrections[:3] == [first, third, fourth]
    assert len(corrections) == 108
    assert all(item.confirmed for item in corrections)


# Jobs


def test_a_job_from_queued_to_succeeded(store: Store) -> None:
    job = store.create_job("retrain", "waiting for a worker")
    assert job.job_id.startswith("job-")
    assert (job.state, job.progress, job.message) == (JobState.queued, 0.0, "waiting for a worker")
    assert store.job(job.job_id) == job

    running = store.update_job(job.job_id, state=JobState.running, progress=0.25, message="epoch 1")
    assert (running.state, running.progress, running.message) == (JobState.running, 0.25, "epoch 1")
    assert running.updated_at >= job.updated_at
    with pytest.raises(ValidationError):
        store.update_job(job.job_id, progress=1.5)
    assert store.job(job.job_id) == running

    result = {"model_version": "v2", "metrics": {"macro_f1": 0.91}, "promoted": True}
    done = store.update_job(job.job_id, state=JobState.succeeded, progress=1.0, result=result)
    assert store.job(job.job_id) == done
    assert (done.state, done.result, done.message, done.error) == (
        JobState.succeeded,
        result,
        "epoch 1",
        None,
    )
    assert done.created_at == job.created_at
    assert done.updated_at.tzinfo == UTC


def test_jobs_are_listed_newest_first_by_kind_and_state(store: Store) -> None:
    first = store.create_job("retrain")
    store.update_job(first.job_id, state=JobState.succeeded, progress=1.0)
    second = store.create_job("retrain")  # one retrain at a time: the first has ended
    store.update_job(second.job_id, state=JobState.failed, error="out of memory")
    other = store.create_job("export")

    def ids(kind: str | None = None, states: Collection[JobState] | None = None) -> list[str]:
        return [job.job_id for job in store.jobs(kind, states)]

    assert ids() == [other.job_id, second.job_id, first.job_id]
    assert ids("retrain") == [second.job_id, first.job_id]
    assert ids(states={JobState.queued, JobState.failed}) == [other.job_id, second.job_id]
    assert ids("retrain", [JobState.queued]) == []
    assert ids(states=[]) == []
    assert store.job(second.job_id).error == "out of memory"


def test_an_unknown_job(store: Store) -> None:
    assert store.job("job-missing") is None
    with pytest.raises(LookupError, match="job-missing"):
        store.update_job("job-missing", progress=0.5)
