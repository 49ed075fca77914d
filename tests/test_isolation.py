"""One bad claim fails only itself: unreadable lines, numbers past any float, control
characters and lone surrogates are that claim's 422 or reject row, never its neighbours'
failure or a failed job."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from claims.data.streams import Unreadable, read_rows
from claims.data.synthetic import generate_claims
from claims.model.checkpoint import LoadedCheckpoint, load_checkpoint
from claims.model.features import NumericScaling
from claims.store import Store
from claims.store.data_settings import DataSettings
from serving.app import create_app
from serving.batch.scoring import BacklogScorer
from serving.observability import JsonFormatter
from serving.settings import ServiceSettings
from tests.test_overload import served

CLAIM = {
    "claim_id": "CLM-1",
    "description": "Rear-ended at a red light, bumper and tail light damaged.",
    "loss_date": "2024-06-01",
    "attributes": {"region": "north", "wages": 640},
}
HUGE = 10**400  # JSON allows it; no float holds it


def reading_wages(predictor: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint as if its config read the `wages` attribute as a number: it takes the
    place of claimant_age, with as many columns, so the model still runs."""
    features = predictor.preparer.features  # type: ignore[attr-defined]
    numeric = [
        NumericScaling(name="wages", center=6.0, scale=1.0, edges=scaling.edges)
        if scaling.name == "claimant_age"
        else scaling
        for scaling in features.numeric
    ]
    assert [s.name for s in numeric] != [s.name for s in features.numeric]
    monkeypatch.setattr(
        predictor.preparer,  # type: ignore[attr-defined]
        "features",
        features.model_copy(update={"numeric": numeric}),
    )


# --- Batch files ---------------------------------------------------------------------------


def test_a_jsonl_line_that_is_not_utf8_or_holds_a_huge_number_is_that_lines_reject(
    tmp_path: Path,
) -> None:
    path = tmp_path / "claims.jsonl"
    lines = [
        json.dumps({"claim_id": "A", "description": "hail"}).encode(),
        b'{"claim_id": "B", "description": "caf\xe9 flooded"}',  # Latin-1, not UTF-8
        b'{"claim_id": "C", "description": "x", "attributes": {"n": ' + b"9" * 4301 + b"}}",
        json.dumps({"claim_id": "D", "description": "fire"}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    rows = list(read_rows(path))
    assert [row["claim_id"] for row in rows if isinstance(row, dict)] == ["A", "D"]
    unreadable = [row for row in rows if isinstance(row, Unreadable)]
    assert [row.line for row in unreadable] == [2, 3]
    assert "UTF-8" in unreadable[0].reason and "4300" in unreadable[1].reason


@pytest.fixture(scope="module")
def loaded(trained_checkpoint: Path) -> LoadedCheckpoint:
    return load_checkpoint(trained_checkpoint)


def test_a_batch_job_rejects_the_bad_rows_and_scores_the_rest(
    loaded: LoadedCheckpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reading_wages(loaded.predictor, monkeypatch)
    frame = generate_claims(12, seed=3).drop(columns=["claim_type", "severity", "siu_referral"])
    good = json.loads(frame.to_json(orient="records", date_format="iso"))
    for row in good:
        row["wages"] = 700
    source = tmp_path / "backlog.jsonl"
    with open(source, "wb") as handle:
        for number, row in enumerate(good):
            if number == 2:
                row = {**row, "wages": HUGE}  # past any float: a reject, not OverflowError
            if number == 4:
                row = {**row, "claim_id": "bad\ud800"}  # a lone surrogate
            handle.write(json.dumps(row).encode() + b"\n")
            if number == 6:
                handle.write(b'{"claim_id": "L1", "description": "\xff\xfe"}\n')
            if number == 8:
                handle.write(
                    b'{"claim_id": "L2", "description": "x", "n": 1' + b"0" * 5000 + b"}\n"
                )
    out = tmp_path / "scores.csv"
    summary = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=5).score(source, out)
    assert (summary.rows, summary.scored, summary.rejected) == (14, 10, 4)
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv", keep_default_na=False)
    reasons = dict(zip(rejects["claim_id"], rejects["reason"], strict=True))
    assert "too large" in reasons[good[2]["claim_id"]]
    assert "claim_id" in reasons["bad\\ud800"]
    scored = pd.read_csv(out)["claim_id"].tolist()
    assert scored == [row["claim_id"] for n, row in enumerate(good) if n not in (2, 4)]


# --- The service ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(trained_checkpoint: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(model_dir=trained_checkpoint, micro_batch_wait_ms=50)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_a_number_past_any_float_gets_422_and_its_micro_batch_neighbours_200(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reading_wages(client.app.state.models.serving.tuned.predictor, monkeypatch)
    claims = [{**CLAIM, "claim_id": f"N-{i}"} for i in range(8)]
    claims[3]["attributes"] = {"region": "north", "wages": HUGE}
    statuses: dict[str, object] = {}

    def ask(claim: dict) -> None:
        response = client.post("/v1/triage", json=claim)
        statuses[claim["claim_id"]] = (response.status_code, response.json())

    threads = [threading.Thread(target=ask, args=(claim,)) for claim in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    status, body = statuses.pop("N-3")
    assert status == 422
    assert body["detail"][0]["loc"] == ["body", "attributes"]
    assert "wages" in body["detail"][0]["msg"] and "too large" in body["detail"][0]["msg"]
    assert {code for code, _ in statuses.values()} == {200}
    assert all(body["served_by"]["source"] == "tuned" for _, body in statuses.values())
    batch = client.post("/v1/triage/batch", json={"claims": claims})
    assert batch.status_code == 422 and "N-3" in batch.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("claim_id", "CLM-\u0000-1"), ("claim_id", "CLM\u001b[31m"), ("policy_id", "P\u00851")],
)
def test_a_control_character_in_an_identifier_gets_422_naming_it(
    client: TestClient, field: str, value: str
) -> None:
    """On PostgreSQL a NUL failed the insert of the whole micro-batch: every neighbour 500."""
    response = client.post("/v1/triage", json={**CLAIM, field: value})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert "control character" in response.json()["detail"][0]["msg"]
    batch = client.post("/v1/triage/batch", json={"claims": [CLAIM, {**CLAIM, field: value}]})
    assert batch.status_code == 422
    assert batch.json()["detail"][0]["loc"] == ["body", "claims", 1, field]


def test_a_control_character_in_feedback_identifiers_gets_422(client: TestClient) -> None:
    item = {
        "feedback_id": "F-1",
        "claim_id": "CLM-1",
        "labels": {"severity": "high"},
        "reason_code": "adjuster",
        "adjuster_id": "adj\u0000",
    }
    response = client.post("/v1/feedback", json=item)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "adjuster_id"]


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("/v1/review-queue?limit=27&route=%00&task=%C3%A8C", ["query", "route"]),
        ("/v1/feedback?claim_id=CLM%001", ["query", "claim_id"]),
        ("/v1/predictions/P%1B%5B31m", ["path"]),
        ("/console/claims/P%00", ["path"]),
    ],
)
def test_a_control_character_in_a_url_gets_422_naming_the_parameter(
    client: TestClient, url: str, location: list[str]
) -> None:
    """On PostgreSQL `GET /v1/review-queue?route=%00` failed its query: a 500."""
    response = client.get(url, follow_redirects=False)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == location
    assert "control character" in response.json()["detail"][0]["msg"]
    assert client.get("/v1/review-queue?route=siu&task=%C3%A8C").status_code == 200


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b'{"claim_id": "C-1", "description": "hail \\ud800 damage"}', ["body", "description"]),
        (b'{"claim_id": "\\udfff", "description": "hail"}', ["body", "claim_id"]),
        (b'{"claim_id": "C-1", "description": "hail", "\\ud800": 1}', ["body", "\ud800"]),
        (
            b'{"claim_id": "C-1", "description": "hail", "attributes": {"r": "\\ud83d"}}',
            ["body", "attributes", "r"],
        ),
    ],
)
def test_a_lone_surrogate_anywhere_gets_422_naming_the_field(
    client: TestClient, body: bytes, location: list[str]
) -> None:
    """It has no UTF-8 form, so the 422 that echoes it failed to encode: 500."""
    response = client.post("/v1/triage", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.content.isascii()
    assert location in [error["loc"] for error in response.json()["detail"]]


def test_lookups_for_text_no_row_can_hold_find_nothing(database_url: str) -> None:
    """PostgreSQL refuses NUL in a parameter: `GET /v1/feedback?claim_id=%00` was a 500."""
    store = Store(database_url)
    try:
        assert store.prediction("P-\x00") is None
        assert store.job("job-\x00") is None
        assert store.latest_claims(["C-\x00"]) == {}
        assert store.list_feedback(claim_id="C\x00", task="t", adjuster_id="a") == []
        assert store.authenticate("csk_ab\x00cd_secret") is None
    finally:
        store.close()


# --- A store failure: the claim at fault fails alone, and no log line holds its text -------

PERSONAL = (
    "Jane Doe of 12 Elm Street, Springfield, DOB 1980-04-02, phone 555-0142, "
    "jane.doe@example.com, SSN 123-45-6789, says her neighbour's oak fell on her car."
)
TRACES = ("Jane", "Doe", "Elm Street", "1980-04-02", "555-0142", "jane.doe", "123-45-6789", "oak")


class Lines(logging.Handler):
    """Every log record as the service writes it: one JSON line each."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_a_store_failure_fails_only_its_claim_and_logs_none_of_its_text(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    """SQLAlchemy's error carried the bound parameters, so the log line held the narrative,
    and one claim's failed insert failed every claim of its micro-batch."""
    data = tmp_path / "data"
    store = Store.from_settings(DataSettings(data_dir=data))
    with store._writing.begin() as session:  # the database itself refuses this one claim
        session.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON predictions "
                "WHEN NEW.claim_id = 'CLM-REFUSED' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    store.close()
    lines = Lines()
    root = logging.getLogger()
    root.addHandler(lines)
    settings = ServiceSettings(model_dir=trained_checkpoint, data_dir=data, micro_batch_wait_ms=50)
    app = create_app(settings)
    try:
        with served(app) as address:
            claims = [{**CLAIM, "claim_id": f"CLM-{n}"} for n in range(6)]
            claims[2] = {**CLAIM, "claim_id": "CLM-REFUSED", "description": PERSONAL}
            with ThreadPoolExecutor(len(claims)) as pool:
                answers = list(
                    pool.map(
                        lambda claim: httpx.post(
                            f"http://{address}/v1/triage", json=claim, timeout=120
                        ),
                        claims,
                    )
                )
            computed = app.state.metrics.computed._value.get()
    finally:
        root.removeHandler(lines)
    assert [answer.status_code for answer in answers] == [200, 200, 500, 200, 200, 200]
    assert computed == 6
    store = Store.from_settings(DataSettings(data_dir=data))
    try:
        recorded = store.latest_claims(claim["claim_id"] for claim in claims)
    finally:
        store.close()
    assert set(recorded) == {claim["claim_id"] for claim in claims} - {"CLM-REFUSED"}
    written = "\n".join(lines.lines)
    assert "the store failed recording 1 predictions" in written  # the failure is logged
    for trace in TRACES:
        assert trace not in written
