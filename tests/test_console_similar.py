"""Similar settled claims on the claim page: the store's recently settled claims with the
labels adjusters settled on (SQLite and PostgreSQL), and the nearest narratives first."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from fastapi.testclient import TestClient

from claims.store import Store
from claims.store.data_settings import DataSettings
from schemas.auth import Role
from serving.app import create_app
from serving.settings import ServiceSettings
from tests.test_console import sign_in
from tests.test_console_plots import received_on, squeezed
from tests.test_review_store import needing_review
from tests.test_store import a_prediction, an_item

NARRATIVES = {
    "C-FIRE": "Insd reports kitchen fire from stove, smoke damage to upper cabinets and ceiling.",
    "C-PIPE": "Burst pipe under bathroom sink, water through the floor into the basement.",
    "C-BIKE": "Bicycle stolen from locked garage overnight, lock cut, police report filed.",
    "C-REAR": "Clmt rear-ended at red light by other vehicle, whiplash, bumper and trunk damaged.",
    "C-HAIL": "Hail storm dented roof and hood of parked car, windscreen cracked.",
}
NEAR_DUPLICATE = "Clmt rear ended at a red light by OV, reports whiplash; bumper and trunk damaged."


def settle(store: Store) -> None:
    """Each claim answered and then settled: severity as the adjusters confirmed it."""
    store.record_predictions(
        [
            a_prediction(f"pr-{claim_id}", claim_id, description=text)
            for claim_id, text in NARRATIVES.items()
        ]
    )
    for claim_id in NARRATIVES:
        severity = "severe" if claim_id == "C-REAR" else "low"
        store.add_feedback(
            an_item(
                f"fb-{claim_id}",
                prediction_id=f"pr-{claim_id}",
                labels={"severity": severity},
                confirmed=True,
            )
        )


def test_settled_claims_are_the_newest_confirmed_with_their_newest_labels(store: Store) -> None:
    store.record_predictions(
        [a_prediction("pr-1", "C-1"), a_prediction("pr-2", "C-2"), a_prediction("pr-3", "C-3")]
    )
    store.add_feedback(an_item("fb-1", prediction_id="pr-1", confirmed=True))
    store.add_feedback(
        an_item("fb-1-later", claim_id="C-1", labels={"severity": "low"}, confirmed=True)
    )
    store.add_feedback(
        an_item("fb-1-unsure", claim_id="C-1", labels={"severity": "severe"}, confirmed=False)
    )
    store.add_feedback(an_item("fb-2", prediction_id="pr-2", confirmed=True))
    store.add_feedback(an_item("fb-3-unsure", prediction_id="pr-3", confirmed=False))
    store.add_feedback(an_item("fb-no-text", claim_id="C-9", confirmed=True))
    received_on(store, date(2026, 3, 1), "fb-1", "fb-2")
    received_on(store, date(2026, 3, 2), "fb-1-later")

    settled = store.settled_claims(10)
    assert [(s.claim.claim_id, s.labels, s.prediction_id) for s in settled] == [
        ("C-1", {"severity": "low"}, "pr-1"),  # the newest confirmed label wins
        ("C-2", {"severity": "high"}, "pr-2"),
    ]
    assert settled[0].claim.description.startswith("Clmt states")
    assert [s.claim.claim_id for s in store.settled_claims(1)] == ["C-1"]
    assert [s.claim.claim_id for s in store.settled_claims(10, leave_out="C-1")] == ["C-2"]


def test_the_claim_page_shows_the_near_duplicate_first_with_its_settled_label(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = Store.from_settings(DataSettings(data_dir=data))
    key = store.create_key("adjuster-s", Role.adjuster)[1]
    settle(store)
    record = needing_review("pr-open", "C-OPEN")
    store.record_predictions(
        [
            record.model_copy(
                update={"claim": record.claim.model_copy(update={"description": NEAR_DUPLICATE})}
            )
        ]
    )
    store.close()
    app = create_app(ServiceSettings(data_dir=data, auth=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        sign_in(client, key)
        page = client.get("/console/claims/pr-open")
        assert page.status_code == 200
        table = squeezed(page.text.split('id="similar"')[1].split("</table>")[0])
        rows = re.findall(r'<th scope="row">(.*?)</tr>', table)
        assert rows, "no similar claim shown"
        assert '<a href="/console/claims/pr-C-REAR">C-REAR</a>' in rows[0]
        assert "severity = severe" in rows[0]
        assert all("C-OPEN" not in row for row in rows)  # not the claim itself
        assert all("C-BIKE" not in row for row in rows)  # nothing in common
