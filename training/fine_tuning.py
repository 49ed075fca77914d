"""Building the specialist's network on the base encoder, and the epoch loop that fine-tunes it
with early stopping on the validation loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from transformers import get_linear_schedule_with_warmup

from claims.model.network import SpecialistModel
from claims.model.predictor import cpu_has_bf16
from claims.model.tokens import shuffled_length_batches
from schemas.config import TrainingConfig
from training.data import Batch, EncodedClaims
from training.labels import IGNORE
from training.strategies import prepare_encoder

LOSS_SHOWN_EVERY = 25  # steps
VALIDATION_BATCH = 128
IMPROVEMENT = 1e-4  # of the validation loss, to count as a better step

OnStep = Callable[[int, int], None]


def build_model(
    encoder: nn.Module,
    settings: TrainingConfig,
    structured_dimension: int,
    label_counts: dict[str, int],
    device: torch.device,
) -> SpecialistModel:
    """The base encoder with only what the strategy tunes left trainable, and one freshly
    initialised head per task."""
    encoder = prepare_encoder(encoder, settings.strategy, settings)
    return SpecialistModel(
        encoder,
        encoder.config.hidden_size,  # type: ignore[union-attr,arg-type]  # a Hugging Face model
        structured_dimension,
        label_counts,
    ).to(device)


def runs_bf16(settings: TrainingConfig, device: torch.device) -> bool:
    """Whether fine-tuning's passes run under bf16 autocast (the weights and the optimiser stay
    fp32): as chosen, or by default on a GPU and on a CPU that multiplies bf16 natively."""
    return settings.precision == "bf16" or (
        settings.precision == "auto" and (device.type == "cuda" or cpu_has_bf16())
    )


def fine_tune(
    model: SpecialistModel,
    train: EncodedClaims,
    validation: EncodedClaims,
    class_weights: dict[str, list[float]],
    settings: TrainingConfig,
    *,
    show_progress: bool = False,
    on_step: OnStep | None = None,
) -> str:
    """Trains in place and restores the step with the lowest validation loss; says which step
    it kept and why. `on_step(step, total_steps)` reports progress to a caller without a
    terminal."""
    device = next(model.parameters()).device
    bf16 = runs_bf16(settings, device)
    loss_functions = {
        task: nn.CrossEntropyLoss(weight=torch.tensor(w, device=device), ignore_index=IGNORE)
        for task, w in class_weights.items()
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
    batches_per_epoch = math.ceil(len(train.tokens) / settings.batch_size)
    total_steps = batches_per_epoch * settings.epochs
    if settings.max_steps is not None:
        total_steps = min(total_steps, settings.max_steps)
    schedule = get_linear_schedule_with_warmup(optimiser, max(1, total_steps // 10), total_steps)
    evaluate_every = max(1, batches_per_epoch // settings.evaluations_per_epoch)
    rng = np.random.default_rng(settings.seed)

    best_loss, best_state, waited, step = math.inf, None, 0, 0
    shown = math.nan
    kept = "no evaluation ran"
    with _progress(show_progress) as progress:
        bar = progress.add_task("fine-tuning", total=total_steps, loss=float("nan"))
        for epoch in range(settings.epochs):
            for rows in shuffled_length_batches(train.tokens.lengths, settings.batch_size, rng):
                model.train()
                loss = batch_loss(model, train.batch(rows, device), loss_functions, bf16)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimiser.step()
                schedule.step()
                optimiser.zero_grad(set_to_none=True)
                step += 1
                if step == 1 or step % LOSS_SHOWN_EVERY == 0:  # reading it waits for the GPU
                    shown = loss.item()
                progress.update(bar, advance=1, loss=shown)
                if on_step is not None:
                    on_step(step, total_steps)
                last_step = step >= total_steps
                if step % evaluate_every and not last_step:
                    continue
                validation_loss = mean_loss(model, validation, loss_functions, bf16)
                if validation_loss < best_loss - IMPROVEMENT:
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


def batch_loss(
    model: SpecialistModel,
    batch: Batch,
    loss_functions: dict[str, nn.CrossEntropyLoss],
    bf16: bool,
) -> torch.Tensor:
    """The sum over tasks of each task's loss on its labelled rows."""
    input_ids, mask, structured, targets = batch
    with torch.autocast(device_type=input_ids.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids, mask, structured)
    losses = [loss_functions[task](logits[task], values) for task, values in targets.items()]
    return torch.stack(losses).sum()


def mean_loss(
    model: SpecialistModel,
    split: EncodedClaims,
    loss_functions: dict[str, nn.CrossEntropyLoss],
    bf16: bool,
) -> float:
    """The loss per claim over a whole split, in evaluation mode."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    order = np.arange(len(split.tokens))
    with torch.inference_mode():
        for start in range(0, len(order), VALIDATION_BATCH):
            rows = order[start : start + VALIDATION_BATCH]
            batch = split.batch(rows, device)
            total += batch_loss(model, batch, loss_functions, bf16).item() * len(rows)
            count += len(rows)
    return total / max(count, 1)


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not show,
    )
