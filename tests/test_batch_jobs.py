"""Backlog scoring through the service: upload, follow, download, and survive a restart."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from claims.data.synthetic import generate_claims
from claims.store.registry import Registry
from schemas.registry import Lineage
from serving.app import create_app
from serving.settings import ServiceSettings

ROWS = 120


@pytest.fixture
def champion(trained_checkpoint: Path, data_dir: Path) -> str:
    registry = Registry(data_dir / "registry")
    lineage = Lineage(
        origin="registered", training_data_file="c.csv", training_data_sha256="0", training_rows=1
    )
    version = registry.register(trained_checkpoint, lineage).version
    registry.promote(version, "for batch jobs")
    return version


def backlog_csv() -> bytes:
    frame = generate_claims(ROWS, seed=8).drop(columns=["claim_type", "severity", "siu_referral"])
    frame = frame.astype({"claimant_age": object})
    frame.loc[3, "claimant_age"] = 140  # rejected: ages stop at 120
    return frame.to_csv(index=False).encode()


def finished(client: TestClient, job_id: str, seconds: float = 180) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(f"/v1/batch-jobs/{job_id}").json()
        if job["state"] in {"succeeded", "failed"}:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.25)


@pytest.mark.slow
def test_an_uploaded_backlog_is_scored_and_streamed_back(champion: str) -> None:
    with TestClient(create_app(ServiceSettings(scoring_workers=2))) as client:
        upload = {"file": ("backlog.csv", backlog_csv(), "text/csv")}
        response = client.post("/v1/batch-jobs", files=upload)
        assert response.status_code == 202, response.text
        job = finished(client, response.json()["job_id"])
        assert job["state"] == "succeeded", job
        assert (job["result"]["rows"], job["result"]["scored"]) == (ROWS, ROWS - 1)
        assert job["result"]["model_version"] == champion
        assert job["result"]["workers"] == 2  # the service's setting, not the command's default
        results = client.get(f"/v1/batch-jobs/{job['job_id']}/results")
        scores = pd.read_csv(io.BytesIO(results.content))
        assert len(scores) == ROWS - 1 and set(scores["model_version"]) == {champion}
        rejects = pd.read_csv(
            io.BytesIO(client.get(f"/v1/batch-jobs/{job['job_id']}/rejects").content)
        )
        assert list(rejects["row"]) == [4] and "claimant_age" in rejects["reason"][0]


def test_a_file_of_unknown_type_or_job_is_refused(champion: str) -> None:
    with TestClient(create_app(ServiceSettings())) as client:
        response = client.post("/v1/batch-jobs", files={"file": ("backlog.xlsx", b"x")})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "file"]
        assert client.get("/v1/batch-jobs/job-nowhere").status_code == 404
        assert client.get("/v1/batch-jobs/job-nowhere/results").status_code == 404


@pytest.mark.slow
def test_a_batch_job_survives_a_restart_of_the_service(champion: str, data_dir: Path) -> None:
    with TestClient(create_app(ServiceSettings())) as client:
        upload = {"file": ("backlog.csv", backlog_csv(), "text/csv")}
        job_id = client.post("/v1/batch-jobs", files=upload).json()["job_id"]
    pid = int((data_dir / "jobs" / f"{job_id}.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # the machine went down with the service
    os.waitpid(pid, 0)
    with TestClient(create_app(ServiceSettings())) as client:  # a new service resumes it
        job = finished(client, job_id)
    assert job["state"] == "succeeded", job
    assert job["result"]["rows"] == job["result"]["scored"] + job["result"]["rejected"] == ROWS


def test_an_upload_over_the_limit_gets_413(champion: str) -> None:
    with TestClient(create_app(ServiceSettings(max_upload_bytes=2048))) as client:
        upload = {"file": ("backlog.csv", backlog_csv(), "text/csv")}
        assert client.post("/v1/batch-jobs", files=upload).status_code == 413
        assert not client.app.state.store.jobs(kind="score")
