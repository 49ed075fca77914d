"""The boosted partner: stored as text exactly as it was fitted, and blended only where it helps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from claims.checkpoint import PARTNER, load_checkpoint
from claims.config import load_config
from claims.dataset import frame_to_claims
from claims.features import StructuredFeatures
from claims.partner import BoostedPartner, PartnerState
from schemas.config import Strategy
from tests.conftest import quick_config
from training.baselines import TfidfLogisticBaseline
from training.labels import label_indices, resolve_labels
from training.partner import PartnerFit, choose_blend, fit_partner
from training.trainer import SpecialistTrainer


@pytest.fixture(scope="module")
def fitted(claims_frame: pd.DataFrame):
    config = load_config()
    development, test = frame_to_claims(claims_frame, config, source="synthetic").split()
    labels = {t.name: resolve_labels(t, development.labels[t.name]) for t in config.tasks}
    ids = [c.claim_id for c in development.claims]
    targets = {t: label_indices(t, development.labels[t], labels[t], ids) for t in labels}
    counts = {task: len(names) for task, names in labels.items()}
    features = StructuredFeatures.fit(
        development.claims, config.input.numeric, config.input.categorical
    )
    partner = fit_partner(
        development.claims, features.transform(development.claims), targets, counts, seed=0
    )
    return development, test, features, targets, counts, partner


def test_the_stored_text_scorer_gives_scikit_learns_probabilities(fitted) -> None:
    development, test, _, targets, counts, partner = fitted
    reference = TfidfLogisticBaseline().fit(development.claims, targets, counts)
    expected = np.hstack(list(reference.predict_proba(test.claims).values()))
    stored = partner.state.text.scores([claim.description for claim in test.claims])
    np.testing.assert_allclose(stored, expected, atol=1e-9)


def test_the_partner_reloads_from_json_to_identical_probabilities(fitted) -> None:
    _, test, features, _, _, partner = fitted
    reloaded = BoostedPartner(PartnerState.model_validate_json(partner.state.model_dump_json()))
    texts = [claim.description for claim in test.claims]
    inputs = partner.inputs(texts, features.transform(test.claims))
    before, after = partner.predict_proba(inputs), reloaded.predict_proba(inputs)
    for task, values in before.items():
        np.testing.assert_allclose(values.sum(axis=1), 1.0)
        np.testing.assert_array_equal(after[task], values)


def test_the_partner_learns_claim_type(fitted) -> None:
    _, test, features, _, _, partner = fitted
    labels = {t.name: resolve_labels(t, test.labels[t.name]) for t in load_config().tasks}
    truth = label_indices(
        "claim_type",
        test.labels["claim_type"],
        labels["claim_type"],
        [c.claim_id for c in test.claims],
    )
    inputs = partner.inputs([c.description for c in test.claims], features.transform(test.claims))
    assert (partner.predict_proba(inputs)["claim_type"].argmax(1) == truth).mean() > 0.5


def test_the_blend_keeps_the_tuned_model_unless_the_partner_lowers_the_loss() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    good = np.column_stack([np.where(truth == 0, 0.8, 0.2), np.where(truth == 1, 0.8, 0.2)])
    useless = np.full((400, 2), 0.5)
    weight, losses = choose_blend(good, useless, truth)
    assert weight == 1.0 and losses[1.0] < losses[0.0]
    weight, _ = choose_blend(useless, good, truth)
    assert weight == 0.0
    assert choose_blend(good, good, truth)[0] == 1.0  # a tie keeps the tuned model alone
    # each model sure and right on its own half of the rows, unsure on the other: mix them
    first = np.arange(400) < 200
    sure = np.where(first, 0.9, 0.5)
    tuned = np.column_stack(
        [np.where(truth == 0, sure, 1 - sure), np.where(truth == 1, sure, 1 - sure)]
    )
    other = np.where(first, 0.5, 0.9)
    partner = np.column_stack(
        [np.where(truth == 0, other, 1 - other), np.where(truth == 1, other, 1 - other)]
    )
    weight, losses = choose_blend(tuned, partner, truth)
    assert weight == 0.5 and losses[0.5] < min(losses[1.0], losses[0.0])


def test_one_thread_or_none_the_partner_answers_alike(fitted) -> None:
    """A pool's processes predict on one thread each, and a chunk may have no claims left."""
    _, test, features, _, counts, partner = fitted
    texts = [claim.description for claim in test.claims]
    inputs = partner.inputs(texts, features.transform(test.claims))
    one_thread = BoostedPartner(partner.state, threads=1)
    for task, values in partner.predict_proba(inputs).items():
        np.testing.assert_array_equal(one_thread.predict_proba(inputs)[task], values)
    empty = partner.predict_proba(partner.inputs([], features.transform([])))
    assert {task: values.shape for task, values in empty.items()} == {
        task: (0, count) for task, count in counts.items()
    }


def test_a_partner_fitted_beside_in_another_process_answers_as_one_fitted_here(fitted) -> None:
    development, test, features, targets, counts, partner = fitted
    structured = features.transform(development.claims)
    beside = PartnerFit(development.claims, structured, targets, counts, 0, beside=True)
    texts = [claim.description for claim in test.claims]
    inputs = partner.inputs(texts, features.transform(test.claims))
    answers = beside.result().predict_proba(inputs)
    for task, values in partner.predict_proba(inputs).items():
        np.testing.assert_allclose(answers[task], values, atol=1e-6)


def test_a_checkpoint_records_its_blend_and_serves_it(trained_checkpoint: Path) -> None:
    manifest = json.loads((trained_checkpoint / "manifest.json").read_text())
    blends = {k: v for k, v in manifest["selection"].items() if k.startswith("blend.")}
    assert set(blends) == {f"blend.{task.name}" for task in load_config().tasks}
    predictor = load_checkpoint(trained_checkpoint).predictor
    stored = (trained_checkpoint / PARTNER).is_file()
    assert stored == (predictor.partner is not None)
    if stored:
        weights = predictor.partner.state.tuned_weights
        assert any(weight < 1.0 for weight in weights.values())
        for task, weight in weights.items():
            assert f"tuned model weight {weight:.1f}" in blends[f"blend.{task}"]


def test_without_the_partner_the_tuned_model_answers_alone(
    claims_csv: Path, tmp_path: Path
) -> None:
    config = quick_config(strategy=Strategy.head, max_steps=2, boosted_partner=False)
    outcome = SpecialistTrainer(config, show_progress=False).fit(claims_csv, tmp_path / "m")
    assert outcome.manifest.selection["partner"].startswith("not fitted: boosted_partner is off")
    assert not (outcome.checkpoint / PARTNER).exists()
    assert load_checkpoint(outcome.checkpoint).predictor.partner is None
