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
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from claims.data.synthetic import generate_claims
from claims.store import Store
from schemas.auth import Role
from tests.helpers import empty_database_url, running_service


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_schema(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[schemathesis.BaseSchema, dict[str, str]]]:
    """The service as deployed, keys on, on the base model: no retrain data and no tuned
    model, so no request starts a background process. An admin key reaches every route. On
    SQLite, and on PostgreSQL when a server is given."""
    data_dir = tmp_path_factory.mktemp("live")
    with (
        empty_database_url(request.param, data_dir / "claims.db") as url,
        pytest.MonkeyPatch.context() as patch,
    ):
        store = Store(url)
        _, key = store.create_key("fuzz", Role.admin)
        store.close()
        headers = {"Authorization": f"Bearer {key}"}
        patch.setenv("CLAIMS_DATABASE_URL", url)
        with running_service(data_dir, auth=True) as (_, service_url):
            schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json", headers=headers)
            yield schema, headers


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


# What an attacker sends that a JSON schema does not describe: control characters in
# identifiers, lone surrogates anywhere (keys too), integers past any float (issue 23).
HOSTILE_CHARACTERS = st.characters(codec=None, categories=["Cc", "Cs"])
HOSTILE_TEXT = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(max_size=8),
    st.text(HOSTILE_CHARACTERS, min_size=1, max_size=3),
    st.text(max_size=8),
)
HUGE_INTEGERS = st.integers(min_value=2**1024, max_value=10**4000) | st.integers(
    max_value=-(2**1024), min_value=-(10**4000)
)


def _hostile_claim() -> st.SearchStrategy[dict]:
    plain = {"claim_id": "CLM-1", "description": "Hail broke two skylights."}
    return st.one_of(
        st.builds(
            lambda field, value: {**plain, field: value},
            st.sampled_from(["claim_id", "description", "policy_id", "channel", "currency"]),
            HOSTILE_TEXT,
        ),
        st.builds(lambda key: {**plain, "attributes": {key: 1}}, HOSTILE_TEXT),
        st.builds(lambda value: {**plain, "attributes": {"region": value}}, HOSTILE_TEXT),
        st.builds(lambda key: {**plain, key: "x"}, HOSTILE_TEXT),
        st.builds(
            lambda field, number: {**plain, "attributes": {field: number}},
            st.sampled_from(["wages", "region", "policy_tenure"]),
            HUGE_INTEGERS,
        ),
        st.builds(
            lambda field, number: {**plain, field: number},
            st.sampled_from(["initial_estimate", "claimant_age", "prior_claims"]),
            HUGE_INTEGERS,
        ),
    )


def _hostile_feedback() -> st.SearchStrategy[dict]:
    plain = {
        "feedback_id": "F-1",
        "claim_id": "CLM-1",
        "labels": {"severity": "high"},
        "reason_code": "adjuster",
        "adjuster_id": "adj-1",
    }
    return st.one_of(
        st.builds(
            lambda field, value: {**plain, field: value},
            st.sampled_from(["feedback_id", "claim_id", "reason_code", "adjuster_id", "note"]),
            HOSTILE_TEXT,
        ),
        st.builds(lambda key, value: {**plain, "labels": {key: value}}, HOSTILE_TEXT, HOSTILE_TEXT),
    )


HOSTILE_BODIES = {
    ("POST", "/v1/triage"): _hostile_claim(),
    ("POST", "/v1/triage/batch"): st.lists(_hostile_claim(), min_size=1, max_size=3).map(
        lambda claims: {
            "claims": [
                {**claim, "claim_id": f"B-{n}"} if n else claim for n, claim in enumerate(claims)
            ]
        }
    ),
    ("POST", "/v1/feedback"): _hostile_feedback(),
}


@pytest.mark.slow
def test_hostile_bodies_get_a_4xx_never_a_5xx(
    live_schema: tuple[schemathesis.BaseSchema, dict[str, str]],
) -> None:
    """Each body through schemathesis's own checks, so an answer off the schema fails too."""
    schema, headers = live_schema
    for (method, path), bodies in HOSTILE_BODIES.items():
        _check_each(schema[path][method], bodies, headers)


def _check_each(
    operation: schemathesis.APIOperation, bodies: st.SearchStrategy[dict], headers: dict[str, str]
) -> None:
    @given(body=bodies)
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def check(body: dict) -> None:
        case = operation.Case(body=body, media_type="application/json")
        response = case.call_and_validate(
            headers=headers, excluded_checks=[positive_data_acceptance]
        )
        assert response.status_code < 500

    check()


IN_FLIGHT = 64  # long claims, many explained: seconds of work still running when the signal comes


@pytest.mark.slow
def test_a_sigterm_lets_requests_in_flight_finish(
    trained_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what is tested is that the batch is answered, not how fast: the quick model sends most of
    # these long claims to review, and each of those answers is explained, many passes on a busy
    # machine; neither the inference timeout nor uvicorn's grace may cut it short
    monkeypatch.setenv("CLAIMS_INFERENCE_TIMEOUT", "300")
    monkeypatch.setenv("CLAIMS_SHUTDOWN_GRACE", "300")
    with running_service(tmp_path, "--model", str(trained_checkpoint)) as (process, url):
        answered = sigterm_during_a_batch(process, url)
    assert answered.status_code == 200
    assert len(answered.json()["results"]) == IN_FLIGHT


def sigterm_during_a_batch(process: subprocess.Popen, url: str) -> httpx.Response:
    frame = generate_claims(IN_FLIGHT, seed=4).drop(
        columns=["claim_type", "severity", "siu_referral"]
    )
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
            f"{url}/v1/triage/batch", json={"claims": claims}, timeout=300
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
