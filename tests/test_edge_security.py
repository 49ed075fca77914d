"""The HTTP edge under abuse: keys checked before bodies are read, failed keys and claims
rate-limited, keys that no variable can turn off, and a keyless service no web page can reach."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from claims.store import Store
from claims.store.data_settings import DataSettings
from schemas.auth import Role
from serving.app import create_app
from serving.settings import ServiceSettings
from tests.conftest import free_port, upload_scope

UPLOAD_BYTES = 300 * 1024 * 1024
CHUNK = 64 * 1024
MULTIPART = "multipart/form-data; boundary=b0undary"
CLAIM = {"claim_id": "A-1", "description": "Rear-ended at a light."}


def keyed_settings(data_dir: Path, **settings: object) -> ServiceSettings:
    return ServiceSettings(data_dir=data_dir, auth=True, **settings)


def new_key(data_dir: Path, role: Role = Role.triage) -> str:
    store = Store.from_settings(DataSettings(data_dir=data_dir))
    try:
        return store.create_key(f"edge-{role.value}", role)[1]
    finally:
        store.close()


@pytest.fixture(scope="module")
def keyed(session_data_dir: Path) -> Iterator[TestClient]:
    """A service with keys on, started (models loaded) once for the module."""
    with TestClient(create_app(keyed_settings(session_data_dir))) as client:
        yield client


@pytest.fixture(scope="module")
def keyed_app(keyed: TestClient) -> FastAPI:
    return keyed.app


def test_an_anonymous_upload_is_refused_before_its_body_is_read(keyed_app: FastAPI) -> None:
    """The ASGI app itself: how many bytes of a 300 MB upload it pulls before answering."""
    pulled = 0
    answer: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        if pulled >= 4 * CHUNK:  # enough to know: the client goes away rather than send 300 MB
            return {"type": "http.disconnect"}
        pulled += CHUNK
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}

    async def send(message: dict) -> None:
        answer.append(message)

    scope = upload_scope(
        {"host": "testserver", "content-type": MULTIPART, "content-length": str(UPLOAD_BYTES)}
    )
    asyncio.run(keyed_app(scope, receive, send))
    assert pulled <= CHUNK
    assert answer[0]["type"] == "http.response.start" and answer[0]["status"] == 401


@pytest.fixture(scope="module")
def live_url(keyed_app: FastAPI) -> Iterator[tuple[str, int]]:
    """The same app behind a real uvicorn server on a loopback port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(keyed_app, port=port, lifespan="off", log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield "127.0.0.1", port
    server.should_exit = True
    thread.join(10)


def upload_until_answered(address: tuple[str, int], headers: str) -> tuple[bytes, int, float]:
    """Streams a 300 MB body as fast as the socket takes it, and stops at the first byte of an
    answer; gives up after 64 MiB. Returns the answer, the bytes sent and the seconds taken."""
    with socket.create_connection(address) as connection:
        connection.setblocking(False)
        started = time.perf_counter()
        connection.sendall(
            f"POST /v1/batch-jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {MULTIPART}\r\n"
            f"Content-Length: {UPLOAD_BYTES}\r\n{headers}\r\n".encode()
        )
        sent, chunk = 0, b"x" * CHUNK
        while sent < 64 * 1024 * 1024:
            readable, writable, _ = select.select([connection], [connection], [], 5)
            if readable:
                break
            if not writable:
                continue
            try:
                sent += connection.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        seconds = time.perf_counter() - started
        connection.setblocking(True)
        connection.settimeout(5)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                part = connection.recv(65536)
                if not part:
                    break
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent, seconds


def test_a_live_anonymous_upload_is_answered_401_at_once(live_url: tuple[str, int]) -> None:
    answer, sent, seconds = upload_until_answered(live_url, "")
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    # what the client got into the socket's buffers before the answer came, not what was read
    assert sent < 16 * 1024 * 1024, sent
    assert seconds < 1.0, seconds


def test_a_bad_key_on_an_upload_is_answered_401_at_once(live_url: tuple[str, int]) -> None:
    answer, sent, _ = upload_until_answered(live_url, "Authorization: Bearer not-a-key\r\n")
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert sent < 16 * 1024 * 1024, sent


def test_failed_keys_are_rate_limited_per_client(session_data_dir: Path) -> None:
    key = new_key(session_data_dir)
    # 6 a minute: a burst of one, then one every 10 s
    settings = keyed_settings(session_data_dir, failed_keys_per_minute=6)
    with TestClient(create_app(settings)) as client:
        guesses = [
            client.get("/v1/models/active", headers={"X-API-Key": f"guess-{n}"}) for n in range(3)
        ]
        assert [guess.status_code for guess in guesses] == [401, 429, 429]
        assert int(guesses[-1].headers["Retry-After"]) >= 1
        # not even a valid key is looked up for that address now: its answer would tell
        refused = client.get("/v1/models/active", headers={"X-API-Key": key})
        assert refused.status_code == 429
        # a key already looked up is answered as before: no store query is spent on it
        client.app.state.auth.failures._buckets.clear()
        assert client.get("/v1/models/active", headers={"X-API-Key": key}).status_code == 200
        client.app.state.auth.failures.charge("testclient", 100)
        assert client.get("/v1/models/active", headers={"X-API-Key": key}).status_code == 200


def test_the_rate_counts_claims_not_requests(session_data_dir: Path) -> None:
    """A batch larger than a burst still passes (the bucket goes into debt rather than refuse
    for good a batch the key could never send), then its key waits until it is paid for."""
    key = new_key(session_data_dir)
    headers = {"Authorization": f"Bearer {key}"}
    settings = keyed_settings(session_data_dir, rate_limit_per_minute=30)  # bursts of 3
    with TestClient(create_app(settings)) as client:
        claims = [{**CLAIM, "claim_id": f"A-{n}"} for n in range(20)]
        batch = client.post("/v1/triage/batch", json={"claims": claims}, headers=headers)
        assert batch.status_code == 200, batch.text
        after = client.get("/v1/models/active", headers=headers)
        assert after.status_code == 429, after.text
        assert int(after.headers["Retry-After"]) >= 20  # 17 claims of debt at one per 2 s


def test_claims_auth_false_in_the_environment_leaves_keys_on(
    session_data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CLAIMS_AUTH", "false")
    with pytest.MonkeyPatch.context() as production:  # the tests' own default is keys off
        production.setattr(ServiceSettings.model_fields["auth"], "default", True)
        ServiceSettings.model_rebuild(force=True)
        settings = ServiceSettings(data_dir=session_data_dir)
    ServiceSettings.model_rebuild(force=True)
    assert settings.auth is True
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/models/active").status_code == 401
        assert client.get("/readyz").json()["auth"] == "enabled"
    assert "CLAIMS_AUTH is ignored" in caplog.text


@pytest.fixture(scope="module")
def keyless(session_data_dir: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(data_dir=session_data_dir, auth=False)
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://attacker.example"},  # a cross-site POST from a web page
        {"Origin": "null"},  # a sandboxed frame or a file: page
        {"Host": "attacker.example"},  # the page's own name, rebound to 127.0.0.1
        {"Host": "attacker.example:8000", "Origin": "http://attacker.example:8000"},
    ],
)
def test_without_keys_a_web_page_cannot_reach_the_service(
    keyless: TestClient, headers: dict[str, str]
) -> None:
    response = keyless.post("/v1/retrain", headers=headers)
    assert response.status_code == 403, response.text
    assert keyless.get("/v1/models/active", headers=headers).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Host": "localhost:8000"},
        {"Host": "[::1]:8000"},
        {"Origin": "http://localhost:3000"},
        {"Origin": "http://127.0.0.1:8000"},
    ],
)
def test_without_keys_local_callers_are_served(
    keyless: TestClient, headers: dict[str, str]
) -> None:
    assert keyless.get("/v1/models/active", headers=headers).status_code == 200


def test_a_chunked_body_over_the_limit_gets_413(keyless: TestClient) -> None:
    """No Content-Length to refuse early: the limit is found while the body streams."""

    def chunks() -> Iterator[bytes]:
        yield b'{"claim_id": "A-1", "description": "'
        for _ in range(80):
            yield b"x" * CHUNK  # 5 MiB in all
        yield b'"}'

    headers = {"content-type": "application/json"}
    for path in ("/v1/triage", "/v1/triage/batch", "/v1/feedback"):
        response = keyless.post(path, content=chunks(), headers=headers)
        assert response.status_code == 413, (path, response.status_code, response.text)
        assert "larger than" in response.json()["detail"]


def test_readyz_names_no_path_to_anyone(keyed: TestClient, session_data_dir: Path) -> None:
    ready = keyed.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded" and ready.json()["reason"] == "checkpoint_missing"
    assert str(session_data_dir) not in ready.text and "/" not in ready.text


def test_a_long_attribute_gets_422_naming_it(keyless: TestClient) -> None:
    long_value = {**CLAIM, "attributes": {"region": "x" * 4 * 1024 * 1024}}
    response = keyless.post("/v1/triage", json=long_value)
    assert response.status_code in (413, 422)  # 4 MiB of text is over the body limit too
    response = keyless.post("/v1/triage", json={**CLAIM, "attributes": {"region": "x" * 1001}})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "attributes", "region"] and "1,000" in error["msg"]
    response = keyless.post("/v1/triage", json={**CLAIM, "attributes": {"k" * 129: 1}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "attributes"]
    batch = {"claims": [CLAIM, {**CLAIM, "attributes": {"region": "x" * 1001}}]}
    response = keyless.post("/v1/triage/batch", json=batch)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "claims", 1, "attributes", "region"]
    fine = keyless.post("/v1/triage", json={**CLAIM, "attributes": {"region": "x" * 1000}})
    assert fine.status_code == 200, fine.text
