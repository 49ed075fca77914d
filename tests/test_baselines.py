"""The classical baselines the specialist is judged against, on small synthetic claims."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd
import pytest
import torch

from claims.data.dataset import frame_to_claims
from claims.domain.config import load_config
from claims.model.features import StructuredFeatures
from training import baselines
from training.baselines import (
    RetrievalBaseline,
    StructuredBoostingBaseline,
    TfidfLogisticBaseline,
    fit_text_model,
)
from training.labels import label_indices, resolve_labels
from training.metrics import task_metrics


@pytest.fixture(scope="module")
def split(claims_frame: pd.DataFrame):
    config = load_config()
    data = frame_to_claims(claims_frame, config, source="synthetic")
    development, test = data.split()
    labels = {t.name: resolve_labels(t, development.labels[t.name]) for t in config.tasks}

    def targets(part):
        ids = [c.claim_id for c in part.claims]
        return {t: label_indices(t, part.labels[t], labels[t], ids) for t in labels}

    counts = {task: len(names) for task, names in labels.items()}
    return config, development, test, targets(development), targets(test), counts


def test_tfidf_learns_claim_type_from_the_narrative(split) -> None:
    _, development, test, train_targets, test_targets, counts = split
    probabilities = TfidfLogisticBaseline().fit(development.claims, train_targets, counts)
    scores = probabilities.predict_proba(test.claims)
    assert scores["claim_type"].shape == (len(test), counts["claim_type"])
    np.testing.assert_allclose(scores["severity"].sum(axis=1), 1.0)
    accuracy = (scores["claim_type"].argmax(1) == test_targets["claim_type"]).mean()
    assert accuracy > 0.5


def test_out_of_fold_scores_come_from_models_that_never_saw_the_row(split) -> None:
    _, development, _, train_targets, _, counts = split
    in_sample, scores = fit_text_model(development.claims, train_targets, counts, seed=0)
    assert scores.shape == (len(development), sum(counts.values()))
    fitted = in_sample.predict_proba(development.claims)["claim_type"]
    oof = scores[:, : counts["claim_type"]]
    truth = train_targets["claim_type"]
    # honest scores are less sure of the true label than scores of a model that saw it
    assert oof[np.arange(len(truth)), truth].mean() < fitted[np.arange(len(truth)), truth].mean()


def test_folds_fitted_side_by_side_score_as_one_after_another(
    split, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, development, _, train_targets, _, counts = split
    monkeypatch.setattr(baselines, "PARALLEL_FOLDS_FROM", 10**9)  # a small set's way
    model, one_by_one = fit_text_model(development.claims, train_targets, counts, seed=0)
    monkeypatch.setattr(baselines, "PARALLEL_FOLDS_FROM", 0)  # a large set's way, in processes
    shipped, side_by_side = fit_text_model(development.claims, train_targets, counts, seed=0)
    np.testing.assert_allclose(side_by_side, one_by_one, atol=1e-6)
    for task, probabilities in model.predict_proba(development.claims).items():
        np.testing.assert_allclose(
            shipped.predict_proba(development.claims)[task], probabilities, atol=1e-6
        )
    # Workers that outlived the fit kept a process fitting the partner beside a GPU from ending.
    assert multiprocessing.active_children() == []


def test_gradient_boosting_reads_the_structured_fields(split) -> None:
    config, development, test, train_targets, test_targets, counts = split
    features = StructuredFeatures.fit(
        development.claims, config.input.numeric, config.input.categorical
    )
    for with_text in (False, True):
        model = StructuredBoostingBaseline(features, with_text=with_text)
        scores = model.fit(development.claims, train_targets, counts).predict_proba(test.claims)
        assert set(scores) == set(counts)
        np.testing.assert_allclose(scores["siu_referral"].sum(axis=1), 1.0)
    # line_of_business alone narrows claim type far above chance (1/11)
    metrics = task_metrics(
        config.task("claim_type").kind, test_targets["claim_type"], scores["claim_type"]
    )
    assert metrics["accuracy"] > 0.3


def test_retrieval_votes_with_the_nearest_claims() -> None:
    vocabulary = ["fire", "flood", "theft"]

    def embed(texts):
        vectors = torch.tensor([[float(word in t) for word in vocabulary] for t in texts])
        return torch.nn.functional.normalize(vectors + 1e-3, dim=-1)

    from schemas.claim import Claim

    memory = [
        Claim(claim_id=str(i), description=d) for i, d in enumerate(["fire", "flood", "fire"])
    ]
    targets = {"kind": np.array([0, 1, 0])}
    model = RetrievalBaseline(embed, neighbours=1).fit(memory, targets, {"kind": 2})
    scores = model.predict_proba([Claim(claim_id="q", description="a flood")])["kind"]
    assert scores[0].argmax() == 1 and scores[0].sum() == pytest.approx(1.0)
