"""Explanations: the narrative's phrases by occlusion, the fields by the boosted and linear
members' exact contributions, and the decision's reasons; on a really fine-tuned checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from claims.data.synthetic import generate_claims
from claims.domain.triage import triage
from claims.model.checkpoint import LoadedCheckpoint, load_checkpoint
from claims.model.explain import (
    MAX_PHRASES,
    NARRATIVE_WORDS,
    field_factors,
    phrase_spans,
    without,
)
from claims.model.stack import BOOSTED, LINEAR
from schemas.claim import Claim
from serving.app import create_app
from serving.settings import ServiceSettings


def test_phrases_are_clauses_cut_into_a_few_words_and_bounded() -> None:
    text = "Insd reports burst pipe under kitchen sink, water through floor. No inj."
    spans = phrase_spans(text)
    assert [text[start:end] for start, end in spans] == [
        "Insd reports burst pipe",
        "under kitchen sink,",
        "water through floor.",
        "No inj.",
    ]
    assert without(text, *spans[1]) == "Insd reports burst pipe water through floor. No inj."
    long = " ".join(f"word{n}," for n in range(500))
    long_spans = phrase_spans(long)
    assert len(long_spans) <= MAX_PHRASES
    assert long_spans[0][0] == 0 and long_spans[-1][1] == len(long)
    assert phrase_spans("") == []


@pytest.fixture(scope="module")
def loaded(trained_checkpoint: Path) -> LoadedCheckpoint:
    return load_checkpoint(trained_checkpoint)


@pytest.fixture(scope="module")
def claims() -> list[Claim]:
    frame = generate_claims(12, seed=5).drop(columns=["claim_type", "severity", "siu_referral"])
    return [
        Claim(
            claim_id=row["claim_id"],
            description=row["description"],
            line_of_business=row.get("line_of_business"),
            attributes={"region": row["region"]},
        )
        for row in frame.to_dict(orient="records")
    ]


def test_a_phrase_weight_is_what_its_removal_takes_from_the_probability(
    loaded: LoadedCheckpoint, claims: list[Claim]
) -> None:
    predictor, policy = loaded.predictor, loaded.config.policy
    results = triage(claims[:3], predictor, policy, explain=True)
    for claim, result in zip(claims[:3], results, strict=True):
        assert result.explanation is not None
        for task, explained in result.explanation.tasks.items():
            assert explained.label == result.predictions[task].label
            weights = [factor.weight for factor in explained.phrases]
            raising = [w for w in weights if w > 0]
            assert raising == sorted(raising, reverse=True)
            for factor in explained.phrases[:1]:
                assert claim.description[factor.start : factor.end] == factor.text
                shorter = claim.model_copy(
                    update={"description": without(claim.description, factor.start, factor.end)}
                )
                label = predictor.labels[task].index(explained.label)
                both = predictor.predict_proba([claim, shorter])[task][:, label]
                assert both[0] - both[1] == pytest.approx(factor.weight, abs=1e-3)


def test_field_weights_are_the_boosted_and_linear_members_exact_contributions(
    loaded: LoadedCheckpoint, claims: list[Claim]
) -> None:
    predictor, policy = loaded.predictor, loaded.config.policy
    partner = predictor.preparer.partner
    assert partner is not None, "the default recipe fits the stack"
    results = triage(claims, predictor, policy)
    factors = field_factors(claims, results, predictor)
    inputs = partner.inputs(
        [c.description for c in claims], predictor.preparer.features.transform(claims)
    )
    members = partner.predict_proba(inputs)
    for task, booster in partner.boosters.items():
        weights = partner.state.stack_weights[task]
        boosted, linear = weights.get(BOOSTED, 0.0), weights.get(LINEAR, 0.0)
        if not boosted and not linear:
            continue
        raw = booster.predict(inputs, raw_score=True)
        contributions = booster.predict(inputs, pred_contrib=True)
        linear_answers = members[LINEAR][task]
        for row, result in enumerate(results):
            label = predictor.labels[task].index(result.predictions[task].label)
            summed = sum(f.weight for f in factors[row][task])
            # what each member's raw score for the label is, less what no field moves: the
            # boosted member's bias and the linear member's score at the training means
            if raw.ndim == 1:
                sign = 1.0 if label == 1 else -1.0
                boosted_score = sign * (raw[row] - contributions[row, -1])
                margin = np.log(linear_answers[row, 1] / linear_answers[row, 0])
                at_mean = partner.arrays[f"linear.intercept.{task}"][0]
                linear_score = sign * (margin - at_mean)
            else:
                width = inputs.shape[1] + 1
                boosted_score = raw[row, label] - contributions[row, (label + 1) * width - 1]
                linear_score = partner.linear_contributions(task, inputs[row : row + 1])[
                    0, label
                ].sum()
            expected = boosted * boosted_score + linear * linear_score
            assert summed == pytest.approx(expected, abs=1e-6)
            names = [f.field for f in factors[row][task]]
            assert NARRATIVE_WORDS in names and "region" in names
            region = next(f for f in factors[row][task] if f.field == "region")
            assert region.value == claims[row].attributes["region"]


def test_answers_needing_review_are_explained_and_others_only_on_request(
    loaded: LoadedCheckpoint, claims: list[Claim]
) -> None:
    predictor, policy = loaded.predictor, loaded.config.policy
    results = triage(claims, predictor, policy)
    for result in results:
        assert (result.explanation is not None) == result.decision.needs_review
    assert all(r.explanation is not None for r in triage(claims, predictor, policy, explain=True))


def test_the_reasons_name_the_rule_and_the_factors(
    loaded: LoadedCheckpoint, claims: list[Claim]
) -> None:
    predictor = loaded.predictor
    policy = loaded.config.policy.model_copy(deep=True)
    rule = policy.routes[0]
    task = rule.when[0].task  # type: ignore[union-attr]
    # a rule every claim meets: the route and its reasons are known
    rule.when = [rule.when[0].model_copy(update={"min_probability": 0.0})]
    results = triage(claims[:2], predictor, policy, explain=True)
    for result in results:
        assert result.decision.route == rule.route and result.decision.route_rule == 1
        assert result.explanation is not None
        first = result.explanation.reasons[0]
        assert first.startswith(f"route {rule.route} by rule 1 of policy {policy.version}")
        assert rule.reason in first and task in first
        if result.explanation.tasks[task].label in rule.when[0].labels:  # type: ignore[union-attr]
            assert "raised by" in first or "lowered by" in first


def test_the_base_models_answers_carry_no_explanation(
    loaded: LoadedCheckpoint, claims: list[Claim]
) -> None:
    from claims.model.predictor import ZeroShotPredictor

    base = ZeroShotPredictor.from_base(
        loaded.base_path,
        loaded.config.tasks,
        loaded.predictor.labels,
        loaded.config.training.max_length,
    )
    results = triage(claims[:2], base, loaded.config.policy, "test", explain=True)
    assert all(result.explanation is None for result in results)


@pytest.fixture(scope="module")
def client(trained_checkpoint: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServiceSettings(model_dir=trained_checkpoint))) as test_client:
        yield test_client


def test_the_service_explains_on_request_and_keeps_the_explanation(
    client: TestClient, claims: list[Claim]
) -> None:
    claim = claims[0].model_dump(mode="json")
    explained = client.post("/v1/triage", params={"explain": "true"}, json=claim).json()
    assert explained["explanation"] is not None
    assert set(explained["explanation"]["tasks"]) == set(explained["predictions"])
    stored = client.get(f"/v1/predictions/{explained['prediction_id']}").json()
    assert stored["result"]["explanation"] == explained["explanation"]
    batch = client.post(
        "/v1/triage/batch", params={"explain": "true"}, json={"claims": [claim, claim]}
    ).json()["results"]
    assert all(result["explanation"] is not None for result in batch)
    plain = client.post("/v1/triage", json=claim).json()
    assert (plain["explanation"] is not None) == plain["decision"]["needs_review"]
    weights = np.array(
        [f["weight"] for t in explained["explanation"]["tasks"].values() for f in t["phrases"]]
    )
    assert np.isfinite(weights).all()
