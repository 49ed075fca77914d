"""Calibrating the fine-tuned model on the validation split: a temperature per task so that its
probabilities mean what they say, then per-label offsets that choose the labels served."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from claims.model.network import Calibration, SpecialistModel
from claims.model.predictor import TunedPredictor
from schemas.config import SpecialistConfig
from training.data import EncodedClaims, TrainingData
from training.labels import IGNORE
from training.metrics import task_metrics

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
    """Per-label offsets on the served validation probabilities that maximise macro-F1;
    returns what each did."""
    notes = {}
    for task, values in probabilities.items():
        known = (targets[task] != IGNORE).numpy()
        if not known.any():
            continue
        labelled = targets[task].numpy()[known]
        before = task_metrics(config.task(task).kind, labelled, values[known])
        after = calibration.fit_decision_offsets(task, values[known], labelled)
        notes[f"decision_offsets.{task}"] = (
            f"validation macro-F1 {before['macro_f1']:.3f} -> {after:.3f}"
        )
    return notes
