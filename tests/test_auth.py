"""Access control: every role on every route, revocation, the rate per key, development mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from claims.store import Store
from claims.store.data_settings import DataSettings
from schemas.auth import Role
from serving.app import create_app
from serving.settings import ServiceSettings

# Every route of the API and the least role that may call it (None: open to all). A route
# added without a decision here fails `test_every_route_has_a_decided_role`.
ROUTES: dict[tuple[str, str], Role | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/openapi.json"): Role.triage,
    ("GET", "/metrics"): Role.triage,
    ("GET", "/v1/models/active"): Role.triage,
    ("POST", "/v1/triage"): Role.triage,
    ("POST", "/v1/triage/batch"): Role.triage,
    ("POST", "/v1/batch-jobs"): Role.triage,
    ("GET", "/v1/batch-jobs/{job_id}"): Role.triage,
    ("GET", "/v1/batch-jobs/{job_id}/results"): Role.triage,
    ("GET", "/v1/batch-jobs/{job_id}/rejects"): Role.triage,
    ("POST", "/v1/feedback"): Role.adjuster,
    ("GET", "/v1/feedback"): Role.adjuster,
    ("GET", "/v1/models"): Role.triage,
    ("GET", "/v1/models/{version}"): Role.triage,
    ("POST", "/v1/models/{version}/promote"): Role.admin,
    ("POST", "/v1/models/rollback"): Role.admin,
    ("POST", "/v1/retrain"): Role.admin,
    ("GET", "/v1/retrain/{job_id}"): Role.admin,
}
UNDOCUMENTED = {("GET", "/metrics"), ("GET", "/openapi.json")}
BODIES = {
    "/v1/triage": {"claim_id": "A-1", "description": "Rear-ended at a light."},
    "/v1/triage/batch": {"claims": [{"claim_id": "A-1", "description": "Rear-ended."}]},
    "/v1/feedback": {
        "feedback_id": "fb-auth",
        "claim_id": "A-1",
        "labels": {"severity": "low"},
        "reason_code": "x",
        "adjuster_id": "adj",
    },
    "/v1/models/{version}/promote": {"reason": "test"},
    "/v1/models/rollback": {"reason": "test"},
}


@pytest.fixture(scope="module")
def keys(session_data_dir) -> dict[str, str]:  # type: ignore[no-untyped-def]
    store = Store.from_settings(DataSettings(data_dir=session_data_dir))
    made = {role.value: store.create_key(f"test-{role.value}", role)[1] for role in Role}
    revoked_info, made["revoked"] = store.create_key("test-revoked", Role.admin)
    store.revoke_key(revoked_info.key_id)
    return made


@pytest.fixture(scope="module")
def client(keys: dict[str, str], session_data_dir) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    settings = ServiceSettings(data_dir=session_data_dir, auth=True)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_every_route_has_a_decided_role(client: TestClient) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in client.app.openapi()["paths"].items()
        for method in operations
    }
    assert documented | UNDOCUMENTED == set(ROUTES)


def call(client: TestClient, method: str, path: str, key: str | None):  # type: ignore[no-untyped-def]
    url = path.replace("{job_id}", "job-none").replace("{version}", "sp-none")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.request(method, url, json=BODIES.get(path), headers=headers)


@pytest.mark.parametrize(("method", "path"), list(ROUTES))
@pytest.mark.parametrize("caller", ["none", "revoked", *[role.value for role in Role]])
def test_each_role_reaches_what_it_may_and_nothing_else(
    client: TestClient, keys: dict[str, str], method: str, path: str, caller: str
) -> None:
    needed = ROUTES[(method, path)]
    response = call(client, method, path, keys.get(caller))
    if needed is None:
        assert response.status_code == 200
    elif caller in ("none", "revoked"):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    elif not Role(caller).allows(needed):
        assert response.status_code == 403
        assert needed.value in response.json()["detail"]
    else:
        assert response.status_code not in (401, 403, 500), response.text


def test_the_x_api_key_header_works_too(client: TestClient, keys: dict[str, str]) -> None:
    response = client.get("/v1/models/active", headers={"X-API-Key": keys["triage"]})
    assert response.status_code == 200
    assert client.get("/readyz").json()["auth"] == "enabled"


def test_a_revoked_key_stops_working(client: TestClient, session_data_dir) -> None:  # type: ignore[no-untyped-def]
    store = Store.from_settings(DataSettings(data_dir=session_data_dir))
    info, key = store.create_key("short-lived", Role.triage)
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/models/active", headers=headers).status_code == 200
    store.revoke_key(info.key_id)
    client.app.state.auth.remember_seconds = 0.0
    client.app.state.auth._known.clear()
    assert client.get("/v1/models/active", headers=headers).status_code == 401


def test_past_its_rate_a_key_gets_429_with_retry_after(session_data_dir) -> None:  # type: ignore[no-untyped-def]
    store = Store.from_settings(DataSettings(data_dir=session_data_dir))
    _, key = store.create_key("busy", Role.triage)
    settings = ServiceSettings(data_dir=session_data_dir, auth=True, rate_limit_per_minute=60)
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        statuses = [client.get("/v1/models/active", headers=headers).status_code for _ in range(8)]
    assert statuses[:6] == [200] * 6 and statuses[-1] == 429
    assert statuses.count(429) >= 1


def test_development_mode_answers_without_keys_and_says_so(session_data_dir, caplog) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(ServiceSettings(data_dir=session_data_dir, auth=False))) as client:
        assert client.get("/readyz").json()["auth"] == "disabled"
        assert client.get("/v1/models/active").status_code == 200
        assert client.get("/docs").status_code == 200
    assert "AUTHENTICATION IS OFF" in caplog.text
