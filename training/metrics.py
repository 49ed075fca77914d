"""The numbers a claims team judges a triage model by, the same for every system compared."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from claims.data.dataset import LabelledClaims
from schemas.config import SpecialistConfig, TaskKind
from schemas.report import Interval
from training.labels import IGNORE, label_indices

CALIBRATION_BINS = 15
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Mean gap between stated confidence and observed frequency, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    error = 0.0
    for b in range(CALIBRATION_BINS):
        in_bin = bins == b
        if in_bin.any():
            error += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(error)


def primary_metric(kind: TaskKind) -> str:
    return "auc" if kind is TaskKind.binary else "macro_f1"


def task_metrics(
    kind: TaskKind,
    targets: np.ndarray,
    probabilities: np.ndarray,
    positive: int = 1,
    predicted: np.ndarray | None = None,
) -> dict[str, float]:
    """targets: label indices (rows without a label already removed); probabilities: (n, k);
    predicted: the labels chosen, where the system chooses other than the most probable."""
    predicted = probabilities.argmax(axis=1) if predicted is None else predicted
    metrics = {
        # over the labels present or predicted: a small slice of feedback lacks most labels,
        # and a label nobody has and nobody predicts is neither right nor wrong
        "macro_f1": float(f1_score(targets, predicted, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(targets, predicted)),
        "rows": float(len(targets)),
    }
    if kind is TaskKind.binary:
        score = probabilities[:, positive]
        is_positive = (targets == positive).astype(float)
        both_present = 0 < is_positive.sum() < len(is_positive)
        metrics["auc"] = float(roc_auc_score(is_positive, score)) if both_present else float("nan")
        metrics["average_precision"] = (
            float(average_precision_score(is_positive, score)) if both_present else float("nan")
        )
        metrics["ece"] = expected_calibration_error(score, is_positive)
    else:
        metrics["ece"] = expected_calibration_error(
            probabilities.max(axis=1), (predicted == targets).astype(float)
        )
    return metrics


@dataclass(frozen=True)
class LabelledRows:
    """One task's labelled rows of a split: which they are, their label indices, and the
    positive label's index (binary tasks)."""

    known: np.ndarray
    targets: np.ndarray
    positive: int


def labelled_rows(
    config: SpecialistConfig, split: LabelledClaims, labels: dict[str, list[str]]
) -> dict[str, LabelledRows]:
    """task -> its labelled rows; a task without any is left out."""
    ids = [claim.claim_id for claim in split.claims]
    rows = {}
    for task in config.tasks:
        targets = label_indices(task.name, split.labels[task.name], labels[task.name], ids)
        known = targets != IGNORE
        if known.any():
            positive = (
                labels[task.name].index(task.positive_label) if task.kind is TaskKind.binary else 1
            )
            rows[task.name] = LabelledRows(known, targets[known], positive)
    return rows


def score_predictions(
    config: SpecialistConfig,
    probabilities: dict[str, np.ndarray],
    split: LabelledClaims,
    labels: dict[str, list[str]],
    decide: Callable[[str, np.ndarray], np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics per task over the rows that have a label for it; `decide` picks each label."""
    scores = {}
    for task, rows in labelled_rows(config, split, labels).items():
        chosen = probabilities[task][rows.known]
        scores[task] = task_metrics(
            config.task(task).kind,
            rows.targets,
            chosen,
            rows.positive,
            decide(task, chosen) if decide else None,
        )
    return scores


def paired_bootstrap(
    kind: TaskKind,
    targets: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    reference: str,
    positive: int = 1,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[dict[str, Interval], dict[str, Interval]]:
    """How far sampling alone moves the primary metric: (each system's interval, the interval of
    `reference` minus each other system). Every system is scored on the same resamples, so the
    differences are paired: far narrower than the gap between two separate intervals suggests.

    outputs: system -> the positive label's score (binary tasks: AUC) or the labels chosen
    (macro-F1)."""
    score = _weighted_auc if kind is TaskKind.binary else macro_f1
    if kind is TaskKind.binary:
        truth = (targets == positive).astype(float)
        prepared = {
            name: np.unique(values, return_inverse=True)[1] for name, values in outputs.items()
        }
    else:
        truth = targets.astype(int)
        prepared = {name: np.asarray(values, dtype=int) for name, values in outputs.items()}
    rng = np.random.default_rng(seed)
    rows = len(targets)
    values = {name: np.empty(resamples) for name in outputs}
    for index in range(resamples):
        weights = np.bincount(rng.integers(0, rows, rows), minlength=rows).astype(float)
        for name, output in prepared.items():
            values[name][index] = score(truth, output, weights)
    tails = 100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2

    def interval(samples: np.ndarray) -> Interval:
        low, high = np.nanpercentile(samples, tails)
        return Interval(low=float(low), high=float(high))

    intervals = {name: interval(samples) for name, samples in values.items()}
    leads = {
        name: interval(values[reference] - samples)
        for name, samples in values.items()
        if name != reference
    }
    return intervals, leads


def _weighted_auc(is_positive: np.ndarray, score_rank: np.ndarray, weights: np.ndarray) -> float:
    """AUC of rows repeated `weights` times; score_rank: each row's place among the distinct
    scores, ties counted half as roc_auc_score does."""
    places = int(score_rank.max()) + 1
    positives = np.bincount(score_rank, weights * is_positive, places)
    negatives = np.bincount(score_rank, weights * (1 - is_positive), places)
    pairs = positives.sum() * negatives.sum()
    if not pairs:
        return float("nan")
    below = np.cumsum(negatives) - negatives
    return float(positives @ (below + 0.5 * negatives) / pairs)


def macro_f1(
    targets: np.ndarray, predicted: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Macro-F1 over the labels present or predicted, as f1_score(average="macro",
    zero_division=0) counts them, with rows repeated `weights` times. One confusion count, not
    scikit-learn's checks of its input: the bootstrap and the decision-offset search call it
    thousands of times per fit."""
    labels = int(max(targets.max(), predicted.max())) + 1
    confusion = np.bincount(targets * labels + predicted, weights, labels * labels).reshape(
        labels, labels
    )
    true_positive = np.diag(confusion)
    support, chosen = confusion.sum(axis=1), confusion.sum(axis=0)
    counted = (support > 0) | (chosen > 0)
    f1 = 2 * true_positive[counted] / (support[counted] + chosen[counted])
    return float(f1.mean())
