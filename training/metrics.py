"""The numbers a claims team judges a triage model by, the same for every system compared."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from schemas.config import TaskKind

CALIBRATION_BINS = 15


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
