"""The console through the app itself, keys on: sign-in, sessions, CSRF, the queue and the
correction form. On the base model, whose answers all need review, so nothing trains here;
tests/test_console_browser.py drives it in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from claims.store import Store
from claims.store.data_settings import DataSettings
from schemas.auth import Role
from schemas.claim import Claim
from schemas.explanation import Explanation, PhraseFactor, TaskExplanation
from schemas.review import PredictionDetail, ReviewState
from schemas.triage import Decision, ServedBy, TaskPrediction, TriageResult
from serving.app import create_app
from serving.console import sessions as console_sessions
from serving.console.routes import SESSION_COOKIE, highlighted
from serving.settings import ServiceSettings

CLAIM = {
    "claim_id": "CLM-C1",
    "description": "Insd reports kitchen fire from stove, smoke damage to upper cabinets.",
    "loss_date": "2024-03-02",
    "line_of_business": "home",
}


@pytest.fixture(scope="module")
def console_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-data")


@pytest.fixture(scope="module")
def keys(console_data: Path) -> dict[str, str]:
    store = Store.from_settings(DataSettings(data_dir=console_data))
    made = {role.value: store.create_key(f"{role.value}-1", role)[1] for role in Role}
    for name in ("adjuster-2", "adjuster-3"):
        made[name] = store.create_key(name, Role.adjuster)[1]
    store.close()
    return made


@pytest.fixture(scope="module")
def app_client(keys: dict[str, str], console_data: Path) -> Iterator[TestClient]:
    app = create_app(ServiceSettings(data_dir=console_data, auth=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    """A browser of its own (no cookies yet) on the module's service."""
    app_client.cookies.clear()
    return app_client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


def sign_in(client: TestClient, key: str):  # type: ignore[no-untyped-def]
    form = client.get("/console/sign-in")
    return client.post(
        "/console/sign-in",
        data={"key": key, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )


def triaged(client: TestClient, keys: dict[str, str], claim_id: str) -> dict:
    response = client.post(
        "/v1/triage",
        json={**CLAIM, "claim_id": claim_id},
        headers={"Authorization": f"Bearer {keys['triage']}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_an_adjuster_signs_in_to_a_session_cookie(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get("/console/queue", follow_redirects=False).headers["location"] == (
        "/console/sign-in"
    )
    response = sign_in(client, keys["adjuster"])
    assert response.status_code == 303 and response.headers["location"] == "/console/queue"
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # on a loopback address
    assert keys["adjuster"] not in cookie
    page = client.get("/console/queue")
    assert page.status_code == 200 and "adjuster-1" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_the_cookie_is_secure_away_from_loopback(client: TestClient, keys: dict[str, str]) -> None:
    elsewhere = TestClient(client.app, base_url="https://claims.example")
    cookie = sign_in(elsewhere, keys["admin"]).headers["set-cookie"]
    assert "Secure" in cookie


@pytest.mark.parametrize(
    ("key", "status", "words"),
    [
        ("triage", 403, "role triage may not use the console"),
        ("nonsense", 401, "not valid"),
    ],
)
def test_only_adjusters_and_admins_sign_in(
    client: TestClient, keys: dict[str, str], key: str, status: int, words: str
) -> None:
    response = sign_in(client, keys.get(key, "csk_nope_nope"))
    assert response.status_code == status and words in response.text
    assert f"{SESSION_COOKIE}=" not in response.headers.get("set-cookie", "")
    assert client.get("/console/queue", follow_redirects=False).status_code == 303


def test_a_sign_in_without_its_csrf_token_is_refused(
    client: TestClient, keys: dict[str, str]
) -> None:
    response = client.post("/console/sign-in", data={"key": keys["adjuster"]})
    assert response.status_code == 403
    assert client.get("/console/queue", follow_redirects=False).status_code == 303


def test_a_correction_leaves_the_queue_and_is_stored_as_feedback(
    client: TestClient, keys: dict[str, str]
) -> None:
    first = triaged(client, keys, "CLM-C1")
    triaged(client, keys, "CLM-C2")
    sign_in(client, keys["adjuster"])
    queue = client.get("/console/queue").text
    assert ">CLM-C1</a>" in queue and ">CLM-C2</a>" in queue
    page = client.get(f"/console/claims/{first['prediction_id']}")
    assert page.status_code == 200 and "smoke damage to upper cabinets" in page.text
    severity = first["predictions"]["severity"]["label"]
    other = next(label for label in ("low", "medium", "high", "severe") if label != severity)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = {
        "csrf_token": csrf_of(page.text),
        "nonce": nonce,
        "label.severity": other,
        "reason_code": "misclassified",
        "note": "adjuster's inspection",
        "confirmed": "on",
    }
    saved = client.post(
        f"/console/claims/{first['prediction_id']}/feedback", data=form, follow_redirects=False
    )
    assert saved.status_code == 303, saved.text
    queue = client.get(saved.headers["location"]).text
    assert "Feedback on claim CLM-C1 stored" in queue
    assert ">CLM-C1</a>" not in queue and ">CLM-C2</a>" in queue
    again = client.post(f"/console/claims/{first['prediction_id']}/feedback", data=form)
    assert again.status_code == 200  # the same form twice: stored once
    listed = client.get(
        "/v1/feedback",
        params={"claim_id": "CLM-C1"},
        headers={"Authorization": f"Bearer {keys['adjuster']}"},
    ).json()["items"]
    assert len(listed) == 1
    item = listed[0]
    assert item["labels"]["severity"] == other and item["adjuster_id"] == "adjuster-1"
    assert (item["prediction_id"], item["reason_code"], item["confirmed"]) == (
        first["prediction_id"],
        "misclassified",
        True,
    )


def test_forms_without_the_sessions_csrf_token_are_refused(
    client: TestClient, keys: dict[str, str]
) -> None:
    answer = triaged(client, keys, "CLM-C3")
    sign_in(client, keys["adjuster"])
    form = {"label.severity": "low", "reason_code": "misclassified", "confirmed": "on"}
    for token in (None, "forged"):
        data = form if token is None else {**form, "csrf_token": token}
        response = client.post(f"/console/claims/{answer['prediction_id']}/feedback", data=data)
        assert response.status_code == 403 and "CSRF" in response.text
    assert client.post("/console/sign-out").status_code == 403
    headers = {"Authorization": f"Bearer {keys['adjuster']}"}
    listed = client.get("/v1/feedback", params={"claim_id": "CLM-C3"}, headers=headers)
    assert listed.json()["items"] == []


def test_a_bad_correction_is_shown_again_with_its_error(
    client: TestClient, keys: dict[str, str]
) -> None:
    answer = triaged(client, keys, "CLM-C4")
    sign_in(client, keys["adjuster"])
    page = client.get(f"/console/claims/{answer['prediction_id']}").text
    response = client.post(
        f"/console/claims/{answer['prediction_id']}/feedback",
        data={"csrf_token": csrf_of(page), "nonce": "n1", "label.severity": "meteor",
              "reason_code": "misclassified"},
    )  # fmt: skip
    assert response.status_code == 422 and "unknown label" in response.text
    response = client.post(
        f"/console/claims/{answer['prediction_id']}/feedback",
        data={"csrf_token": csrf_of(page), "nonce": "n2", "label.severity": "low"},
    )
    assert response.status_code == 422 and "reason_code" in response.text


def test_a_claim_held_by_one_adjuster_cannot_be_corrected_by_another(
    client: TestClient, keys: dict[str, str]
) -> None:
    answer = triaged(client, keys, "CLM-C5")
    sign_in(client, keys["adjuster"])
    page = client.get("/console/queue").text
    held = client.post(
        f"/console/claims/{answer['prediction_id']}/hold",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert held.status_code == 303
    other = TestClient(client.app, base_url="http://127.0.0.1")  # a second adjuster's browser
    sign_in(other, keys["adjuster-2"])
    page = other.get(f"/console/claims/{answer['prediction_id']}").text
    assert "adjuster-1 is working on this claim" in page
    response = other.post(
        f"/console/claims/{answer['prediction_id']}/feedback",
        data={"csrf_token": csrf_of(page), "nonce": "n", "label.severity": "low",
              "reason_code": "misclassified", "confirmed": "on"},
    )  # fmt: skip
    assert response.status_code == 409
    refused = other.post(
        f"/console/claims/{answer['prediction_id']}/release", data={"csrf_token": csrf_of(page)}
    )
    assert refused.status_code == 409 and "adjuster-1" in refused.text
    released = client.post(
        f"/console/claims/{answer['prediction_id']}/release",
        data={"csrf_token": csrf_of(client.get("/console/queue").text)},
        follow_redirects=False,
    )
    assert released.status_code == 303 and released.headers["location"] == "/console/queue"
    page = other.get(f"/console/claims/{answer['prediction_id']}").text
    assert "adjuster-1 is working on this claim" not in page


def test_sign_out_revocation_and_expiry_end_a_session(
    client: TestClient, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(client, keys["adjuster"])
    page = client.get("/console/queue").text
    signed_out = client.post(
        "/console/sign-out", data={"csrf_token": csrf_of(page)}, follow_redirects=False
    )
    assert signed_out.headers["location"] == "/console/sign-in"
    assert client.get("/console/queue", follow_redirects=False).status_code == 303

    sign_in(client, keys["adjuster-3"])
    assert client.get("/console/queue").status_code == 200
    store = client.app.state.store
    key_id = next(k.key_id for k in store.api_keys() if k.name == "adjuster-3")
    store.revoke_key(key_id)
    client.app.state.auth._known.clear()  # as the few seconds' memory runs out
    assert client.get("/console/queue", follow_redirects=False).status_code == 303

    sign_in(client, keys["admin"])
    assert client.get("/console/queue").status_code == 200
    monkeypatch.setattr(console_sessions, "IDLE_SECONDS", -1)
    assert client.get("/console/queue", follow_redirects=False).status_code == 303


def test_the_narrative_is_cut_at_the_explanations_phrases() -> None:
    text = "Rear-ended at a light, whiplash reported. Bumper cracked."
    phrase = PhraseFactor(text="whiplash reported.", start=23, end=41, weight=0.2)
    lowering = PhraseFactor(text="Bumper cracked.", start=42, end=57, weight=-0.05)
    explained = TaskExplanation(
        label="high", probability=0.7, phrases=[phrase, lowering], fields=[], summary=""
    )
    result = TriageResult(
        prediction_id="pr-1",
        claim_id="C-1",
        predictions={
            "severity": TaskPrediction(
                label="high", probability=0.7, probabilities={"high": 0.7}, alternatives=[]
            )
        },
        decision=Decision(
            route="complex", route_reason="r", needs_review=True, review_reasons=[],
            policy_version="1",
        ),
        served_by=ServedBy(source="tuned", model_version="v"),
        explanation=Explanation(tasks={"severity": explained}, reasons=[]),
    )  # fmt: skip
    detail = PredictionDetail(
        prediction_id="pr-1",
        claim=Claim(claim_id="C-1", description=text),
        result=result,
        model_version="v",
        policy_version="1",
        source="tuned",
        created_at=datetime.now(UTC),
        review=ReviewState(on_queue=True, needs_review=True, held_by=None),
        feedback=[],
    )
    segments = highlighted(detail)
    assert "".join(segment.text for segment in segments) == text
    marked = [(s.text, s.direction, s.note) for s in segments if s.direction]
    assert marked == [
        ("whiplash reported.", "up", "severity high +20 pts"),
        ("Bumper cracked.", "down", "severity high -5 pts"),
    ]


def test_sign_ins_past_the_cap_end_the_idlest_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_sessions, "MAX_SESSIONS", 2)
    table = console_sessions.Sessions()
    first, _ = table.start(None, None)
    second, _ = table.start(None, None)
    assert table.get(second) is not None  # seen after the first
    third, _ = table.start(None, None)
    assert table.get(first) is None
    assert table.get(second) is not None and table.get(third) is not None
