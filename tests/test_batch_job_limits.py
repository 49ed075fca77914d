"""Batch jobs under abuse: caps on jobs at once, owners, retention; and one retrain at a time."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from claims.store import Store
from claims.store.data_settings import DataSettings
from claims.store.orm import Job
from claims.store.registry import Registry
from schemas.auth import Role
from schemas.jobs import JobState
from schemas.registry import Lineage
from serving.app import create_app
from serving.settings import ServiceSettings
from tests.helpers import upload_scope

BACKLOG = b"claim_id,description\nB-1,Hail dented the roof of the car.\n"


def upload(client: TestClient, key: str | None = None, name: str = "backlog.csv"):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(
        "/v1/batch-jobs", files={"file": (name, BACKLOG, "text/csv")}, headers=headers
    )


def stop_jobs(data_dir: Path) -> None:
    """The tests judge who may start and read jobs, not the scoring: their processes go."""
    for pid_file in (data_dir / "jobs").glob("*.pid"):
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@pytest.fixture
def champion(trained_checkpoint: Path, data_dir: Path) -> Iterator[str]:
    registry = Registry.from_settings(DataSettings())
    lineage = Lineage(
        origin="registered", training_data_file="c.csv", training_data_sha256="0", training_rows=1
    )
    version = registry.register(trained_checkpoint, lineage).version
    registry.promote(version, "for batch jobs")
    yield version
    stop_jobs(data_dir)


@pytest.fixture
def keys(data_dir: Path) -> dict[str, str]:
    store = Store.from_settings(DataSettings(data_dir=data_dir))
    made = {
        name: store.create_key(name, role)[1]
        for name, role in (
            ("alice", Role.triage),
            ("bob", Role.triage),
            ("carol", Role.triage),
            ("admin", Role.admin),
        )
    }
    store.close()
    return made


def test_jobs_at_once_are_capped_per_key_and_in_all(champion: str, keys: dict[str, str]) -> None:
    settings = ServiceSettings(auth=True, batch_jobs_per_key=1, batch_jobs_total=2)
    with TestClient(create_app(settings)) as client:
        first = upload(client, keys["alice"])
        assert first.status_code == 202, first.text
        again = upload(client, keys["alice"])
        assert again.status_code == 429 and int(again.headers["Retry-After"]) > 0
        assert "this key" in again.json()["detail"]
        assert upload(client, keys["bob"]).status_code == 202
        full = upload(client, keys["carol"])
        assert full.status_code == 429 and "at once" in full.json()["detail"]
        assert len(client.app.state.store.jobs(kind="score")) == 2


def test_a_job_is_read_only_by_its_owner_or_an_admin(champion: str, keys: dict[str, str]) -> None:
    with TestClient(create_app(ServiceSettings(auth=True))) as client:
        job_id = upload(client, keys["alice"]).json()["job_id"]
        for name, expected in (("alice", 200), ("admin", 200), ("bob", 404)):
            headers = {"Authorization": f"Bearer {keys[name]}"}
            response = client.get(f"/v1/batch-jobs/{job_id}", headers=headers)
            assert response.status_code == expected, (name, response.text)
            for part in ("results", "rejects"):
                response = client.get(f"/v1/batch-jobs/{job_id}/{part}", headers=headers)
                assert response.status_code == (409 if expected == 200 else 404), name
        # the owner is the store's, not a file's: any replica checks it
        store = client.app.state.store
        (alice_key,) = [key.key_id for key in store.api_keys() if key.name == "alice"]
        assert store.job_owner(job_id) == alice_key
        assert sorted(
            path.suffix for path in client.app.state.launcher.jobs_dir.glob(f"{job_id}.*")
        ) == [".log", ".pid"]
        # a job without a recorded owner (from before owners were kept) is an admin's only
        with store.writing() as session:
            session.execute(update(Job).where(Job.job_id == job_id).values(owner_key=None))
        alice = {"Authorization": f"Bearer {keys['alice']}"}
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        assert client.get(f"/v1/batch-jobs/{job_id}", headers=alice).status_code == 404
        assert client.get(f"/v1/batch-jobs/{job_id}", headers=admin).status_code == 200


def test_a_capped_upload_is_refused_before_it_is_read(champion: str, keys: dict[str, str]) -> None:
    """Through the ASGI app itself, which pulls the body message by message."""
    settings = ServiceSettings(auth=True, batch_jobs_per_key=1)
    with TestClient(create_app(settings)) as client:
        assert upload(client, keys["alice"]).status_code == 202
        pulled = 0
        answer: list[dict] = []

        async def receive() -> dict:
            nonlocal pulled
            if pulled >= 16 << 20:
                return {"type": "http.disconnect"}
            pulled += 1 << 16
            return {"type": "http.request", "body": b"x" * (1 << 16), "more_body": True}

        async def send(message: dict) -> None:
            answer.append(message)

        headers = {
            "host": "testserver",
            "authorization": f"Bearer {keys['alice']}",
            "content-type": "multipart/form-data; boundary=b0undary",
            "content-length": str(300 << 20),
        }
        scope = upload_scope(headers)
        client.portal.call(client.app, scope, receive, send)
        assert answer[0]["status"] == 429
        assert pulled == 0


def finished_job(client: TestClient, owner: str | None) -> str:
    """A scoring job as one that ended leaves it: its upload, output, rejects and log."""
    launcher = client.app.state.launcher
    job = launcher.create_scoring(owner, "uploading backlog.csv")
    folder = launcher.batch_folder(job.job_id)
    folder.mkdir(parents=True)
    for name in ("input.csv", "output.csv", "output.rejects.csv"):
        (folder / name).write_bytes(BACKLOG)
    launcher.jobs_dir.mkdir(parents=True, exist_ok=True)  # its process would have made it
    (launcher.jobs_dir / f"{job.job_id}.log").write_text("scored\n")
    result = {"output": str(folder / "output.csv"), "rejects": str(folder / "output.rejects.csv")}
    client.app.state.store.update_job(
        job.job_id, state=JobState.succeeded, progress=1.0, result=result
    )
    return job.job_id


def test_retention_deletes_old_uploads_outputs_and_narratives(data_dir: Path) -> None:
    settings = ServiceSettings(batch_retention_days=7, prediction_retention_days=30)
    with TestClient(create_app(settings)) as client:
        launcher, store = client.app.state.launcher, client.app.state.store
        job_id = finished_job(client, None)
        claim = {"claim_id": "R-1", "description": "Jane Doe of 12 Elm Street slipped on ice."}
        prediction = client.post("/v1/triage", json=claim).json()["prediction_id"]
        item = {
            "feedback_id": "fb-retained",
            "prediction_id": prediction,
            "labels": {"severity": "high"},
            "reason_code": "x",
            "adjuster_id": "adj-1",
            "confirmed": True,
        }
        assert client.post("/v1/feedback", json=item).status_code == 201
        assert client.get(f"/v1/batch-jobs/{job_id}/results").status_code == 200

        now = datetime.now(UTC)
        assert launcher.forget_old(now + timedelta(days=6)) == (0, 0)  # nothing is old yet
        assert launcher.batch_folder(job_id).is_dir()
        assert store.prediction(prediction) is not None

        assert launcher.forget_old(now + timedelta(days=8)) == (1, 0)
        assert not launcher.batch_folder(job_id).exists()
        assert not (launcher.jobs_dir / f"{job_id}.log").exists()
        gone = client.get(f"/v1/batch-jobs/{job_id}/results")
        assert gone.status_code == 410 and "7 days" in gone.json()["detail"]
        assert client.get(f"/v1/batch-jobs/{job_id}").json()["state"] == "succeeded"

        assert launcher.forget_old(now + timedelta(days=31)) == (0, 1)
        assert store.prediction(prediction) is None
        assert store.latest_claims(["R-1"]) == {}
        (kept,) = client.get("/v1/feedback", params={"claim_id": "R-1"}).json()["items"]
        assert kept["feedback_id"] == "fb-retained" and kept["labels"] == {"severity": "high"}
        assert kept["prediction_id"] is None


def test_a_running_job_is_never_deleted(data_dir: Path) -> None:
    settings = ServiceSettings(batch_retention_days=1)
    with TestClient(create_app(settings)) as client:
        launcher = client.app.state.launcher
        job = launcher.create_scoring(None, "uploading backlog.csv")
        launcher.batch_folder(job.job_id).mkdir(parents=True)
        (launcher.batch_folder(job.job_id) / "input.csv").write_bytes(BACKLOG)
        assert launcher.forget_old(datetime.now(UTC) + timedelta(days=30)) == (0, 0)
        assert (launcher.batch_folder(job.job_id) / "input.csv").is_file()


def test_two_retrains_at_once_start_one_job(claims_csv: Path, data_dir: Path) -> None:
    settings = ServiceSettings(training_data=claims_csv)
    attempts = 6
    start = threading.Barrier(attempts)
    statuses: list[int] = []
    try:
        with TestClient(create_app(settings)) as client:

            def retrain() -> None:
                start.wait()
                statuses.append(client.post("/v1/retrain").status_code)

            threads = [threading.Thread(target=retrain) for _ in range(attempts)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert len(client.app.state.store.jobs(kind="retrain")) == 1
    finally:
        stop_jobs(data_dir)
    assert sorted(statuses) == [202] + [409] * (attempts - 1)


def test_a_form_that_is_not_one_file_gets_422_naming_it(champion: str) -> None:
    with TestClient(create_app(ServiceSettings())) as client:
        two = [("file", ("a.csv", BACKLOG, "text/csv")), ("file", ("b.csv", BACKLOG, "text/csv"))]
        for files in (two, {"other": ("a.csv", BACKLOG, "text/csv")}):
            response = client.post("/v1/batch-jobs", files=files)
            assert response.status_code == 422, response.text
            assert response.json()["detail"][0]["loc"] == ["body", "file"]
        broken = client.post(
            "/v1/batch-jobs",
            content=b"--b0undary\r\nContent-Disposition: form-data; name=",
            headers={"content-type": "multipart/form-data; boundary=b0undary"},
        )
        assert broken.status_code == 422, broken.text
        assert not client.app.state.store.jobs(kind="score")
