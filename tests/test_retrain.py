"""Retraining from feedback: how corrections merge into history, the gate, and the whole loop."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from claims.cli.main import app
from claims.data.dataset import hash_fraction, load_claims
from claims.store import Store
from claims.store.data_settings import DataSettings
from claims.store.registry import Registry
from schemas.claim import Claim
from schemas.feedback import FeedbackItem, FeedbackRecord
from schemas.jobs import JobState
from serving.app import create_app
from serving.settings import ServiceSettings
from tests.helpers import claim_type_config, quick_config
from training.cli import register as register_training
from training.gate import judge
from training.retrain import FEEDBACK_HOLDOUT_SALT, merge_feedback

register_training(app)
runner = CliRunner()
MOVED, INTO = "storm", "water_damage"  # the adjusters' new guideline: storm water is water damage


def correction(feedback_id: str, claim_id: str, label: str, minute: int = 0) -> FeedbackRecord:
    return FeedbackRecord(
        feedback_id=feedback_id,
        claim_id=claim_id,
        labels={"claim_type": label},
        reason_code="misclassified",
        adjuster_id="adj-1",
        confirmed=True,
        received_at=datetime(2026, 1, 1, 12, minute, tzinfo=UTC),
    )


def test_the_newest_correction_wins_and_a_corrected_holdout_claim_is_judged_not_trained(
    claims_csv: Path,
) -> None:
    config = quick_config()
    history = load_claims(claims_csv, config)
    sides = zip(history.claims, history.is_test, strict=True)
    trained = [c.claim_id for c, test in sides if not test]
    train_id = next(  # a claim the feedback slice's hash leaves in training
        i for i in trained if hash_fraction(i, FEEDBACK_HOLDOUT_SALT) >= 0.2
    )
    test_id = next(c.claim_id for c, t in zip(history.claims, history.is_test, strict=True) if t)
    data = merge_feedback(
        config,
        history,
        [
            correction("a", train_id, "fire", 0),
            correction("b", train_id, "storm", 1),
            correction("c", test_id, "fire", 2),
        ],
        {},
    )
    rows = {claim.claim_id: row for row, claim in enumerate(data.training.claims)}
    assert data.training.labels["claim_type"][rows[train_id]] == "storm"
    assert test_id not in rows  # a held-out claim never trains, corrected or not
    assert [c.claim_id for c in data.feedback_slice.claims] == [test_id]
    assert data.feedback_slice.labels == {
        "claim_type": ["fire"],
        "severity": [None],
        "siu_referral": [None],
    }
    # the frozen holdout keeps every held-out claim with history's labels: corrections can
    # neither move nor shrink the yardstick
    assert len(data.holdout) == sum(history.is_test)
    held = [claim.claim_id for claim in data.holdout.claims].index(test_id)
    original = [claim.claim_id for claim in history.claims].index(test_id)
    assert data.holdout.labels["claim_type"][held] == history.labels["claim_type"][original]
    assert (data.used_feedback, data.held_out_feedback) == (["a", "b"], ["c"])


def test_claims_seen_only_by_the_service_join_and_unknown_ones_are_reported(
    claims_csv: Path,
) -> None:
    config = quick_config()
    history = load_claims(claims_csv, config)
    seen = Claim(claim_id="NEW-1", description="Hail broke two skylights; water came in.")
    data = merge_feedback(
        config,
        history,
        [correction("x", "NEW-1", "storm"), correction("y", "NEVER-SEEN", "fire")],
        {"NEW-1": seen},
    )
    everything = [*data.training.claims, *data.feedback_slice.claims]
    assert seen in everything and len(everything) == len(history) + 1
    assert list(data.unusable_feedback) == ["y"]
    assert "never seen" in data.unusable_feedback["y"]


def scores(champion: float, challenger: float, rows: int = 100) -> dict:
    def system(value: float) -> dict:
        return {"claim_type": {"macro_f1": value, "accuracy": value, "rows": float(rows)}}

    return {"champion": system(champion), "challenger": system(challenger), "base": system(0.1)}


@pytest.mark.parametrize(
    ("holdout", "feedback", "promoted", "words"),
    [
        (scores(0.80, 0.85), scores(0.2, 0.9), True, "promoted"),
        (scores(0.80, 0.65), scores(0.2, 0.9), False, "holdout"),
        (scores(0.80, 0.75), scores(0.5, 0.5), False, "no task"),
        (scores(0.80, 0.80), scores(0.1, 0.9, rows=5), False, "no task"),  # too few to count
        (scores(0.80, 0.85), scores(0.5, 0.9, rows=5), True, "macro_f1 on holdout"),
        # a holdout too small to gate refuses, whatever the feedback says
        (scores(0.80, 0.805, rows=5), scores(0.5, 0.9), False, "cannot gate"),
    ],
)
def test_the_gate_promotes_only_when_nothing_falls_and_something_rises(
    holdout: dict, feedback: dict, promoted: bool, words: str
) -> None:
    config = claim_type_config()
    decision = judge(config, {"holdout": holdout, "feedback": feedback}, "sp-old", "sp-new")
    assert decision.promoted is promoted
    assert words in decision.reason
    assert {check.slice for check in decision.checks} == {"holdout", "feedback"}


def claims_of(claims_csv: Path, label: str) -> list[dict]:
    history = load_claims(claims_csv, claim_type_config())
    return [
        claim.model_dump(mode="json")
        for claim, value in zip(history.claims, history.labels["claim_type"], strict=True)
        if value == label
    ]


def wait_for(predicate, seconds: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_corrections_are_learned_promoted_served_and_rolled_back(
    champion_registry: Registry, claims_csv: Path, data_dir: Path
) -> None:
    settings = ServiceSettings(training_data=claims_csv, reload_interval=0.2)
    moved = claims_of(claims_csv, MOVED)
    with TestClient(create_app(settings)) as client:
        champion = client.get("/v1/models/active").json()["model_version"]
        before = client.post("/v1/triage/batch", json={"claims": moved}).json()["results"]
        # the champion mostly agrees with history (its blend with the boosted partner is less
        # sure of its own training claims than the tuned model alone)
        assert sum(r["predictions"]["claim_type"]["label"] == MOVED for r in before) > 0.7 * len(
            moved
        )
        for number, result in enumerate(before):
            item = {
                "feedback_id": f"fb-{number}",
                "prediction_id": result["prediction_id"],
                "labels": {"claim_type": INTO},
                "reason_code": "guideline-2026-07",
                "adjuster_id": "adj-7",
                "confirmed": True,
            }
            assert client.post("/v1/feedback", json=item).status_code == 201

        job = client.post("/v1/retrain").json()
        wait_for(
            lambda: (
                client.get(f"/v1/retrain/{job['job_id']}").json()["state"]
                in {JobState.succeeded, JobState.failed}
            ),
            300,
        )
        job = client.get(f"/v1/retrain/{job['job_id']}").json()
        assert job["state"] == JobState.succeeded, job
        result = job["result"]
        if not result["promoted"]:
            # History's held-out storm claims keep their label on the frozen holdout, so a
            # guideline that moves a whole class may fall there by more than the tolerance:
            # then only an admin's explicit promotion puts it into service.
            assert "claim_type macro_f1 on holdout" in result["gate"]["reason"], result["gate"]
            promoted = client.post(
                f"/v1/models/{result['challenger_version']}/promote",
                json={"reason": "guideline-2026-07 moves storm water to water damage"},
            )
            assert promoted.status_code == 200, promoted.text
        wait_for(lambda: client.get("/v1/models/active").json()["model_version"] != champion, 30)
        active = client.get("/v1/models/active").json()
        assert active["registry_version"] == job["result"]["challenger_version"]

        after = client.post("/v1/triage/batch", json={"claims": moved}).json()["results"]
        assert sum(r["predictions"]["claim_type"]["label"] == INTO for r in after) > 0.8 * len(
            moved
        )
        lineage = client.get(f"/v1/models/{active['registry_version']}").json()["lineage"]
        assert lineage["parent_version"] == champion
        assert lineage["feedback_count"] + len(lineage["held_out_feedback_ids"]) == len(moved)

        rolled_back = client.post("/v1/models/rollback", json={"reason": "test"}).json()
        assert rolled_back["model_version"] == champion
        again = client.post("/v1/triage/batch", json={"claims": moved}).json()["results"]
    assert [r["predictions"] for r in again] == [r["predictions"] for r in before]


@pytest.mark.slow
def test_poisoned_feedback_trains_a_challenger_that_the_gate_rejects(
    champion_registry: Registry, claims_csv: Path, data_dir: Path
) -> None:
    registry = champion_registry
    champion = registry.champion()
    history = load_claims(claims_csv, claim_type_config())
    labels = sorted(set(history.labels["claim_type"]))
    rng = random.Random(5)
    store = Store.from_settings(DataSettings())
    for number, claim in enumerate(history.claims):
        if rng.random() < 0.8:
            store.add_feedback(
                FeedbackItem(
                    feedback_id=f"bad-{number}",
                    claim_id=claim.claim_id,
                    labels={"claim_type": rng.choice(labels)},
                    reason_code="bulk-import",
                    adjuster_id="adj-x",
                    confirmed=True,
                )
            )
    result = runner.invoke(app, ["retrain", "--data", str(claims_csv)])
    assert result.exit_code == 0, result.output
    assert registry.champion() == champion
    challenger = next(v for v in registry.versions() if v.version != champion)
    gate = challenger.lineage.gate
    assert gate is not None and not gate.promoted
    assert any(check.verdict == "fell" for check in gate.checks), gate.reason
    job = store.jobs(kind="retrain")[0]
    assert job.state == JobState.succeeded and job.result["promoted"] is False
