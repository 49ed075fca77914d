"""The review queue and stored answers through the HTTP service. The service runs on the base
model, whose answers all go to review, so no test here trains."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import ServiceSettings

CLAIM = {
    "claim_id": "CLM-R1",
    "description": "Insd reports kitchen fire from stove, smoke damage to upper cabinets.",
    "loss_date": "2024-03-02",
    "line_of_business": "home",
}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(ServiceSettings())) as test_client:
        yield test_client


def triaged(client: TestClient, claim_id: str, **fields: object) -> dict:
    response = client.post("/v1/triage", json={**CLAIM, "claim_id": claim_id, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def queue(client: TestClient, **params: object) -> dict:
    response = client.get("/v1/review-queue", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_stored_answer_comes_back_whole_with_its_feedback(client: TestClient) -> None:
    answer = triaged(client, "CLM-R1")
    detail = client.get(f"/v1/predictions/{answer['prediction_id']}").json()
    assert detail["result"] == answer
    assert detail["claim"]["description"] == CLAIM["description"]
    assert detail["model_version"] == answer["served_by"]["model_version"]
    assert detail["policy_version"] == answer["decision"]["policy_version"]
    assert detail["review"] == {"on_queue": True, "needs_review": True, "held_by": None}
    assert detail["feedback"] == []
    task, label = next(iter(answer["predictions"].items()))
    feedback = {
        "feedback_id": "fb-r1",
        "prediction_id": answer["prediction_id"],
        "labels": {task: label["label"]},
        "reason_code": "agree",
        "adjuster_id": "adj-1",
        "confirmed": True,
    }
    assert client.post("/v1/feedback", json=feedback).status_code == 201
    detail = client.get(f"/v1/predictions/{answer['prediction_id']}").json()
    assert [item["feedback_id"] for item in detail["feedback"]] == ["fb-r1"]
    assert detail["review"]["on_queue"] is False
    assert client.get("/v1/predictions/pr-nowhere").status_code == 404


def test_the_queue_lists_open_answers_oldest_first_and_filters(client: TestClient) -> None:
    first = triaged(client, "CLM-Q1")
    second = triaged(client, "CLM-Q2", line_of_business="motor")
    listed = queue(client)
    assert [item["prediction_id"] for item in listed["items"]] == [
        first["prediction_id"],
        second["prediction_id"],
    ]
    assert listed["total"] == 2
    assert listed["items"][0]["review_reasons"] == first["decision"]["review_reasons"]
    assert [i["claim_id"] for i in queue(client, line_of_business="motor")["items"]] == ["CLM-Q2"]
    route = first["decision"]["route"]
    assert queue(client, route=route)["total"] == 2
    assert queue(client, route="no-such-route")["total"] == 0
    assert queue(client, min_age_hours=1)["total"] == 0
    assert queue(client, max_age_hours=1)["total"] == 2
    page = queue(client, limit=1, offset=1)
    assert [i["claim_id"] for i in page["items"]] == ["CLM-Q2"] and page["total"] == 2
    assert client.get("/v1/review-queue", params={"limit": 0}).status_code == 422


def test_an_adjuster_holds_an_item_and_others_are_kept_off_it(client: TestClient) -> None:
    answer = triaged(client, "CLM-H1")
    path = f"/v1/review-queue/{answer['prediction_id']}/hold"
    held = client.post(path, json={"adjuster_id": "adj-1", "minutes": 20})
    assert held.status_code == 200 and held.json()["adjuster_id"] == "adj-1"
    taken = client.post(path, json={"adjuster_id": "adj-2"})
    assert taken.status_code == 409 and "adj-1" in taken.json()["detail"]
    assert queue(client, available_to="adj-2")["total"] == 0
    assert queue(client, available_to="adj-1")["total"] == 1
    assert client.delete(path, params={"adjuster_id": "adj-2"}).status_code == 409
    assert client.delete(path, params={"adjuster_id": "adj-1"}).status_code == 204
    assert client.post(path, json={"adjuster_id": "adj-2"}).status_code == 200
    too_long = client.post(path, json={"adjuster_id": "adj-2", "minutes": 10_000})
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"][-1] == "minutes"
    assert (
        client.post("/v1/review-queue/pr-nowhere/hold", json={"adjuster_id": "a"}).status_code
        == 404
    )
