"""Fine-tuning the shared encoder and one head per task on an insurer's labelled claims."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup, set_seed

from claims.batching import TokenMatrix, shuffled_length_batches, to_device, tokenize
from claims.checkpoint import TrainedSpecialist, write_checkpoint
from claims.dataset import DataError, LabelledClaims, hash_fraction, load_claims
from claims.encoder import (
    base_model_info,
    file_sha256,
    load_encoder,
    load_tokenizer,
    resolve_base_model,
)
from claims.features import StructuredFeatures
from claims.model import Calibration, SpecialistModel
from claims.partner import TUNED
from claims.predictor import PreparedClaims, TunedPredictor
from schemas.checkpoint import DataInfo, Manifest
from schemas.config import SpecialistConfig
from training.labels import IGNORE, class_weights, label_indices, resolve_labels
from training.metrics import score_predictions, task_metrics
from training.model_card import TUNED_ALONE, render_model_card
from training.partner import PartnerFit, fit_stack_weights, stack_log_loss
from training.strategies import count_parameters, prepare_encoder

VALIDATION_SALT = "validation:"
LOSS_SHOWN_EVERY = 25  # steps


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class EncodedClaims:
    """A split tokenised once, with its structured features and label indices."""

    claims: LabelledClaims
    tokens: TokenMatrix
    structured: torch.Tensor
    targets: dict[str, torch.Tensor]

    def batch(self, rows: np.ndarray, device: torch.device) -> Batch:
        input_ids, mask = self.tokens.batch(rows)
        index = torch.from_numpy(rows)
        targets = {task: values[index] for task, values in self.targets.items()}
        # only tasks labelled in this batch: asking that of a GPU tensor would wait for the GPU
        targets = {task: values for task, values in targets.items() if (values != IGNORE).any()}
        return (
            to_device(input_ids, device),
            to_device(mask, device),
            to_device(self.structured[index], device),
            {task: to_device(values, device) for task, values in targets.items()},
        )


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


@dataclass
class TrainingOutcome:
    manifest: Manifest
    checkpoint: Path


class SpecialistTrainer:
    """Fits one config on one labelled file; `fit` writes a verified checkpoint."""

    def __init__(
        self,
        config: SpecialistConfig,
        *,
        show_progress: bool = True,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        """`on_step(step, total_steps)` reports progress to a caller without a terminal."""
        self.config = config
        self.settings = config.training
        self.show_progress = show_progress
        self.on_step = on_step
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def fit(self, data_path: str | Path, out_dir: str | Path) -> TrainingOutcome:
        data_path = Path(data_path)
        return self.fit_claims(
            load_claims(data_path, self.config),
            out_dir,
            data_name=data_path.name,
            data_sha256=file_sha256(data_path),
        )

    def fit_claims(
        self, everything: LabelledClaims, out_dir: str | Path, *, data_name: str, data_sha256: str
    ) -> TrainingOutcome:
        """Trains on claims already in memory (retraining merges feedback into them); the
        config's split still holds out the test rows."""
        started = time.perf_counter()
        stages = _StageClock()
        set_seed(self.settings.seed)
        development, test = everything.split()
        if len(development) < 10:
            raise DataError(f"{data_name}: only {len(development)} rows outside the test split")
        train, validation = split_validation(development, self.settings.validation_fraction)

        # every label of the development rows: a rare one may fall in the validation split alone
        labels = {t.name: resolve_labels(t, development.labels[t.name]) for t in self.config.tasks}
        features = StructuredFeatures.fit(
            train.claims, self.config.input.numeric, self.config.input.categorical
        )
        base_path = resolve_base_model(self.config.base_model)
        tokenizer = load_tokenizer(base_path)
        encode = self._encoder_for(tokenizer, features, labels)
        train_set, validation_set = encode(train), encode(validation)

        weights = {
            task: class_weights(train_set.targets[task].numpy(), len(names))
            for task, names in labels.items()
        }
        encoder = prepare_encoder(load_encoder(base_path), self.settings.strategy, self.settings)
        model = SpecialistModel(
            encoder,
            encoder.config.hidden_size,
            features.dimension,
            {task: len(names) for task, names in labels.items()},
        ).to(self.device)
        partner = self._start_partner(train_set, labels)
        stages.lap("preparing")
        kept = self._train(model, train_set, validation_set, weights)
        stages.lap("fine_tuning")

        calibration = Calibration(weights)
        predictor = TunedPredictor(
            model, tokenizer, features, calibration, labels, self.settings.max_length, "candidate"
        )
        # The validation split, tokenised once above, runs through the tuned model once; each
        # step below reuses its logits.
        logits = predictor.logits(
            PreparedClaims(validation_set.tokens, validation_set.structured.numpy())
        )
        calibrated = self._fit_temperatures(calibration, logits, validation_set)
        tuned = {
            task: calibration.probabilities(task, values).numpy() for task, values in logits.items()
        }
        blended, notes = self._fit_stack(predictor, partner, validation_set, tuned, stages)
        calibrated |= notes | self._fit_decision_offsets(calibration, blended, validation_set)
        metrics = {
            "validation": score_predictions(
                self.config, blended, validation, labels, predictor.decide
            ),
            # what the training settings change: neither the partner nor the decision offsets,
            # both chosen on these same claims
            TUNED_ALONE: score_predictions(self.config, tuned, validation, labels),
        }
        if len(test):
            metrics["test"] = self._score(predictor, test, labels)
        trainable, total = count_parameters(model)
        specialist = TrainedSpecialist(
            model=model.cpu(),
            strategy=self.settings.strategy,
            config=self.config,
            labels=labels,
            features=features,
            calibration=calibration,
            base_model=base_model_info(base_path),
            training_data=DataInfo(
                file_name=data_name,
                sha256=data_sha256,
                rows=len(everything),
                train_rows=len(train),
                validation_rows=len(validation),
                test_rows=len(test),
            ),
            metrics=metrics,
            trainable_parameters=trainable,
            total_parameters=total,
            training_seconds=time.perf_counter() - started,
            stage_seconds=stages.lap("after"),
            selection={"epoch_and_step": kept, **calibrated},
            partner=predictor.partner,
        )
        manifest = write_checkpoint(
            specialist, out_dir, lambda version: render_model_card(specialist, version)
        )
        return TrainingOutcome(manifest=manifest, checkpoint=Path(out_dir))

    def _fit_temperatures(
        self,
        calibration: Calibration,
        logits: dict[str, torch.Tensor],
        validation: EncodedClaims,
    ) -> dict[str, str]:
        """Per task, the temperature that makes the tuned model's probabilities mean what they
        say on the validation split."""
        for task, values in logits.items():
            known = validation.targets[task] != IGNORE
            if known.any():
                calibration.fit_temperature(task, values[known], validation.targets[task][known])
        return {"calibration": "per task temperature fitted on the validation split"}

    def _start_partner(
        self, train: EncodedClaims, labels: dict[str, list[str]]
    ) -> PartnerFit | None:
        """The boosted partner's fit on the training split, beside the fine-tuning on a GPU."""
        if not self.settings.boosted_partner:
            return None
        return PartnerFit(
            train.claims.claims,
            train.structured.numpy(),
            {task: values.numpy() for task, values in train.targets.items()},
            {task: len(names) for task, names in labels.items()},
            self.settings.seed,
            beside=self.device.type == "cuda",
        )

    def _fit_stack(
        self,
        predictor: TunedPredictor,
        fit: PartnerFit | None,
        validation: EncodedClaims,
        tuned: dict[str, np.ndarray],
        stages: _StageClock,
    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Stacks the tuned model with the text and boosted members, task by task, with the
        weights that minimise the log loss of the validation probabilities. Returns the
        validation probabilities as served, and the weights chosen per task."""
        if fit is None:
            return tuned, {"partner": "not fitted: boosted_partner is off in the config"}
        stages.lap("after")
        try:
            partner = fit.result()
        except ValueError as error:  # too few rows or labels for TF-IDF folds: tuned alone
            return tuned, {"partner": f"not fitted: {error}"}
        finally:
            stages.lap("waiting_for_partner")
        texts = [claim.description for claim in validation.claims.claims]
        members = {
            TUNED: tuned,
            **partner.predict_proba(partner.inputs(texts, validation.structured.numpy())),
        }
        notes = {}
        for task, values in validation.targets.items():
            known = (values != IGNORE).numpy()
            if not known.any():
                continue
            labelled = {member: answers[task][known] for member, answers in members.items()}
            truth = values.numpy()[known]
            weights = fit_stack_weights(labelled, truth)
            partner.state.stack_weights[task] = weights
            alone = ", ".join(
                f"{member} alone {stack_log_loss(labelled, truth, {member: 1.0}):.4f}"
                for member in labelled
            )
            notes[f"stack.{task}"] = (
                "weights "
                + ", ".join(f"{member} {weight:.2f}" for member, weight in weights.items())
                + f": validation log loss {stack_log_loss(labelled, truth, weights):.4f} "
                f"({alone})"
            )
        predictor.partner = partner
        return partner.blend(tuned, {m: a for m, a in members.items() if m != TUNED}), notes

    def _fit_decision_offsets(
        self,
        calibration: Calibration,
        probabilities: dict[str, np.ndarray],
        validation: EncodedClaims,
    ) -> dict[str, str]:
        """Per-label offsets on the served validation probabilities that maximise macro-F1;
        returns what each did."""
        notes = {}
        for task, values in probabilities.items():
            known = (validation.targets[task] != IGNORE).numpy()
            if not known.any():
                continue
            labelled = validation.targets[task].numpy()[known]
            before = task_metrics(self.config.task(task).kind, labelled, values[known])
            after = calibration.fit_decision_offsets(task, values[known], labelled)
            notes[f"decision_offsets.{task}"] = (
                f"validation macro-F1 {before['macro_f1']:.3f} -> {after:.3f}"
            )
        return notes

    def _encoder_for(
        self,
        tokenizer: PreTrainedTokenizerBase,
        features: StructuredFeatures,
        labels: dict[str, list[str]],
    ) -> Callable[[LabelledClaims], EncodedClaims]:
        def encode(split: LabelledClaims) -> EncodedClaims:
            ids = [claim.claim_id for claim in split.claims]
            return EncodedClaims(
                claims=split,
                tokens=tokenize(
                    tokenizer, [c.description for c in split.claims], self.settings.max_length
                ),
                structured=torch.from_numpy(features.transform(split.claims)),
                targets={
                    task: torch.from_numpy(label_indices(task, split.labels[task], names, ids))
                    for task, names in labels.items()
                },
            )

        return encode

    def _loss(
        self,
        model: SpecialistModel,
        batch: Batch,
        loss_functions: dict[str, nn.CrossEntropyLoss],
    ) -> torch.Tensor:
        input_ids, mask, structured, targets = batch
        with torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
        ):
            logits = model(input_ids, mask, structured)
        losses = [loss_functions[task](logits[task], values) for task, values in targets.items()]
        return torch.stack(losses).sum()

    def _train(
        self,
        model: SpecialistModel,
        train_set: EncodedClaims,
        validation_set: EncodedClaims,
        weights: dict[str, list[float]],
    ) -> str:
        """Trains in place and restores the best step; says which step it kept and why."""
        settings = self.settings
        loss_functions = {
            task: nn.CrossEntropyLoss(
                weight=torch.tensor(w, device=self.device), ignore_index=IGNORE
            )
            for task, w in weights.items()
        }
        encoder_parameters = [p for p in model.encoder.parameters() if p.requires_grad]
        head_parameters = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
        optimiser = torch.optim.AdamW(
            [
                {"params": encoder_parameters, "lr": settings.encoder_learning_rate},
                {"params": head_parameters, "lr": settings.head_learning_rate},
            ],
            weight_decay=settings.weight_decay,
        )
        batches_per_epoch = math.ceil(len(train_set.tokens) / settings.batch_size)
        total_steps = batches_per_epoch * settings.epochs
        if settings.max_steps is not None:
            total_steps = min(total_steps, settings.max_steps)
        schedule = get_linear_schedule_with_warmup(
            optimiser, max(1, total_steps // 10), total_steps
        )
        evaluate_every = max(1, batches_per_epoch // settings.evaluations_per_epoch)
        rng = np.random.default_rng(settings.seed)

        best_loss, best_state, waited, step = math.inf, None, 0, 0
        shown = math.nan
        kept = "no evaluation ran"
        with self._progress() as progress:
            bar = progress.add_task("fine-tuning", total=total_steps, loss=float("nan"))
            for epoch in range(settings.epochs):
                for rows in shuffled_length_batches(
                    train_set.tokens.lengths, settings.batch_size, rng
                ):
                    model.train()
                    loss = self._loss(model, train_set.batch(rows, self.device), loss_functions)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimiser.step()
                    schedule.step()
                    optimiser.zero_grad(set_to_none=True)
                    step += 1
                    if step == 1 or step % LOSS_SHOWN_EVERY == 0:  # reading it waits for the GPU
                        shown = loss.item()
                    progress.update(bar, advance=1, loss=shown)
                    if self.on_step is not None:
                        self.on_step(step, total_steps)
                    last_step = step >= total_steps
                    if step % evaluate_every and not last_step:
                        continue
                    validation_loss = self._validation_loss(model, validation_set, loss_functions)
                    if validation_loss < best_loss - 1e-4:
                        best_loss, waited = validation_loss, 0
                        best_state = {
                            n: p.detach().clone()
                            for n, p in model.named_parameters()
                            if p.requires_grad
                        }
                        kept = (
                            f"step {step} (epoch {epoch + 1}): lowest validation loss "
                            f"{validation_loss:.4f}"
                        )
                    else:
                        waited += 1
                    if last_step or waited >= settings.patience:
                        break
                else:
                    continue
                break
        if best_state is not None:
            model.load_state_dict(best_state, strict=False)
        model.eval()
        return kept

    def _validation_loss(
        self,
        model: SpecialistModel,
        validation_set: EncodedClaims,
        loss_functions: dict[str, nn.CrossEntropyLoss],
    ) -> float:
        model.eval()
        total, count = 0.0, 0
        order = np.arange(len(validation_set.tokens))
        with torch.inference_mode():
            for start in range(0, len(order), 128):
                rows = order[start : start + 128]
                batch = validation_set.batch(rows, self.device)
                total += self._loss(model, batch, loss_functions).item() * len(rows)
                count += len(rows)
        return total / max(count, 1)

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]:.3f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not self.show_progress,
        )

    def _score(
        self, predictor: TunedPredictor, split: LabelledClaims, labels: dict[str, list[str]]
    ) -> dict[str, dict[str, float]]:
        return score_predictions(
            self.config, predictor.predict_proba(split.claims), split, labels, predictor.decide
        )


def split_validation(
    development: LabelledClaims, fraction: float
) -> tuple[LabelledClaims, LabelledClaims]:
    """(training rows, validation rows). A claim's side follows from its id alone, so the
    settings search scores every candidate on the validation claims its training held out."""
    in_validation = [
        hash_fraction(claim.claim_id, VALIDATION_SALT) < fraction for claim in development.claims
    ]
    train = development.subset(i for i, held in enumerate(in_validation) if not held)
    return train, development.subset(i for i, held in enumerate(in_validation) if held)
