"""The live service over loopback: fuzzed against its own OpenAPI schema, and shut down
gracefully."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from claims.settings import DataSettings
from claims.store import Store
from claims.synthetic import generate_claims
from schemas.auth import Role
from tests.conftest import running_service


@pytest.fixture(scope="module")
def live_schema(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[schemathesis.BaseSchema, dict[str, str]]]:
    """The service as deployed, keys on, on the base model: no retrain data and no tuned
    model, so no request starts a background process. An admin key reaches every route."""
    data_dir = tmp_path_factory.mktemp("live")
    _, key = Store.from_settings(DataSettings(data_dir=data_dir)).create_key("fuzz", Role.admin)
    headers = {"Authorization": f"Bearer {key}"}
    with running_service(data_dir, auth=True) as (_, url):
        yield schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers), headers


@pytest.mark.slow
def test_no_request_gets_a_5xx_or_an_answer_off_the_schema(
    live_schema: tuple[schemathesis.BaseSchema, dict[str, str]],
) -> None:
    """Every operation, with generated valid and invalid requests: all of schemathesis's
    checks (no server error, status codes, content types, response schemas, and that
    requests without a key are refused) but one: a request the JSON schema allows may still
    be refused with 422, since some rules of a claim (no date in the future, reported after
    the loss) are beyond what a JSON schema can say."""
    schema, headers = live_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()


@pytest.mark.slow
def test_a_sigterm_lets_requests_in_flight_finish(trained_checkpoint: Path, tmp_path: Path) -> None:
    with running_service(tmp_path, "--model", str(trained_checkpoint)) as (process, url):
        answered = sigterm_during_a_batch(process, url)
    assert answered.status_code == 200
    assert len(answered.json()["results"]) == 256


def sigterm_during_a_batch(process: subprocess.Popen, url: str) -> httpx.Response:
    frame = generate_claims(256, seed=4).drop(columns=["claim_type", "severity", "siu_referral"])
    claims = [
        {
            "claim_id": row["claim_id"],
            "description": row["description"] * 4,  # long narratives: a slow batch
            "attributes": {"region": row["region"]},
        }
        for row in frame.to_dict(orient="records")
    ]
    answer: dict[str, object] = {}

    def send() -> None:
        answer["response"] = httpx.post(
            f"{url}/v1/triage/batch", json={"claims": claims}, timeout=120
        )
        answer["answered_at"] = time.monotonic()

    request = threading.Thread(target=send)
    request.start()
    time.sleep(0.5)  # the batch is being scored
    process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    request.join()
    assert answer["answered_at"] > signalled_at  # it was in flight when the signal came
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells it
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    return answer["response"]
