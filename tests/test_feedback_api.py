"""Feedback, retraining jobs and the registry through the HTTP service."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from claims.store.data_settings import DataSettings
from claims.store.registry import Registry
from schemas.registry import Lineage
from serving.app import create_app
from serving.settings import ServiceSettings
from tests.helpers import renamed_checkpoint

CLAIM = {
    "claim_id": "CLM-501",
    "description": "Insd reports burst pipe under kitchen sink, water through the floor.",
    "loss_date": "2024-03-02",
    "line_of_business": "home",
}
LINEAGE = Lineage(
    origin="registered",
    training_data_file="claims.csv",
    training_data_sha256="0" * 64,
    training_rows=480,
)


def correction(feedback_id: str, **fields: object) -> dict:
    return {
        "feedback_id": feedback_id,
        "labels": {"claim_type": "water_damage"},
        "reason_code": "misclassified",
        "adjuster_id": "adj-3",
        **fields,
    }


@pytest.fixture(scope="module")
def client(trained_checkpoint: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServiceSettings(model_dir=trained_checkpoint))) as test_client:
        yield test_client


def test_every_answer_is_recorded_under_its_prediction_id(client: TestClient) -> None:
    body = client.post("/v1/triage", json=CLAIM).json()
    record = client.app.state.store.prediction(body["prediction_id"])
    assert record.claim.claim_id == "CLM-501"
    assert record.result.model_dump(mode="json") == body
    batch = client.post("/v1/triage/batch", json={"claims": [CLAIM, CLAIM]}).json()["results"]
    assert len({r["prediction_id"] for r in batch} | {body["prediction_id"]}) == 3


def test_feedback_joins_its_prediction_and_is_stored_once(client: TestClient) -> None:
    prediction = client.post("/v1/triage", json=CLAIM).json()
    item = correction("fb-once", prediction_id=prediction["prediction_id"], confirmed=True)
    first = client.post("/v1/feedback", json=item)
    assert first.status_code == 201
    stored = first.json()
    assert stored["claim_id"] == "CLM-501"
    assert stored["model_version"] == prediction["served_by"]["model_version"]
    again = client.post("/v1/feedback", json=item)
    assert (again.status_code, again.json()) == (200, stored)
    changed = client.post("/v1/feedback", json={**item, "labels": {"claim_type": "fire"}})
    assert changed.status_code == 409
    listed = client.get("/v1/feedback", params={"claim_id": "CLM-501"}).json()["items"]
    assert [i["feedback_id"] for i in listed].count("fb-once") == 1


@pytest.mark.parametrize(
    ("fields", "location", "words"),
    [
        ({"labels": {"colour": "red"}, "claim_id": "C1"}, ["body", "labels", "colour"], "task"),
        (
            {"labels": {"claim_type": "meteor"}, "claim_id": "C1"},
            ["body", "labels", "claim_type"],
            "meteor",
        ),
        ({"prediction_id": "pr-nowhere"}, ["body", "prediction_id"], "pr-nowhere"),
        ({}, ["body"], "prediction_id or claim_id"),
        ({"claim_id": "C1", "labels": {}}, ["body", "labels"], "at least 1"),
    ],
)
def test_bad_feedback_gets_422_naming_the_field(
    client: TestClient, fields: dict, location: list[str], words: str
) -> None:
    response = client.post("/v1/feedback", json=correction("fb-bad", **fields))
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"][: len(location)] == location and words in error["msg"]


def test_feedback_is_listed_by_claim_task_adjuster_time_and_confirmation(
    client: TestClient,
) -> None:
    client.post("/v1/feedback", json=correction("fb-a", claim_id="F-1", confirmed=True))
    client.post(
        "/v1/feedback",
        json=correction("fb-b", claim_id="F-2", adjuster_id="adj-9", labels={"severity": "high"}),
    )

    def ids(**params: object) -> list[str]:
        response = client.get("/v1/feedback", params=params)
        assert response.status_code == 200, response.text
        return [item["feedback_id"] for item in response.json()["items"]]

    assert ids(claim_id="F-2") == ["fb-b"]
    assert ids(adjuster_id="adj-9") == ["fb-b"]
    assert "fb-a" in ids(task="claim_type") and "fb-b" not in ids(task="claim_type")
    assert "fb-b" in ids(confirmed=False) and "fb-a" not in ids(confirmed=False)
    assert ids(since="2999-01-01T00:00:00Z") == []
    assert {"fb-a", "fb-b"} <= set(ids(until="2999-01-01T00:00:00Z"))
    assert client.get("/v1/feedback", params={"since": "2024-01-01"}).status_code == 422
    assert len(ids(limit=1)) == 1


def test_retraining_needs_historical_claims_and_unknown_jobs_are_404(client: TestClient) -> None:
    response = client.post("/v1/retrain")
    assert response.status_code == 409 and "CLAIMS_TRAINING_DATA" in response.json()["detail"]
    assert client.get("/v1/retrain/job-nowhere").status_code == 404


def test_registry_errors_are_clear(client: TestClient) -> None:
    assert client.get("/v1/models").json() == {"items": []}
    assert client.get("/v1/models/sp-nowhere").status_code == 404
    assert client.post("/v1/models/sp-nowhere/promote", json={"reason": "x"}).status_code == 404
    assert client.post("/v1/models/rollback", json={"reason": "x"}).status_code == 409


def test_a_promotion_is_followed_without_failing_a_request(
    trained_checkpoint: Path, data_dir: Path, tmp_path: Path
) -> None:
    registry = Registry.from_settings(DataSettings())
    first = registry.register(trained_checkpoint, LINEAGE).version
    second = registry.register(
        renamed_checkpoint(trained_checkpoint, tmp_path / "b", "sp-000000000002"), LINEAGE
    ).version
    registry.promote(first, "initial")
    with TestClient(create_app(ServiceSettings(reload_interval=0.05))) as client:
        assert client.get("/v1/models/active").json()["registry_version"] == first
        statuses, versions, done = [], set(), threading.Event()

        def keep_asking() -> None:
            while not done.is_set():
                response = client.post("/v1/triage", json=CLAIM)
                statuses.append(response.status_code)
                versions.add(response.json()["served_by"]["model_version"])

        askers = [threading.Thread(target=keep_asking) for _ in range(4)]
        for asker in askers:
            asker.start()
        registry.promote(second, "as a promotion from the CLI would")
        deadline = time.monotonic() + 60
        while client.get("/v1/models/active").json()["registry_version"] != second:
            assert time.monotonic() < deadline, "the service never switched"
        for _ in range(10):
            client.post("/v1/triage", json=CLAIM)
        done.set()
        for asker in askers:
            asker.join()
        active = client.get("/v1/models/active").json()
    assert set(statuses) == {200} and len(statuses) > 4
    assert versions == {first, second}
    assert active["follows_registry"] and active["reload_error"] is None
