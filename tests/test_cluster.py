"""Replicas that share one store: what one replica does, the others see, and what must happen
once happens once however many replicas are asked at the same moment. On SQLite and on
PostgreSQL (where CLAIMS_TEST_DATABASE_URL names a server), with real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from claims.store import ActiveJobExists, Store
from claims.store.registry import Registry
from schemas.jobs import JobState
from schemas.registry import Lineage
from tests.helpers import (
    empty_database_url,
    renamed_checkpoint,
    running_replicas,
    running_service,
)

ROOT = Path(__file__).resolve().parents[1]


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


# Each replica: its own data directory (so no file lock is shared), one database; once ready it
# waits for the word on its standard input, given to both at once, then asks for a retrain.
REPLICA = """
import sys
from pathlib import Path
from claims.store import Store
from serving.batch.jobs import JobLauncher, RetrainRunning
from serving.settings import ServiceSettings

data_dir, url, history = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
settings = ServiceSettings(data_dir=data_dir, database_url=url, training_data=history)
launcher = JobLauncher(settings, Store(url))
print("ready", flush=True)
sys.stdin.readline()
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
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, str(tmp_path / name), database_url, str(history)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for name in ("replica-a", "replica-b")
    ]
    for replica in replicas:  # both have imported what they need and opened the store
        assert replica.stdout is not None and replica.stdout.readline().strip() == "ready"
    for replica in replicas:
        assert replica.stdin is not None
        replica.stdin.write("go\n")
        replica.stdin.flush()
    answers = [replica.communicate(timeout=120)[0].split()[0] for replica in replicas]
    assert sorted(answers) == ["refused", "started"]
    store = Store(database_url)
    try:
        assert len(store.jobs(kind="retrain")) == 1
    finally:
        store.close()


LINEAGE = Lineage(
    origin="registered", training_data_file="c.csv", training_data_sha256="0", training_rows=1
)
CLAIM = {"claim_id": "C-1", "description": "A pipe burst in the kitchen and flooded the floor."}
RELOAD_INTERVAL = 0.5


def active_version(url: str) -> str | None:
    return httpx.get(f"{url}/v1/models/active", timeout=30).json()["registry_version"]


def test_a_promotion_through_one_replica_is_served_by_every_replica(
    trained_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas A and B share one PostgreSQL and one data path. A promotion through A's API is
    served by B within the reload interval, while a client sending to both in turn sees no
    error and only the two versions; a replica C started afterwards, which has seen nothing of
    the registry, serves the new champion from its first answer."""
    with empty_database_url("postgresql", tmp_path / "unused.db") as url:
        shared = tmp_path / "shared"
        registry = Registry(shared / "registry", Store(url))
        first = registry.register(trained_checkpoint, LINEAGE).version
        second = registry.register(
            renamed_checkpoint(trained_checkpoint, tmp_path / "b", "sp-000000000002"), LINEAGE
        ).version
        registry.promote(first, "initial")
        monkeypatch.setenv("CLAIMS_DATABASE_URL", url)
        monkeypatch.setenv("CLAIMS_RELOAD_INTERVAL", str(RELOAD_INTERVAL))
        with running_replicas(shared, 2) as ((_, a), (_, b)):
            assert active_version(a) == active_version(b) == first

            statuses: list[int] = []
            versions: set[str] = set()
            done = threading.Event()

            def round_robin() -> None:
                with httpx.Client(timeout=30) as client:
                    while not done.is_set():
                        for replica in (a, b):
                            response = client.post(f"{replica}/v1/triage", json=CLAIM)
                            statuses.append(response.status_code)
                            versions.add(response.json()["served_by"]["model_version"])

            client = threading.Thread(target=round_robin)
            client.start()
            try:
                switch = httpx.post(
                    f"{a}/v1/models/{second}/promote", json={"reason": "via A"}, timeout=120
                )
                assert switch.status_code == 200
                assert switch.json()["registry_version"] == second  # A switched before answering
                promoted = time.monotonic()
                while active_version(b) != second:
                    assert time.monotonic() - promoted < 30, "B never followed the promotion"
                    time.sleep(0.05)
                followed = time.monotonic() - promoted
                time.sleep(1)  # requests on the new champion from both replicas
            finally:
                done.set()
                client.join()
            assert set(statuses) == {200} and len(statuses) > 4
            assert versions == {first, second}
            # the interval, plus loading the new model beside the old on a 2-core machine
            assert followed < RELOAD_INTERVAL + 20

            with running_service(shared) as (_, c):
                assert active_version(c) == second
                answer = httpx.post(f"{c}/v1/triage", json=CLAIM, timeout=30).json()
                assert answer["served_by"]["model_version"] == second


# Longer than the test waits for a switch: a replica that switches sooner was told, not looking.
NEVER_LOOKS = 300.0


def test_on_postgresql_a_promotion_reaches_the_other_replica_at_once_by_notice(
    trained_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas that look at the champion only every five minutes: a promotion through A is
    served by B within seconds, which only B hearing of the switch as it committed explains."""
    with empty_database_url("postgresql", tmp_path / "unused.db") as url:
        shared = tmp_path / "shared"
        store = Store(url)
        registry = Registry(shared / "registry", store)
        first = registry.register(trained_checkpoint, LINEAGE).version
        second = registry.register(
            renamed_checkpoint(trained_checkpoint, tmp_path / "b", "sp-000000000002"), LINEAGE
        ).version
        registry.promote(first, "initial")
        store.close()
        monkeypatch.setenv("CLAIMS_DATABASE_URL", url)
        monkeypatch.setenv("CLAIMS_RELOAD_INTERVAL", str(NEVER_LOOKS))
        with running_replicas(shared, 2) as ((_, a), (_, b)):
            assert active_version(a) == active_version(b) == first
            switch = httpx.post(
                f"{a}/v1/models/{second}/promote", json={"reason": "via A"}, timeout=120
            )
            assert switch.status_code == 200
            promoted = time.monotonic()
            while active_version(b) != second:
                # the notice, then loading the new model beside the old on a loaded machine
                assert time.monotonic() - promoted < 30, "B did not hear of the promotion"
                time.sleep(0.05)
