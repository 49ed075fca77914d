"""Replicas that share one store: what one replica does, the others see, and what must happen
once happens once however many replicas are asked at the same moment. On SQLite and on
PostgreSQL (where CLAIMS_TEST_DATABASE_URL names a server), with real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from claims.store import ActiveJobExists, Store
from schemas.jobs import JobState
from tests.conftest import empty_database_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with empty_database_url(request.param, tmp_path / "shared.db") as url:
        yield url


def test_the_database_refuses_a_second_active_retrain(database_url: str) -> None:
    store = Store(database_url)
    try:
        first = store.create_job("retrain")
        with pytest.raises(ActiveJobExists):
            store.create_job("retrain")
        store.update_job(first.job_id, state=JobState.running)
        with pytest.raises(ActiveJobExists):
            store.create_job("retrain")
        store.create_job("score")  # other kinds are not limited by it
        store.create_job("score")
        store.update_job(first.job_id, state=JobState.failed, error="gone")
        second = store.create_job("retrain")  # once it has ended, the next may start
        assert [job.job_id for job in store.jobs(kind="retrain")] == [
            second.job_id,
            first.job_id,
        ]
    finally:
        store.close()


# Each replica: its own data directory (so no file lock is shared), one database; it waits for
# the same instant as the other, then asks for a retrain.
REPLICA = """
import sys, time
from pathlib import Path
from claims.store import Store
from serving.batch.jobs import JobLauncher, RetrainRunning
from serving.settings import ServiceSettings

data_dir, url, history, at = Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
settings = ServiceSettings(data_dir=data_dir, database_url=url, training_data=history)
launcher = JobLauncher(settings, Store(url))
time.sleep(max(0.0, at - time.time()))
try:
    print("started", launcher.start_retraining().job_id, flush=True)
except RetrainRunning as error:
    print("refused", error, flush=True)
"""


def test_two_replicas_asked_at_once_start_exactly_one_retrain(
    database_url: str, tmp_path: Path
) -> None:
    Store(database_url).close()  # migrated once, so neither replica waits on the other for it
    history = tmp_path / "history.csv"
    history.write_text("claim_id\n")
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    at = time.time() + 40  # after both have imported what they need, on a loaded machine
    shared = [database_url, str(history), str(at)]
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, str(tmp_path / name), *shared],
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for name in ("replica-a", "replica-b")
    ]
    answers = [replica.communicate(timeout=120)[0].split()[0] for replica in replicas]
    assert sorted(answers) == ["refused", "started"]
    store = Store(database_url)
    try:
        assert len(store.jobs(kind="retrain")) == 1
    finally:
        store.close()
