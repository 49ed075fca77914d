"""Bootstrap intervals: the same figures as scikit-learn on each resample, and pairing that
separates a real lead from sampling noise; a split's scores count only the rows labelled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import f1_score, roc_auc_score

from claims.data.dataset import frame_to_claims
from claims.domain.config import load_config
from schemas.config import TaskKind
from training.labels import resolve_labels
from training.metrics import (
    CONFIDENCE,
    macro_f1,
    paired_bootstrap,
    score_predictions,
    task_metrics,
)

ROWS = 2000


@pytest.fixture
def binary_outputs() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    targets = (rng.random(ROWS) < 0.15).astype(int)
    signal = targets + rng.normal(0, 1.2, ROWS)
    return targets, {
        "specialist": np.round(signal + rng.normal(0, 0.3, ROWS), 2),  # rounded: ties count
        "weaker": np.round(signal + rng.normal(0, 1.5, ROWS), 2),
        "same": np.round(signal + rng.normal(0, 0.3, ROWS), 2),
    }


labelled_pairs = st.integers(1, 60).flatmap(
    lambda rows: st.tuples(
        st.lists(st.integers(0, 6), min_size=rows, max_size=rows),
        st.lists(st.integers(0, 6), min_size=rows, max_size=rows),
        st.lists(st.integers(0, 3), min_size=rows, max_size=rows),
    )
)


@given(labelled_pairs)
def test_macro_f1_is_scikit_learns_with_rows_repeated_by_their_weights(
    pairs: tuple[list[int], list[int], list[int]],
) -> None:
    targets, predicted, repeats = (np.array(values) for values in pairs)
    expected = f1_score(targets, predicted, average="macro", zero_division=0)
    assert macro_f1(targets, predicted) == pytest.approx(expected)
    if repeats.any():  # a row of weight 2 counts as the row twice, of weight 0 not at all
        weighted = f1_score(
            np.repeat(targets, repeats),
            np.repeat(predicted, repeats),
            average="macro",
            zero_division=0,
        )
        assert macro_f1(targets, predicted, repeats.astype(float)) == pytest.approx(weighted)


def test_intervals_are_percentiles_of_scikit_learn_on_the_same_resamples(
    binary_outputs: tuple[np.ndarray, dict[str, np.ndarray]],
) -> None:
    targets, outputs = binary_outputs
    intervals, leads = paired_bootstrap(
        TaskKind.binary, targets, outputs, "specialist", resamples=40, seed=5
    )
    rng = np.random.default_rng(5)
    drawn = [rng.integers(0, ROWS, ROWS) for _ in range(40)]
    auc = {
        name: np.array([roc_auc_score(targets[rows], scores[rows]) for rows in drawn])
        for name, scores in outputs.items()
    }
    tails = [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2]
    for name in outputs:
        assert [intervals[name].low, intervals[name].high] == pytest.approx(
            np.percentile(auc[name], tails)
        )
    lead = np.percentile(auc["specialist"] - auc["weaker"], tails)
    assert [leads["weaker"].low, leads["weaker"].high] == pytest.approx(lead)
    assert "specialist" not in leads


def test_pairing_tells_a_real_lead_from_noise(
    binary_outputs: tuple[np.ndarray, dict[str, np.ndarray]],
) -> None:
    targets, outputs = binary_outputs
    intervals, leads = paired_bootstrap(TaskKind.binary, targets, outputs, "specialist")
    full = roc_auc_score(targets, outputs["specialist"])
    assert intervals["specialist"].low < full < intervals["specialist"].high
    assert leads["weaker"].low > 0  # ahead beyond sampling error
    assert leads["same"].low < 0 < leads["same"].high  # equally good: no lead either way
    # the separate intervals overlap even where the paired lead is clear
    assert intervals["weaker"].high > intervals["specialist"].low
    lead_width = leads["weaker"].high - leads["weaker"].low
    assert lead_width < intervals["specialist"].high - intervals["weaker"].low


def test_macro_f1_intervals_match_scikit_learn_and_count_only_labels_in_play() -> None:
    rng = np.random.default_rng(8)
    targets = rng.choice(4, ROWS, p=[0.6, 0.3, 0.1, 0.0])  # label 3 never occurs...
    guessed = np.where(
        rng.random(ROWS) < 0.7, targets, rng.integers(0, 4, ROWS)
    )  # ...but is chosen
    outputs = {"specialist": guessed, "perfect": targets}
    intervals, leads = paired_bootstrap(
        TaskKind.multiclass, targets, outputs, "specialist", resamples=30, seed=2
    )
    rng = np.random.default_rng(2)
    drawn = [rng.integers(0, ROWS, ROWS) for _ in range(30)]
    f1 = [f1_score(targets[rows], guessed[rows], average="macro") for rows in drawn]
    tails = [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2]
    assert [intervals["specialist"].low, intervals["specialist"].high] == pytest.approx(
        np.percentile(f1, tails)
    )
    assert intervals["perfect"].low == intervals["perfect"].high == 1.0
    assert leads["perfect"].high < 0  # the perfect system is ahead of the specialist


def test_intervals_narrow_as_the_held_out_claims_grow() -> None:
    rng = np.random.default_rng(4)
    widths = []
    for rows in (300, 6000):
        targets = (rng.random(rows) < 0.2).astype(int)
        scores = targets + rng.normal(0, 1, rows)
        intervals, _ = paired_bootstrap(
            TaskKind.binary, targets, {"specialist": scores}, "specialist", resamples=200
        )
        widths.append(intervals["specialist"].high - intervals["specialist"].low)
    assert widths[1] < widths[0] / 3


def test_a_split_is_scored_on_the_rows_labelled_for_each_task(claims_frame: pd.DataFrame) -> None:
    config = load_config()
    split = frame_to_claims(claims_frame.head(60), config, source="synthetic")
    labels = {t.name: resolve_labels(t, split.labels[t.name]) for t in config.tasks}
    split.labels["severity"][:20] = [None] * 20  # a third unlabelled for one task
    rng = np.random.default_rng(0)
    probabilities = {
        task: rng.dirichlet(np.ones(len(names)), len(split)) for task, names in labels.items()
    }
    always_first = lambda task, values: np.zeros(len(values), dtype=int)  # noqa: E731
    scores = score_predictions(config, probabilities, split, labels, always_first)
    assert scores["severity"]["rows"] == 40 and scores["claim_type"]["rows"] == 60
    truth = np.array([labels["severity"].index(v) for v in split.labels["severity"][20:]])
    expected = task_metrics(
        TaskKind.multiclass, truth, probabilities["severity"][20:], 1, np.zeros(40, dtype=int)
    )
    assert scores["severity"] == expected
    assert score_predictions(config, probabilities, split, labels)["severity"] != expected
