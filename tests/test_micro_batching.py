"""Concurrent single-claim requests share forward passes, answer as if alone, and time out."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import ServiceSettings

CLAIMS = [
    {"claim_id": f"MB-{i}", "description": text}
    for i, text in enumerate(
        [
            "Rear-ended at a red light, bumper and tail light damaged.",
            "Pipe burst under the kitchen sink and flooded the floor.",
            "Employee slipped on a wet floor at the warehouse and hurt a wrist.",
            "Hail broke two skylights during last night's storm.",
        ]
        * 8
    )
]


def batch_sizes(client: TestClient) -> tuple[float, float]:
    text = client.get("/metrics").text
    total = float(re.search(r"^claims_inference_batch_size_sum (\S+)$", text, re.M).group(1))
    count = float(re.search(r"^claims_inference_batch_size_count (\S+)$", text, re.M).group(1))
    return total, count


def test_concurrent_requests_share_passes_and_answer_as_if_alone(
    trained_checkpoint: Path,
) -> None:
    settings = ServiceSettings(model_dir=trained_checkpoint, micro_batch_wait_ms=20)
    with TestClient(create_app(settings)) as client:
        alone = {c["claim_id"]: client.post("/v1/triage", json=c).json() for c in CLAIMS[:4]}
        before = batch_sizes(client)
        answers: dict[str, dict] = {}

        def ask(claim: dict) -> None:
            answers[claim["claim_id"]] = client.post("/v1/triage", json=claim).json()

        threads = [threading.Thread(target=ask, args=(claim,)) for claim in CLAIMS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        claims_scored, passes = (a - b for a, b in zip(batch_sizes(client), before, strict=True))
    assert claims_scored == len(CLAIMS) and passes < len(CLAIMS) / 2  # shared, not one by one
    for claim_id, single in alone.items():
        for task, prediction in single["predictions"].items():
            assert answers[claim_id]["predictions"][task]["probabilities"] == pytest.approx(
                prediction["probabilities"],
                abs=1e-5,  # fp32: a claim's neighbours do not change its answer
            )
    assert len({a["prediction_id"] for a in answers.values()}) == len(CLAIMS)


@pytest.mark.parametrize("micro_batching", [True, False])
def test_a_model_slower_than_the_timeout_gets_504(
    trained_checkpoint: Path, micro_batching: bool
) -> None:
    settings = ServiceSettings(
        model_dir=trained_checkpoint, inference_timeout=0.0005, micro_batching=micro_batching
    )
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/triage", json=CLAIMS[0])
    assert response.status_code == 504 and "within" in response.json()["detail"]
