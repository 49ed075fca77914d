"""Jobs that belong to the cluster: a job's owner and command are in the store, jobs ready to
start wait there as a queue that any replica's worker takes from when it has a free slot. On
SQLite and on PostgreSQL (where CLAIMS_TEST_DATABASE_URL names a server)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from claims.store import JobCapReached, JobCaps, LeaseLost, Store
from claims.store.store import alembic_config
from schemas.jobs import JobState
from serving.batch.jobs import JobLauncher
from serving.settings import ServiceSettings
from tests.test_batch_job_limits import stop_jobs
from tests.test_job_leases import SHORT, at_once, lapsed, wait_for


def test_a_job_keeps_its_owner_and_command_in_the_store(store: Store) -> None:
    job = store.create_job("score", owner_key="key-1", command=["score", "in.csv"]).job_id
    assert store.job_owner(job) == "key-1"
    assert store.job_command(job) == ["score", "in.csv"]
    anonymous = store.create_job("score", owner_key="").job_id  # made without keys
    assert store.job_owner(anonymous) == "" and store.job_command(anonymous) is None
    store.update_job(anonymous, command=["score", "other.csv", "--explain"])
    assert store.job_command(anonymous) == ["score", "other.csv", "--explain"]
    assert [j.job_id for j in store.jobs(kind="score", owner_key="key-1")] == [job]
    assert [j.job_id for j in store.jobs(kind="score", owner_key="")] == [anonymous]
    assert store.job_owner("job-unknown") is None


def test_jobs_from_before_the_migration_have_no_owner_and_no_command(database_url: str) -> None:
    """Only an admin reads them, as when their owner was not recorded."""
    Store(database_url).close()
    command.downgrade(alembic_config(database_url), "0007")
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO jobs (job_id, kind, state, progress, message, created_at, "
                    "updated_at) VALUES ('job-old', 'score', 'succeeded', 1.0, '', :at, :at)"
                ),
                {"at": datetime.now(UTC)},
            )
    finally:
        engine.dispose()
    store = Store(database_url)  # upgrades to head
    try:
        old = store.job("job-old")
        assert old is not None and old.state == "succeeded"
        assert store.job_owner("job-old") is None and store.job_command("job-old") is None
    finally:
        store.close()


def test_the_queue_holds_jobs_ready_to_start_and_only_those(store: Store) -> None:
    """Oldest first; not an upload in flight (held, no command yet), not one from before leases
    (no command: `claim_lapsed` fails it); a first start is no takeover."""
    uploading = store.create_job("score", lease=("replica-a", 60), owner_key="k").job_id
    ready = store.create_job("score", owner_key="k", command=["score", "a.csv"]).job_id
    retrain = store.create_job("retrain", command=["retrain", "--data", "h.csv"]).job_id
    legacy = store.create_job("score").job_id
    assert store.claim_lapsed("replica-b", 60) == legacy
    assert store.claim_lapsed("replica-b", 60) is None  # queued jobs are not lapsed ones

    first = store.claim_next("replica-b", 60)
    assert first is not None and (first.job_id, first.command) == (ready, ["score", "a.csv"])
    second = store.claim_next("replica-b", 60)
    assert second is not None and (second.job_id, second.kind) == (retrain, "retrain")
    assert store.claim_next("replica-b", 60) is None
    for job_id in (ready, retrain):
        lease = store.lease(job_id)
        assert lease is not None and lease.owner == "replica-b" and lease.takeovers == 0

    with pytest.raises(LeaseLost):  # only the holder puts it on the queue
        store.enqueue(uploading, "replica-b", "queued", ["score", "u.csv"])
    store.enqueue(uploading, "replica-a", "queued: u.csv", ["score", "u.csv"])
    job = store.job(uploading)
    assert job is not None and job.state == JobState.queued and job.message == "queued: u.csv"
    assert store.lease(uploading) is None  # held by no one, until a replica claims it
    claimed = store.claim_next("replica-c", 60)
    assert claimed is not None and claimed.job_id == uploading


def test_workers_claiming_at_once_each_get_a_different_job_or_none(
    database_url: str, store: Store
) -> None:
    ready = {store.create_job("score", command=["score", f"{n}.csv"]).job_id for n in range(3)}

    def claim(worker: int, own: Store) -> str | None:
        job = own.claim_next(f"replica-{worker}", 60)
        return None if job is None else job.job_id

    claimed = at_once(database_url, 6, claim)
    taken = [job_id for job_id in claimed.values() if job_id is not None]
    assert len(claimed) == 6 and sorted(taken) == sorted(ready)  # each once; the rest none
    for worker, job_id in claimed.items():
        lease = store.lease(job_id) if job_id else None
        assert lease is None or lease.owner == f"replica-{worker}"


def test_a_retrain_that_never_started_is_started_again_and_one_that_did_is_failed(
    store: Store, tmp_path: Path
) -> None:
    """Its process died before reporting a start (or its replica before starting it): queued
    again, a takeover counted. Once it had reported running, its work is lost: failed, so that
    the next may be asked for."""
    launcher = JobLauncher(ServiceSettings(data_dir=tmp_path / "shared"), store)
    try:
        job = store.create_job("retrain", command=["retrain", "--data", "h.csv"]).job_id
        assert store.claim_next("gone", SHORT) is not None  # a replica that died at once
        lapsed()
        assert launcher.recover() == [(job, "requeued")]
        queued = store.job(job)
        assert queued is not None and queued.state == JobState.queued
        assert store.lease(job) is None

        claimed = store.claim_next("replica-b", SHORT)
        assert claimed is not None and claimed.job_id == job
        assert store.lease(job).takeovers == 1  # type: ignore[union-attr]
        store.update_job(job, state=JobState.running, owner="replica-b")  # its process started
        lapsed()
        assert launcher.recover() == [(job, "failed")]
        failed = store.job(job)
        assert failed is not None and "renewed its lease no more" in (failed.error or "")
        store.create_job("retrain")  # no longer blocks the next
    finally:
        launcher.close()


def test_a_job_queued_by_a_busy_replica_is_started_by_another(
    database_url: str, trained_checkpoint: Path, tmp_path: Path
) -> None:
    """Replicas A and B (one process slot each) share the store and the data path. A's slot is
    taken by a real `claims score` (waiting on its input, a pipe no one writes); the job A
    queues next waits in the store, held by no one, and B's worker starts it."""
    shared = tmp_path / "shared"
    settings = ServiceSettings(data_dir=shared, database_url=database_url, job_processes=1)
    store = Store(database_url)
    a, b = JobLauncher(settings, store), JobLauncher(settings, store)
    inputs = [tmp_path / f"backlog-{n}.csv" for n in range(2)]
    for pipe in inputs:
        os.mkfifo(pipe)  # read by a scoring process until it is killed
    try:
        first = a.create_scoring("key-a", "uploading backlog-0.csv").job_id
        a.queue_scoring(first, "queued", inputs[0], tmp_path / "out-0.csv", trained_checkpoint)
        assert a.free_slots() == 0

        second = a.create_scoring("key-b", "uploading backlog-1.csv").job_id
        a.queue_scoring(second, "queued", inputs[1], tmp_path / "out-1.csv", trained_checkpoint)
        assert a.start_queued() == []  # no free slot: it waits, held by no one
        waiting = store.job(second)
        assert waiting is not None and waiting.state == JobState.queued
        assert store.lease(second) is None

        assert b.start_queued() == [second]
        assert b.free_slots() == 0 and b.start_queued() == []

        def reports_running() -> bool:
            job = store.job(second)
            return job is not None and job.state == JobState.running

        wait_for("B's process never reported the job running", reports_running, 180)
        held = store.lease(second)
        pid = (a.jobs_dir / f"{second}.pid").read_text()
        assert held is not None and held.owner.split(":")[1] == pid and held.takeovers == 0
        assert store.job_owner(second) == "key-b"
    finally:
        stop_jobs(a.jobs_dir.parent)
        a.close()
        b.close()
        store.close()


def test_replicas_asked_at_once_never_create_jobs_past_the_caps(
    database_url: str, store: Store
) -> None:
    """Eight replicas' stores, each asked for a scoring job at the same instant: the caps (two
    in all, one a key) hold for the cluster, not for each replica."""

    def create(replica: int, own: Store) -> str:
        try:
            own.create_job("score", owner_key=f"key-{replica % 4}", caps=JobCaps(2, 1))
        except JobCapReached as refused:
            return str(refused)
        return "created"

    outcomes = at_once(database_url, 8, create)
    assert len(outcomes) == 8
    active = store.jobs(kind="score", states=[JobState.queued, JobState.running])
    assert len(active) == 2 == sum(outcome == "created" for outcome in outcomes.values())
    assert len({job.job_id for job in active}) == 2
    owners = [store.job_owner(job.job_id) for job in active]
    assert len(set(owners)) == 2  # never two for one key
    refusals = [outcome for outcome in outcomes.values() if outcome != "created"]
    assert all("queued or running" in refusal for refusal in refusals)
