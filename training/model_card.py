"""The model card: what an insurer's model-risk reviewer reads before a model goes live."""

from __future__ import annotations

from claims.model.checkpoint import TrainedSpecialist
from claims.model.stack import MEMBER_DESCRIPTIONS, MEMBERS

TUNED_ALONE = "tuned_alone"


def split_title(split: str) -> str:
    """How a key of the manifest's metrics reads to a person."""
    if split == TUNED_ALONE:
        return "validation split, the tuned model alone (no stack, no decision offsets)"
    return f"{split} split"


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    names = ["macro_f1", "accuracy", "auc", "average_precision", "ece", "rows"]
    shown = [n for n in names if any(n in values for values in metrics.values())]
    lines = [
        "| task | " + " | ".join(shown) + " |",
        "| --- | " + " | ".join("---" for _ in shown) + " |",
    ]
    for task, values in metrics.items():
        cells = [
            (
                ""
                if name not in values
                else f"{values[name]:.0f}"
                if name == "rows"
                else f"{values[name]:.3f}"
            )
            for name in shown
        ]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stack_table(stack_weights: dict[str, dict[str, float]]) -> str:
    """Each member's weight in each task's stack; 0 leaves a member out."""
    lines = ["| task | " + " | ".join(MEMBERS) + " |", "| --- |" + " --- |" * len(MEMBERS)]
    lines += [
        f"| {task} | " + " | ".join(f"{weights.get(m, 0.0):.2f}" for m in MEMBERS) + " |"
        for task, weights in stack_weights.items()
    ]
    return "\n".join(lines)


def render_model_card(specialist: TrainedSpecialist, model_version: str) -> str:
    config = specialist.config
    data = specialist.training_data
    tasks = "\n".join(
        f"- `{task.name}` ({task.kind.value}, column `{task.column}`): "
        + ", ".join(f"`{label}`" for label in specialist.labels[task.name])
        for task in config.tasks
    )
    stacked = (
        "The tuned encoder alone: no stack."
        if specialist.partner is None
        else "Each task's answer pools the members' log-probabilities with these weights, "
        "fitted on the validation split ("
        + "; ".join(f"{member}: {what}" for member, what in MEMBER_DESCRIPTIONS.items())
        + "):\n\n"
        + stack_table(specialist.partner.state.stack_weights)
    )
    choices = "\n".join(f"- {name}: {why}" for name, why in specialist.selection.items())
    sections = "\n\n".join(
        f"### {split_title(split).capitalize()}\n\n{metrics_table(values)}"
        for split, values in specialist.metrics.items()
    )
    return f"""# Claims specialist {model_version}

A fine-tuned copy of `{specialist.base_model.name}` that triages first notices of loss.

## Training
- Strategy: `{specialist.strategy.value}`; trainable parameters {specialist.trainable_parameters:,}
  of {specialist.total_parameters:,}; {specialist.training_seconds:.0f} s of training.
- Data: `{data.file_name}` (sha256 `{data.sha256[:16]}…`), {data.rows:,} rows: {data.train_rows:,}
  train, {data.validation_rows:,} validation (early stopping, calibration), {data.test_rows:,}
  held-out test.
- Structured fields: numeric {config.input.numeric or "none"}, categorical
  {config.input.categorical or "none"}.

## The stack
{stacked}

## What training chose, and why
{choices}

## Tasks
{tasks}

## Metrics
{sections}

## Decision policy
Version `{config.policy.version}`: routes {", ".join(config.policy.route_names)}; human review for
{", ".join(config.policy.review_routes) or "no route"} and any task below
{config.policy.min_confidence:.0%} confidence.

## Intended use and limits
Triage support for claims adjusters: it ranks and routes, people decide. It has seen only the
claims above; check it on your own recent claims before relying on it, and retrain when the
book of business changes. SIU referral scores are signals for an investigator, never a finding.
"""
