"""Fitting a specialist on an insurer's labelled claims, step by step: prepare the data, build
the model, fine-tune it, calibrate it, blend it with its partner, score it. `fit` returns the
fitted specialist; it `save`s itself as a verified checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from transformers import set_seed

from claims.data.dataset import LabelledClaims, load_claims
from claims.model.checkpoint import TrainedSpecialist, write_checkpoint
from claims.model.encoder import (
    base_model_info,
    file_sha256,
    load_encoder,
    load_tokenizer,
    resolve_base_model,
)
from claims.model.predictor import TunedPredictor
from claims.model.stack import BoostedPartner
from schemas.checkpoint import DataInfo, Manifest
from schemas.config import SpecialistConfig
from training.calibration import calibrate, candidate_predictor, fit_decision_offsets
from training.data import EncodedClaims, TrainingData, prepare_data
from training.fine_tuning import OnStep, build_model, fine_tune
from training.metrics import score_predictions
from training.model_card import TUNED_ALONE, render_model_card
from training.partner import PartnerFit, fit_stack
from training.strategies import count_parameters


class FittedSpecialist(TrainedSpecialist):
    """What `SpecialistTrainer.fit` learned (the tuned model, its calibration, its partner and
    stack weights), with the data it learned from and its scores."""

    def save(self, out_dir: str | Path) -> Manifest:
        """Writes the verified checkpoint with its model card; returns its manifest."""
        return write_checkpoint(self, out_dir, lambda version: render_model_card(self, version))


class _StageClock:
    """Seconds per stage of a fit, a stage ending at each `lap`; laps of one name add up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> dict[str, float]:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now
        return self.seconds


class SpecialistTrainer:
    """Fits one config on labelled claims."""

    def __init__(
        self,
        config: SpecialistConfig,
        *,
        show_progress: bool = True,
        on_step: OnStep | None = None,
    ) -> None:
        """`on_step(step, total_steps)` reports progress to a caller without a terminal."""
        self.config = config
        self.settings = config.training
        self.show_progress = show_progress
        self.on_step = on_step
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def fit(self, data_path: str | Path) -> FittedSpecialist:
        data_path = Path(data_path)
        return self.fit_claims(
            load_claims(data_path, self.config),
            data_name=data_path.name,
            data_sha256=file_sha256(data_path),
        )

    def fit_claims(
        self, everything: LabelledClaims, *, data_name: str, data_sha256: str
    ) -> FittedSpecialist:
        """Trains on claims already in memory (retraining merges feedback into them); the
        config's split still holds out the test rows."""
        started = time.perf_counter()
        stages = _StageClock()
        set_seed(self.settings.seed)
        base_path = resolve_base_model(self.config.base_model)
        data = prepare_data(self.config, everything, load_tokenizer(base_path), data_name)
        model = build_model(
            load_encoder(base_path),
            self.settings,
            data.features.dimension,
            data.label_counts,
            self.device,
        )
        partner_fits = self._start_partners(data)
        stages.lap("preparing")
        kept = fine_tune(
            model,
            data.train,
            data.validation,
            data.class_weights,
            self.settings,
            show_progress=self.show_progress,
            on_step=self.on_step,
        )
        stages.lap("fine_tuning")

        predictor = candidate_predictor(model, data)
        tuned, selection = calibrate(predictor, data.validation)
        predictor.preparer.partner, blended, notes = _blend(
            partner_fits, tuned, data.validation, stages
        )
        selection |= notes
        selection |= fit_decision_offsets(
            self.config, predictor.calibration, blended, data.validation.targets
        )
        metrics = score_fit(self.config, data, predictor, tuned, blended)
        trainable, total = count_parameters(model)
        return FittedSpecialist(
            model=model.cpu(),
            strategy=self.settings.strategy,
            config=self.config,
            labels=data.labels,
            features=data.features,
            calibration=predictor.calibration,
            base_model=base_model_info(base_path),
            training_data=DataInfo(
                file_name=data_name,
                sha256=data_sha256,
                rows=len(everything),
                train_rows=len(data.train.claims),
                validation_rows=len(data.validation.claims),
                test_rows=len(data.test),
            ),
            metrics=metrics,
            trainable_parameters=trainable,
            total_parameters=total,
            training_seconds=time.perf_counter() - started,
            stage_seconds=stages.lap("after"),
            selection={"epoch_and_step": kept, **selection},
            partner=predictor.preparer.partner,
        )

    def _start_partners(self, data: TrainingData) -> tuple[PartnerFit, PartnerFit | None] | None:
        """The partner fitted on the training split, whose validation answers choose the stack's
        weights, and (`partner_refit`) the one served, fitted on the training and validation
        splits together. Both start before the fine-tuning, beside it on a GPU."""
        if not self.settings.boosted_partner:
            return None
        splits = [data.train, data.validation] if self.settings.partner_refit else []
        return self._partner_fit(data, [data.train]), (
            self._partner_fit(data, splits) if splits else None
        )

    def _partner_fit(self, data: TrainingData, splits: list[EncodedClaims]) -> PartnerFit:
        return PartnerFit(
            [claim for split in splits for claim in split.claims.claims],
            np.concatenate([split.structured.numpy() for split in splits]),
            {
                task: np.concatenate([split.targets[task].numpy() for split in splits])
                for task in data.label_counts
            },
            data.label_counts,
            self.settings.seed,
            beside=self.device.type == "cuda",
        )


def score_fit(
    config: SpecialistConfig,
    data: TrainingData,
    predictor: TunedPredictor,
    tuned: dict[str, np.ndarray],
    blended: dict[str, np.ndarray],
) -> dict[str, dict[str, dict[str, float]]]:
    """split -> task -> metrics: the validation split as served and as the tuned model alone
    answers it, and the held-out test split."""
    validation = data.validation.claims
    metrics = {
        "validation": score_predictions(config, blended, validation, data.labels, predictor.decide),
        # what the training settings change: neither the partner nor the decision offsets,
        # both chosen on these same claims
        TUNED_ALONE: score_predictions(config, tuned, validation, data.labels),
    }
    if len(data.test):
        metrics["test"] = score_predictions(
            config,
            predictor.predict_proba(data.test.claims),
            data.test,
            data.labels,
            predictor.decide,
        )
    return metrics


def _blend(
    fits: tuple[PartnerFit, PartnerFit | None] | None,
    tuned: dict[str, np.ndarray],
    validation: EncodedClaims,
    stages: _StageClock,
) -> tuple[BoostedPartner | None, dict[str, np.ndarray], dict[str, str]]:
    """Waits for the partner and stacks it with the tuned model on the validation split; then,
    where there is a refit, serves the refit with those weights. Returns the partner (none: the
    tuned model answers alone), the validation probabilities as the weights were chosen on
    them, and what was chosen."""
    if fits is None:
        return None, tuned, {"partner": "not fitted: boosted_partner is off in the config"}
    on_training, refit = fits
    stages.lap("after")
    try:
        partner = on_training.result()
    except ValueError as error:  # too few rows or labels for TF-IDF folds: tuned alone
        return None, tuned, {"partner": f"not fitted: {error}"}
    finally:
        stages.lap("waiting_for_partner")
    blended, notes = fit_stack(
        partner,
        tuned,
        [claim.description for claim in validation.claims.claims],
        validation.structured.numpy(),
        {task: values.numpy() for task, values in validation.targets.items()},
    )
    if refit is None:
        return partner, blended, notes | {"partner": "fitted on the training split"}
    served = refit.result()
    stages.lap("refitting_partner")
    served.state.stack_weights = partner.state.stack_weights
    note = "fitted again on the training and validation splits, with the weights chosen above"
    return served, blended, notes | {"partner": note}
