"""A claim's language: given by the client or detected from its narrative, shown in the answer,
recorded with the prediction and counted. The service tests run on the base model, so only the
last test trains."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from claims.data.synthetic import generate_claims
from claims.domain.language import LanguageDetector
from claims.store import Store
from claims.store.orm import Prediction
from claims.store.store import alembic_config
from schemas.claim import Claim
from serving.app import create_app
from serving.observability import ServiceMetrics
from serving.settings import ServiceSettings

# Real-shaped lines, as claimants and adjusters in Brazil and Portugal write them.
PORTUGUESE = [
    "Bati na traseira de um ônibus na Av. Paulista, o para-choque ficou todo amassado.",
    "Cliente diz que o celular foi roubado dentro do carro, fez BO na delegacia.",
    "Vazamento no banheiro do apartamento de cima, o teto da cozinha está manchado.",
    "Segurado refere furto do telemóvel no autocarro, apresentou queixa na PSP.",
    "Embate lateral na rotunda do IC19; o terceiro assumiu a culpa na declaração amigável.",
    "Infiltração na casa de banho após a chuva forte, o tecto ficou com bolor.",
    "Seg. refere colisão traseira no semáforo, V3 culpado, sem feridos.",
    "O segurado bateu o carro no poste quando voltava do trabalho.",
]
ENGLISH = [
    "Clmt states IV rear-ended at light by OV. PD to rear bumper, no inj.",
    "Insd reports kitchen fire from stove, smoke damage to upper cabinets.",
    "The insured hit a pole with the car on the way home from work.",
    "Water leaking from the upstairs bathroom stained the kitchen ceiling.",
]
SHORT = ["ver anexo", "ok", "REF 94065", "Colisão traseira", "see email 10/10/21", "a b c d"]


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.mark.parametrize("locale,currency", [("pt-BR", "BRL"), ("pt-PT", "EUR")])
def test_synthetic_portuguese_narratives_read_as_portuguese_or_undetermined(
    detector: LanguageDetector, locale: str, currency: str
) -> None:
    frame = generate_claims(300, seed=7, language="pt")
    narratives = frame.description[frame.currency == currency]
    read = Counter(detector.detect(text) for text in narratives)
    assert set(read) <= {"pt", "und"}, f"{locale} read as {read}"
    assert read["pt"] >= 0.75 * len(narratives)


def test_synthetic_english_narratives_read_as_english_or_undetermined(
    detector: LanguageDetector,
) -> None:
    narratives = generate_claims(300, seed=7, language="en").description
    read = Counter(detector.detect(text) for text in narratives)
    assert set(read) <= {"en", "und"}, read
    assert read["en"] >= 0.85 * len(narratives)


@pytest.mark.parametrize("text", PORTUGUESE)
def test_real_shaped_portuguese_lines_read_as_portuguese(
    detector: LanguageDetector, text: str
) -> None:
    assert detector.detect(text) == "pt"


@pytest.mark.parametrize("text", ENGLISH)
def test_real_shaped_english_lines_read_as_english(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) == "en"


@pytest.mark.parametrize("text", SHORT)
def test_short_text_is_undetermined(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) == "und"


def test_a_code_line_below_the_confidence_is_undetermined_not_guessed() -> None:
    codes = "FURTO INTERIOR VIATURA / REPARACAO LASCA / REBOQUE"  # enough words, little language
    assert LanguageDetector(min_confidence=0.8).detect(codes) == "und"
    assert LanguageDetector(min_confidence=0.01).detect(codes) != "und"


def test_spanish_is_not_read_as_portuguese_when_spanish_is_expected(
    detector: LanguageDetector,
) -> None:
    spanish = "El asegurado chocó con otro coche en la rotonda y el parachoques quedó destrozado."
    assert detector.detect(spanish) == "es"


def test_a_language_the_detector_does_not_know_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="klingon"):
        LanguageDetector(["en", "klingon"]).load()


def test_a_given_language_is_kept_and_standardised(detector: LanguageDetector) -> None:
    claim = Claim(claim_id="C-1", description=ENGLISH[0], language="pt_br")
    assert claim.language == "pt-BR"
    reading = detector.read(claim)
    assert (reading.tag, reading.source) == ("pt-BR", "given")
    reading = detector.read(Claim(claim_id="C-2", description=PORTUGUESE[0]))
    assert (reading.tag, reading.source) == ("pt", "detected")


# Through the service


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(ServiceSettings())) as test_client:
        yield test_client


def triaged(client: TestClient, **claim: object) -> dict:
    response = client.post("/v1/triage", json={"claim_id": "CLM-L1", **claim})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_answer_says_the_language_detected(client: TestClient) -> None:
    answer = triaged(client, description=PORTUGUESE[3])
    assert answer["language"] == {"tag": "pt", "source": "detected"}
    answer = triaged(client, description=ENGLISH[1])
    assert answer["language"] == {"tag": "en", "source": "detected"}
    answer = triaged(client, description="ver anexo")
    assert answer["language"] == {"tag": "und", "source": "detected"}


def test_the_service_detects_only_the_languages_it_is_told_to_expect() -> None:
    """The limit docs/portuguese.md states: a Spanish claim, when Spanish is not expected, reads
    as the nearest language that is."""
    spanish = "El asegurado chocó con otro coche en la rotonda y el parachoques quedó destrozado."
    settings = ServiceSettings(detect_languages=["en", "pt"])
    with TestClient(create_app(settings)) as client:
        assert triaged(client, description=spanish)["language"]["tag"] == "pt"
    with TestClient(create_app(ServiceSettings())) as client:
        assert triaged(client, description=spanish)["language"]["tag"] == "es"


def test_a_service_told_to_detect_a_language_the_detector_lacks_does_not_start() -> None:
    with (
        pytest.raises(ValueError, match="tlh"),
        TestClient(create_app(ServiceSettings(detect_languages=["en", "tlh"]))),
    ):
        pass


def test_a_given_language_is_respected_over_the_narrative(client: TestClient) -> None:
    answer = triaged(client, description=ENGLISH[0], language="PT-pt")
    assert answer["language"] == {"tag": "pt-PT", "source": "given"}


def test_a_batch_reads_each_claim_apart(client: TestClient) -> None:
    claims = [
        {"claim_id": "B-1", "description": PORTUGUESE[0]},
        {"claim_id": "B-2", "description": ENGLISH[2]},
        {"claim_id": "B-3", "description": PORTUGUESE[4], "language": "pt-PT"},
    ]
    response = client.post("/v1/triage/batch", json={"claims": claims})
    assert response.status_code == 200, response.text
    assert [result["language"] for result in response.json()["results"]] == [
        {"tag": "pt", "source": "detected"},
        {"tag": "en", "source": "detected"},
        {"tag": "pt-PT", "source": "given"},
    ]


@pytest.mark.parametrize(
    "language", ["english", "Portuguese", "pt--BR", "xx", "pt-BR-pt-PT", "p" * 36, "", 5]
)
def test_a_bad_language_tag_gets_422_naming_the_field(client: TestClient, language: object) -> None:
    response = client.post(
        "/v1/triage", json={"claim_id": "C-1", "description": ENGLISH[0], "language": language}
    )
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "language"]]


def test_the_language_is_recorded_and_shown_with_the_stored_answer(client: TestClient) -> None:
    detected = triaged(client, claim_id="CLM-S1", description=PORTUGUESE[1])
    given = triaged(client, claim_id="CLM-S2", description=ENGLISH[3], language="en-GB")
    detail = client.get(f"/v1/predictions/{detected['prediction_id']}").json()
    assert detail["result"]["language"] == {"tag": "pt", "source": "detected"}
    assert detail["claim"]["language"] is None
    detail = client.get(f"/v1/predictions/{given['prediction_id']}").json()
    assert detail["result"]["language"] == {"tag": "en-GB", "source": "given"}
    assert detail["claim"]["language"] == "en-GB"

    store: Store = client.app.state.store  # type: ignore[attr-defined]
    with store.reading() as session:
        rows = dict(
            session.execute(
                select(
                    Prediction.claim_id, Prediction.language + "/" + Prediction.language_source
                ).where(Prediction.claim_id.in_(["CLM-S1", "CLM-S2"]))
            ).all()
        )
    assert rows == {"CLM-S1": "pt/detected", "CLM-S2": "en-GB/given"}


def test_answers_are_counted_by_language(client: TestClient) -> None:
    metrics: ServiceMetrics = client.app.state.metrics  # type: ignore[attr-defined]

    def counted(language: str, source: str) -> float:
        labels = {"language": language, "source": source}
        value = metrics.registry.get_sample_value("claims_predictions_by_language_total", labels)
        return value or 0.0

    before = counted("pt", "given"), counted("pt", "detected"), counted("other", "given")
    triaged(client, description=ENGLISH[0], language="pt-BR")
    triaged(client, description=PORTUGUESE[2])
    triaged(client, description=ENGLISH[0], language="ptt")  # a registered three-letter code
    after = counted("pt", "given"), counted("pt", "detected"), counted("other", "given")
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


# The store, before and after the migration


def test_answers_recorded_before_the_migration_read_back_without_a_language(
    database_url: str,
) -> None:
    url = database_url
    Store(url).close()
    command.downgrade(alembic_config(url), "0005")
    old = {
        "prediction_id": "pr-old",
        "claim_id": "OLD-1",
        "predictions": {},
        "decision": {
            "route": "standard",
            "route_reason": "default",
            "needs_review": False,
            "review_reasons": [],
            "policy_version": "p-1",
        },
        "served_by": {"source": "base", "model_version": "base-1"},
    }
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO predictions (prediction_id, claim_id, claim, result, "
                    "model_version, source, created_at) VALUES ('pr-old', 'OLD-1', :claim, "
                    ":result, 'base-1', 'base', :at)"
                ),
                {
                    "claim": Claim(claim_id="OLD-1", description=ENGLISH[0]).model_dump_json(),
                    "result": json.dumps(old),
                    "at": datetime.now(UTC),
                },
            )
    finally:
        engine.dispose()
    store = Store(url)  # upgrades to head
    try:
        stored = store.prediction("pr-old")
        assert stored is not None and stored.result.language is None
        with store.reading() as session:
            assert session.execute(
                select(Prediction.language, Prediction.language_source)
            ).one() == (None, None)
    finally:
        store.close()


# The tuned specialist


def test_the_tuned_specialist_answers_a_portuguese_claim_and_says_so(
    trained_checkpoint: Path,
) -> None:
    with TestClient(create_app(ServiceSettings(model_dir=trained_checkpoint))) as client:
        answer = triaged(client, description=PORTUGUESE[0])
        assert answer["served_by"]["source"] == "tuned"
        assert answer["language"] == {"tag": "pt", "source": "detected"}
        answer = triaged(client, description=PORTUGUESE[5], language="pt-PT")
        assert answer["served_by"]["source"] == "tuned"
        assert answer["language"] == {"tag": "pt-PT", "source": "given"}
