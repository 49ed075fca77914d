"""Calibrating the fine-tuned model on the validation split: a temperature per task so that its
probabilities mean what they say, then per-label offsets that choose the labels served."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from sklearn.model_selection import KFold

from claims.model.network import Calibration, SpecialistModel, decide_labels
from claims.model.predictor import TunedPredictor
from schemas.config import SpecialistConfig
from training.data import EncodedClaims, TrainingData
from training.labels import IGNORE
from training.metrics import macro_f1, task_metrics

DECISION_OFFSET_GRID = np.linspace(-2.0, 2.0, 21)
OFFSET_FOLDS = 5

CANDIDATE_VERSION = "candidate"


def candidate_predictor(model: SpecialistModel, data: TrainingData) -> TunedPredictor:
    """The fine-tuned model as a predictor, uncalibrated until `calibrate` runs. It leaves the
    model's attention as fine-tuning ran it: a checkpoint's loader chooses packed attention
    for serving, not the trainer."""
    return TunedPredictor(
        model,
        data.tokenizer,
        data.features,
        Calibration(data.class_weights),
        data.labels,
        data.max_length,
        CANDIDATE_VERSION,
        pack=False,
    )


def calibrate(
    predictor: TunedPredictor, validation: EncodedClaims
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Fits the predictor's temperature per task on the validation split. Returns the tuned
    model's calibrated validation probabilities, and what was chosen."""
    logits = predictor.logits(validation.prepared())
    fit_temperatures(predictor.calibration, logits, validation.targets)
    probabilities = {
        task: predictor.calibration.probabilities(task, values).numpy()
        for task, values in logits.items()
    }
    return probabilities, {"calibration": "per task temperature fitted on the validation split"}


def fit_temperatures(
    calibration: Calibration,
    logits: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
) -> None:
    """Per task with a labelled row, the temperature with the lowest log loss on them."""
    for task, values in logits.items():
        known = targets[task] != IGNORE
        if known.any():
            calibration.fit_temperature(task, values[known], targets[task][known])


def fit_decision_offsets(
    config: SpecialistConfig,
    calibration: Calibration,
    probabilities: Mapping[str, np.ndarray],
    targets: Mapping[str, torch.Tensor],
) -> dict[str, str]:
    """Per-label offsets on the served validation probabilities that maximise macro-F1, kept
    only where offsets searched on part of the validation rows raise the macro-F1 of the rest:
    on a few hundred claims the search also fits their noise. Returns what each task did."""
    notes = {}
    for task, values in probabilities.items():
        known = (targets[task] != IGNORE).numpy()
        if not known.any():
            continue
        labelled = targets[task].numpy()[known]
        before = task_metrics(config.task(task).kind, labelled, values[known])
        offsets, after = search_decision_offsets(values[known], labelled)
        plain, searched = cross_validated_offsets(values[known], labelled)
        kept = searched > plain
        calibration.decision_offsets[task] = offsets if kept else np.zeros_like(offsets)
        notes[f"decision_offsets.{task}"] = (
            f"validation macro-F1 {before['macro_f1']:.3f} -> {after:.3f}; out of fold "
            f"{plain:.3f} -> {searched:.3f}: " + ("kept" if kept else "left out")
        )
    return notes


def search_decision_offsets(
    probabilities: np.ndarray, targets: np.ndarray, rounds: int = 3
) -> tuple[np.ndarray, float]:
    """Per-label offsets on log-probabilities that maximise macro-F1 on these rows, one label
    at a time over a grid (a threshold, for a binary task); the probabilities stay calibrated,
    only the choice of label moves. Returns the offsets and the macro-F1 they reach."""
    log_probabilities = np.log(np.clip(probabilities, 1e-12, None))
    offsets = np.zeros(probabilities.shape[1])

    def offset_macro_f1(candidate: np.ndarray) -> float:
        return macro_f1(targets, (log_probabilities + candidate).argmax(axis=1))

    best = offset_macro_f1(offsets)
    for _ in range(rounds):
        for label in range(len(offsets)):
            for value in DECISION_OFFSET_GRID:
                candidate = offsets.copy()
                candidate[label] = value
                score = offset_macro_f1(candidate)
                if score > best + 1e-9:
                    best, offsets = score, candidate
    return offsets, best


def cross_validated_offsets(probabilities: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Macro-F1 of every row's label chosen without offsets, and with offsets searched on the
    other folds' rows (OFFSET_FOLDS folds, pooled): what the offsets would do on claims their
    search never saw."""
    folds = KFold(min(OFFSET_FOLDS, len(targets)), shuffle=True, random_state=0)
    chosen = np.empty(len(targets), dtype=int)
    for searched_rows, held_rows in folds.split(probabilities):
        offsets, _ = search_decision_offsets(probabilities[searched_rows], targets[searched_rows])
        chosen[held_rows] = decide_labels(probabilities[held_rows], offsets)
    plain = decide_labels(probabilities)
    return macro_f1(targets, plain), macro_f1(targets, chosen)
