"""The console shows the language each claim was read as, given or detected, on the claim page
and in the review queue; an answer recorded before languages were read shows `unknown`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from claims.store import Store
from claims.store.data_settings import DataSettings
from schemas.auth import Role
from schemas.language import LanguageReading
from schemas.review import ReviewQueue
from serving.app import create_app
from serving.console.routes import language_shown
from serving.settings import ServiceSettings
from tests.test_console import sign_in
from tests.test_review_store import needing_review

PORTUGUESE = "O segurado bateu o carro no poste quando voltava do trabalho ontem à noite."
READINGS = {
    "pr-given": LanguageReading(tag="pt-BR", source="given"),
    "pr-detected": LanguageReading(tag="pt", source="detected"),
    "pr-und": LanguageReading(tag="und", source="detected"),
    "pr-old": None,  # recorded before the service read languages
}
SHOWN = {
    "pr-given": "pt-BR (given)",
    "pr-detected": "pt (detected)",
    "pr-und": "undetermined (detected)",
    "pr-old": "unknown",
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data directory whose queue holds one answer of each kind, and an adjuster's key."""
    data_dir = tmp_path_factory.mktemp("console-language")
    store = Store.from_settings(DataSettings(data_dir=data_dir))
    key = store.create_key("adjuster-lang", Role.adjuster)[1]
    records = []
    for prediction_id, reading in READINGS.items():
        record = needing_review(prediction_id, f"C-{prediction_id}")
        result = record.result.model_copy(update={"language": reading})
        claim = record.claim.model_copy(update={"description": PORTUGUESE})
        records.append(record.model_copy(update={"result": result, "claim": claim}))
    store.record_predictions(records)
    store.close()
    return data_dir, key


@pytest.fixture(scope="module")
def client(seeded: tuple[Path, str]) -> Iterator[TestClient]:
    """The adjuster, signed in to the console."""
    data_dir, key = seeded
    app = create_app(ServiceSettings(data_dir=data_dir, auth=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert sign_in(client, key).status_code == 303
        yield client


@pytest.mark.parametrize("prediction_id", list(READINGS))
def test_the_claim_page_shows_the_language_and_how_it_was_told(
    client: TestClient, prediction_id: str
) -> None:
    page = client.get(f"/console/claims/{prediction_id}")
    assert page.status_code == 200, page.text
    shown = re.search(r'<span id="language">([^<]*)</span>', page.text)
    assert shown is not None and shown.group(1) == SHOWN[prediction_id]


def test_the_queue_shows_each_claims_language(client: TestClient) -> None:
    page = client.get("/console/queue")
    assert page.status_code == 200, page.text
    rows = re.findall(
        r'href="/console/claims/([^"]+)" class="claim-link">.*?<td class="language">([^<]*)</td>',
        page.text,
        flags=re.S,
    )
    assert dict(rows) == SHOWN


def test_the_review_queue_api_gives_each_claims_language_too(
    client: TestClient, seeded: tuple[Path, str]
) -> None:
    headers = {"Authorization": f"Bearer {seeded[1]}"}
    response = client.get("/v1/review-queue", headers=headers)
    assert response.status_code == 200, response.text
    queue = ReviewQueue.model_validate(response.json())
    assert {item.prediction_id: language_shown(item.language) for item in queue.items} == SHOWN
