"""Jobs belong to the cluster: the process doing a job holds its lease, and once the lease lapses
any replica takes the job over. On SQLite and on PostgreSQL (where CLAIMS_TEST_DATABASE_URL
names a server: conftest's `database_url` and `store`); the last test with real replicas, one
of them killed mid-job."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pandas as pd
import pytest
from pydantic import ValidationError

from claims.data.synthetic import generate_claims
from claims.store import LeaseLost, Store
from claims.store.data_settings import DataSettings
from claims.store.job_progress import HANDED_BY, LEASE_LOST_EXIT
from claims.store.leases import LeaseKeeper, process_owner
from claims.store.registry import Registry
from schemas.jobs import JobState
from schemas.registry import Lineage
from serving.batch.jobs import MAX_TAKEOVERS, JobLauncher
from serving.settings import ServiceSettings
from tests.helpers import running_replicas

SHORT = 0.3  # seconds: a lease that lapses within a test
T = TypeVar("T")


def lapsed() -> None:
    time.sleep(SHORT + 0.2)


def wait_for(what: str, check: Callable[[], object], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def at_once(database_url: str, replicas: int, work: Callable[[int, Store], T]) -> dict[int, T]:
    """`work(replica, its own store)` on as many threads, released at the same instant; what
    each returned."""
    stores = [Store(database_url) for _ in range(replicas)]
    start = threading.Barrier(replicas)
    outcomes: dict[int, T] = {}

    def run(replica: int, own: Store) -> None:
        start.wait()
        outcomes[replica] = work(replica, own)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(stores)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for own in stores:
            own.close()
    return outcomes


def test_a_held_lease_is_claimed_by_no_one_else_until_it_lapses(store: Store) -> None:
    job = store.create_job("score", lease=("replica-a", 60)).job_id
    assert store.claim_lapsed("replica-b", 60) is None
    assert not store.take_lease(job, "replica-b", 60)
    assert store.renew_lease(job, "replica-a", 60) == JobState.queued
    assert store.renew_lease(job, "replica-b", 60) is None  # only the holder renews
    held = store.lease(job)
    assert held is not None and held.owner == "replica-a"

    short = store.create_job("score", lease=("replica-a", SHORT)).job_id
    lapsed()
    assert store.claim_lapsed("replica-b", 60) == short  # the held one is left alone
    assert store.claim_lapsed("replica-b", 60) is None
    assert store.renew_lease(short, "replica-a", 60) is None  # a-'s lease is lost
    with pytest.raises(LeaseLost):  # and with it any say in what the job reports
        store.update_job(short, progress=0.5, owner="replica-a")
    assert store.update_job(short, progress=0.5, owner="replica-b").progress == 0.5


def test_jobs_without_a_lease_are_claimed_oldest_first_and_ended_ones_never(store: Store) -> None:
    """Jobs active before leases existed hold none: the first replica to look takes them."""
    older, newer, ended = (store.create_job(kind).job_id for kind in ("score", "retrain", "score"))
    store.update_job(ended, state=JobState.succeeded)
    assert store.claim_lapsed("replica-b", 60, kinds=["retrain"]) == newer
    assert store.claim_lapsed("replica-b", 60) == older
    assert store.claim_lapsed("replica-b", 60) is None
    assert not store.take_lease(ended, "replica-b", 60)


def test_the_process_a_replica_starts_takes_the_lease_over_from_it(store: Store) -> None:
    job = store.create_job("score", lease=("replica-a", 60)).job_id
    assert not store.take_lease(job, "child-of-b", 60, handed_by="replica-b")
    assert store.take_lease(job, "child-of-a", 60, handed_by="replica-a")
    assert store.renew_lease(job, "replica-a", 60) is None  # a's keeper lets it go
    assert store.renew_lease(job, "child-of-a", 60) == JobState.queued


def test_claimers_at_once_each_take_a_different_job(database_url: str, store: Store) -> None:
    """Four replicas sweep at the same instant: every lapsed job is claimed exactly once, and
    of four takers of one job exactly one wins."""
    jobs = {store.create_job("score", lease=("gone", SHORT)).job_id for _ in range(6)}
    contested = store.create_job("score", lease=("gone", SHORT)).job_id
    lapsed()
    replicas = 4
    took = at_once(database_url, replicas, lambda n, own: own.take_lease(contested, f"r{n}", 60))

    def sweep(replica: int, own: Store) -> list[str]:
        claimed: list[str] = []
        while (job_id := own.claim_lapsed(f"r{replica}", 60)) is not None:
            claimed.append(job_id)
        return claimed

    claimed = at_once(database_url, replicas, sweep)
    assert sum(took.values()) == 1
    everything = [job_id for jobs_of in claimed.values() for job_id in jobs_of]
    assert sorted(everything) == sorted(jobs)
    for replica, jobs_of in claimed.items():
        lease = store.lease(jobs_of[0]) if jobs_of else None
        assert lease is None or lease.owner == f"r{replica}"


def test_a_keeper_holds_a_lease_past_its_length_and_says_when_another_took_it(
    store: Store,
) -> None:
    kept = store.create_job("score", lease=("replica-a", 1.0)).job_id
    lost: list[str] = []
    keeper = LeaseKeeper(store, "replica-a", 1.0, 0.2, on_lost=lost.append)
    keeper.hold(kept)
    try:
        time.sleep(2.0)
        assert store.claim_lapsed("replica-b", 60) is None  # renewed all along
        assert keeper.held() == [kept] and not lost

        taken = store.create_job("score", lease=("replica-a", SHORT)).job_id
        lapsed()  # the store out of reach: no renewal before it lapsed
        assert store.claim_lapsed("replica-b", 60) == taken
        keeper.hold(taken)
        deadline = time.monotonic() + 10
        while not lost:
            assert time.monotonic() < deadline, "the keeper never noticed"
            time.sleep(0.05)
        assert lost == [taken] and keeper.held() == [kept]

        store.update_job(kept, state=JobState.succeeded)
        deadline = time.monotonic() + 10
        while keeper.held():  # an ended job's lease is let go, not lost
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert lost == [taken]
    finally:
        keeper.close()


def test_a_lease_renewed_less_often_than_twice_per_length_is_refused() -> None:
    with pytest.raises(ValidationError, match="job_lease_renew_seconds"):
        DataSettings(job_lease_seconds=10, job_lease_renew_seconds=6)
    with pytest.raises(ValidationError, match="job_lease_seconds"):
        ServiceSettings(job_lease_seconds=0.5, job_lease_renew_seconds=0.1)
    assert DataSettings(job_lease_seconds=10, job_lease_renew_seconds=5).job_lease_seconds == 10


def test_a_replica_fails_the_jobs_it_cannot_resume_once_their_lease_lapses(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    """A retrain whose process died is failed, so that the next may start; so is a batch job
    whose upload was cut short, and one whose process died at every takeover. A live lease is
    left alone."""
    settings = ServiceSettings(data_dir=tmp_path / "shared", database_url=database_url)
    launcher = JobLauncher(settings, store)
    try:
        retrain = store.create_job("retrain", lease=("gone", SHORT)).job_id
        upload = store.create_job("score", lease=("gone", SHORT)).job_id
        doomed = store.create_job(
            "score", lease=("gone", SHORT), command=["score", "backlog.csv"]
        ).job_id
        for takeover in range(1, MAX_TAKEOVERS + 1):  # each replica's process died in turn
            lapsed()
            assert store.claim_lapsed(f"replica-{takeover}", SHORT, kinds=["score"]) == upload
            assert store.claim_lapsed(f"replica-{takeover}", SHORT, kinds=["score"]) == doomed
            assert store.lease(doomed).takeovers == takeover  # type: ignore[union-attr]
        alive = store.create_job("score", lease=("elsewhere", 60)).job_id
        lapsed()
        assert sorted(launcher.recover()) == sorted(
            [(retrain, "failed"), (upload, "failed"), (doomed, "failed")]
        )
        for job_id, cause in (
            (retrain, "renewed its lease no more"),
            (upload, "cut short"),
            (doomed, f"died {MAX_TAKEOVERS + 1} times"),
        ):
            job = store.job(job_id)
            assert job is not None and job.state == JobState.failed and cause in (job.error or "")
        assert store.job(alive).state == JobState.queued  # type: ignore[union-attr]
        store.create_job("retrain")  # the failed retrain no longer blocks the next
    finally:
        launcher.close()


def test_a_replica_renews_the_lease_of_an_upload_in_flight(store: Store, tmp_path: Path) -> None:
    settings = ServiceSettings(
        data_dir=tmp_path / "shared", job_lease_seconds=1.0, job_lease_renew_seconds=0.2
    )
    launcher = JobLauncher(settings, store)
    try:
        job = launcher.create_scoring(None, "uploading backlog.csv")
        time.sleep(2.0)
        assert store.claim_lapsed("replica-b", 60) is None
        held = store.lease(job.job_id)
        assert held is not None and held.owner == launcher.replica == process_owner()
    finally:
        launcher.close()
    time.sleep(1.2)  # a replica gone: its upload's lease lapses
    assert store.claim_lapsed("replica-b", 60) == job.job_id


# A job's process, as `claims score` and `claims retrain` report: it works until stopped.
WORKER = """
import sys, time
from claims.store import Store
from claims.store.job_progress import reporting
with reporting(Store(sys.argv[1]), "score", sys.argv[2]):
    print("working", flush=True)
    while True:
        time.sleep(0.05)
"""


def test_a_jobs_process_holds_its_lease_and_stops_once_another_has_it(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    """The process takes the lease over from the replica that started it and renews it past
    its length; when another process takes the job, it stops at once, and leaves the job's
    state to the new holder. Killed, its lease lapses."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "CLAIMS_DATA_DIR": str(tmp_path / "shared"),
        "CLAIMS_JOB_LEASE_SECONDS": "2",
        "CLAIMS_JOB_LEASE_RENEW_SECONDS": "0.5",
        HANDED_BY: "replica-a",
    }
    for ending in ("taken", "killed"):
        job = store.create_job("score", lease=("replica-a", 60)).job_id
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, database_url, job],
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert worker.stdout is not None and worker.stdout.readline() == "working\n"
            held = store.lease(job)
            assert held is not None and held.owner.split(":")[1] == str(worker.pid)
            assert store.renew_lease(job, "replica-a", 60) is None  # handed over
            time.sleep(3)
            assert worker.poll() is None and store.claim_lapsed("replica-b", 60) is None
            if ending == "taken":
                assert store.take_lease(job, "replica-b", 60, handed_by=held.owner)
                assert worker.wait(timeout=10) == LEASE_LOST_EXIT
                assert store.job(job).state == JobState.running  # type: ignore[union-attr]
            else:
                worker.kill()
                worker.wait()
                wait_for("the lease never lapsed", lambda: store.claim_lapsed("b", 60), 5)
        finally:
            worker.kill()
            worker.wait()


LEASE, RENEW = 3.0, 1.0
ROWS, CHUNK_ROWS = 480, 40
LINEAGE = Lineage(
    origin="registered", training_data_file="c.csv", training_data_sha256="0", training_rows=1
)


def backlog_csv() -> bytes:
    frame = generate_claims(ROWS, seed=5).drop(columns=["claim_type", "severity", "siu_referral"])
    frame = frame.astype({"claimant_age": object})
    frame.loc[[7, 300], "claimant_age"] = 140  # rejected: ages stop at 120
    return frame.to_csv(index=False).encode()


@pytest.mark.slow
def test_a_batch_job_whose_replica_is_killed_is_finished_by_another(
    database_url: str, trained_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas A and B share one database and one data path. A takes a batch job and is killed
    (kill -9, with the job's process, as a pod or a machine goes) once some chunks are done. B
    takes the job over once its lease lapses, resumes at the first unfinished chunk, and the
    output holds every input row exactly once, scored or rejected."""
    shared = tmp_path / "shared"
    store = Store(database_url)
    registry = Registry(shared / "registry", store)
    version = registry.register(trained_checkpoint, LINEAGE).version
    registry.promote(version, "for batch jobs")
    for name, value in (
        ("CLAIMS_DATABASE_URL", database_url),
        ("CLAIMS_JOB_LEASE_SECONDS", LEASE),
        ("CLAIMS_JOB_LEASE_RENEW_SECONDS", RENEW),
        ("CLAIMS_BATCH_CHUNK_ROWS", CHUNK_ROWS),
    ):
        monkeypatch.setenv(name, str(value))
    with running_replicas(shared, 2) as ((a, a_url), (b, b_url)):
        upload = {"file": ("backlog.csv", backlog_csv(), "text/csv")}
        response = httpx.post(f"{a_url}/v1/batch-jobs", files=upload, timeout=60)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        parts = shared / "batch" / job_id / ".output.csv.parts"
        wait_for("no chunk was scored", lambda: any(parts.glob("*.done.json")), 240)

        worker = int((shared / "jobs" / f"{job_id}.pid").read_text())
        a.kill()  # the replica and the job's process, as a pod goes
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        done_at_kill = len(list(parts.glob("*.done.json")))
        assert done_at_kill < ROWS // CHUNK_ROWS, "the job ended before the replica was killed"
        held = store.lease(job_id)
        assert held is not None and held.owner.split(":")[1] == str(worker)

        def taken_over() -> bool:
            lease = store.lease(job_id)
            return lease is not None and lease.owner.split(":")[1] != str(worker)

        wait_for("no replica took the job over", taken_over, LEASE + 60)
        # the lease lapses, then B's next look claims it: within the lease and a renewal
        # interval, plus what a loaded 2-core machine adds
        assert time.monotonic() - killed < LEASE + RENEW + 10

        def ended() -> bool:
            job = httpx.get(f"{b_url}/v1/batch-jobs/{job_id}", timeout=30).json()
            return job["state"] in {"succeeded", "failed"}

        wait_for("B did not finish the job", ended, 240)
        job = httpx.get(f"{b_url}/v1/batch-jobs/{job_id}", timeout=30).json()
        assert job["state"] == "succeeded", job
        result = job["result"]
        assert result["resumed_chunks"] >= done_at_kill > 0  # no finished chunk scored again
        assert result["rows"] == result["scored"] + result["rejected"] == ROWS
        assert result["rejected"] == 2

        scores = httpx.get(f"{b_url}/v1/batch-jobs/{job_id}/results", timeout=60)
        rejects = httpx.get(f"{b_url}/v1/batch-jobs/{job_id}/rejects", timeout=60)
        scored_rows = list(pd.read_csv(io.BytesIO(scores.content))["row"])
        rejected_rows = list(pd.read_csv(io.BytesIO(rejects.content))["row"])
        assert len(scored_rows) == ROWS - 2 and sorted(rejected_rows) == [8, 301]
        assert sorted(scored_rows + rejected_rows) == list(range(1, ROWS + 1))  # each once
        assert b.poll() is None
    store.close()
