"""The HTTP service through its ASGI app, with a really fine-tuned checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import ServiceSettings

CLAIM = {
    "claim_id": "CLM-77",
    "description": "Clmt states IV rear-ended at light by OV. PD to rear bumper, no inj.",
    "loss_date": "2024-06-01",
    "reported_date": "2024-06-02",
    "line_of_business": "auto",
    "initial_estimate": 1800,
    "currency": "USD",
    "channel": "phone",
    "attributes": {"region": "north"},
}


@pytest.fixture(scope="module")
def client(trained_checkpoint: Path) -> Iterator[TestClient]:
    app = create_app(ServiceSettings(model_dir=trained_checkpoint, max_body_bytes=64 * 1024))
    with TestClient(app) as test_client:
        yield test_client


def test_triage_answers_predictions_decision_and_who_served(client: TestClient) -> None:
    response = client.post("/v1/triage", json=CLAIM)
    assert response.status_code == 200
    body = response.json()
    assert body["claim_id"] == "CLM-77"
    assert set(body["predictions"]) == {"claim_type", "severity", "siu_referral"}
    severity = body["predictions"]["severity"]
    assert severity["label"] in {"low", "medium", "high", "severe"}
    assert abs(sum(severity["probabilities"].values()) - 1) < 1e-4
    assert severity["probability"] == max(severity["probabilities"].values())
    assert len(severity["alternatives"]) == 3
    assert body["decision"]["route"] in {"siu", "complex", "fast_track", "standard"}
    assert body["decision"]["policy_version"] == "synthetic-1"
    assert body["served_by"]["source"] == "tuned"
    assert body["served_by"]["model_version"].startswith("sp-")
    assert body["served_by"]["fallback_reason"] is None


def test_a_batch_answers_every_claim_in_order(client: TestClient) -> None:
    claims = [{**CLAIM, "claim_id": f"CLM-{i}"} for i in range(20)]
    response = client.post("/v1/triage/batch", json={"claims": claims})
    assert response.status_code == 200
    assert [r["claim_id"] for r in response.json()["results"]] == [c["claim_id"] for c in claims]


def test_a_batch_and_a_single_request_agree(client: TestClient) -> None:
    single = client.post("/v1/triage", json=CLAIM).json()
    other = {**CLAIM, "claim_id": "X", "description": "Kitchen fire, smoke everywhere. " * 8}
    batch = client.post("/v1/triage/batch", json={"claims": [other, CLAIM]}).json()["results"][1]
    for task, prediction in single["predictions"].items():
        assert batch["predictions"][task]["probabilities"] == pytest.approx(
            prediction["probabilities"], abs=1e-5
        )


def test_bad_fields_get_422_with_the_field_path(client: TestClient) -> None:
    response = client.post(
        "/v1/triage", json={**CLAIM, "reported_date": "2024-05-01", "initial_estimate": -5}
    )
    assert response.status_code == 422
    locations = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert {("body", "reported_date"), ("body", "initial_estimate")} <= locations


def test_a_structured_field_of_the_wrong_kind_gets_422(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config that reads the `wages` attribute as a number refuses words there."""
    from claims.model.features import NumericScaling

    predictor = client.app.state.models.serving.tuned.predictor
    wages = NumericScaling(name="wages", center=0.0, scale=1.0)
    features = predictor.features.model_copy(
        update={"numeric": [*predictor.features.numeric, wages]}
    )
    monkeypatch.setattr(predictor.preparer, "features", features)
    response = client.post("/v1/triage", json={**CLAIM, "attributes": {"wages": "plenty"}})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "attributes"] and "wages" in detail["msg"]


def test_attributes_may_not_shadow_claim_fields(client: TestClient) -> None:
    response = client.post("/v1/triage", json={**CLAIM, "attributes": {"prior_claims": 3}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "attributes"]


def test_a_batch_over_256_claims_gets_422(client: TestClient) -> None:
    claims = [{"claim_id": f"C{i}", "description": "x"} for i in range(257)]
    response = client.post("/v1/triage/batch", json={"claims": claims})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "claims"]


def test_an_oversized_body_gets_413(client: TestClient) -> None:
    response = client.post("/v1/triage", json={**CLAIM, "description": "x" * 70_000})
    assert response.status_code == 413


def test_health_readiness_and_the_active_model(client: TestClient, trained_checkpoint) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {
        "status": "ready",
        "source": "tuned",
        "reason": None,
        "auth": "disabled",  # the tests' development mode; test_auth turns keys on
    }
    active = client.get("/v1/models/active").json()
    assert active["source"] == "tuned" and active["tuned"]["strategy"] == "full"
    assert active["tuned"]["checkpoint"] == str(trained_checkpoint)
    assert active["tasks"]["severity"] == ["low", "medium", "high", "severe"]


def test_a_failing_specialist_is_answered_by_the_base_model(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = client.app.state.models.serving.tuned.predictor

    def broken(claims):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(predictor, "predict_proba", broken)
    body = client.post("/v1/triage", json=CLAIM).json()
    assert body["served_by"]["source"] == "base"
    assert body["served_by"]["fallback_reason"] == "inference_error: RuntimeError"
    assert body["decision"]["needs_review"]


def test_without_a_checkpoint_the_service_is_degraded_but_answers() -> None:
    with TestClient(create_app(ServiceSettings())) as client:
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded" and ready["reason"].startswith("checkpoint_missing")
        body = client.post("/v1/triage", json=CLAIM).json()
        assert body["served_by"]["source"] == "base"
        assert body["served_by"]["model_version"].startswith("base:sentence-transformers/")
        assert client.get("/v1/models/active").json()["tuned"] is None
