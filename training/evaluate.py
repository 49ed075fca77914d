"""Scoring the tuned specialist beside the base model zero-shot and a classical baseline."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from claims.data.dataset import DataError, LabelledClaims, load_claims
from claims.model.checkpoint import LoadedCheckpoint, load_checkpoint
from claims.model.encoder import file_sha256
from claims.model.features import StructuredFeatures
from claims.model.predictor import TunedPredictor, ZeroShotPredictor
from claims.model.stack import MEMBER_DESCRIPTIONS
from schemas.claim import Claim
from schemas.config import SpecialistConfig, TaskKind
from schemas.report import EvaluationReport, Interval, SystemResult
from training.baselines import (
    RetrievalBaseline,
    StructuredBoostingBaseline,
    TfidfLogisticBaseline,
)
from training.labels import label_indices
from training.metrics import (
    BOOTSTRAP_RESAMPLES,
    labelled_rows,
    paired_bootstrap,
    primary_metric,
    score_predictions,
)
from training.model_card import metrics_table

MEMBER_PREFIX = "specialist."


class Baseline(Protocol):
    def fit(
        self, claims: Sequence[Claim], targets: dict[str, np.ndarray], label_counts: dict[str, int]
    ) -> Baseline: ...

    def predict_proba(self, claims: Sequence[Claim]) -> dict[str, np.ndarray]: ...


class ComparisonError(ValueError):
    """A checkpoint that cannot be compared on the specialist's held-out claims."""


@dataclass
class ScoredSystem:
    """One system's answers on the held-out claims, and how it picks labels from them (the
    tuned models' decision offsets; else the most probable)."""

    description: str
    probabilities: dict[str, np.ndarray]
    decide: Callable[[str, np.ndarray], np.ndarray] | None = None
    fit_seconds: float | None = None


def evaluate(
    model_dir: str | Path, data_path: str | Path, against: Sequence[str | Path] = ()
) -> EvaluationReport:
    """Scores on the rows the checkpoint's config holds out; baselines learn from the rest.

    `against`: other checkpoints trained on the same file with the same split and labels (an
    ablation, a model trained with other settings), scored on the same claims under their model
    version."""
    data_path = Path(data_path)
    checkpoint = load_checkpoint(model_dir)
    config, predictor = checkpoint.config, checkpoint.predictor
    development, test = load_claims(data_path, config).split()
    if not len(test):
        raise DataError(f"{data_path.name}: no held-out rows to evaluate on")
    labels = predictor.labels
    zero_shot = ZeroShotPredictor.from_base(
        checkpoint.base_path, config.tasks, labels, config.training.max_length
    )
    ids = [claim.claim_id for claim in development.claims]
    targets = {t: label_indices(t, development.labels[t], labels[t], ids) for t in labels}
    counts = {task: len(names) for task, names in labels.items()}
    features = StructuredFeatures.fit(
        development.claims, config.input.numeric, config.input.categorical
    )
    seed = config.training.seed
    baselines: dict[str, tuple[str, Baseline]] = {
        "base_retrieval": (
            "the base model untuned: nearest historical claims, voted by similarity",
            RetrievalBaseline(zero_shot.embed),
        ),
        "tfidf_logreg": (
            "TF-IDF on the narrative + logistic regression",
            TfidfLogisticBaseline(),
        ),
        "gbm_stacked": (
            "gradient boosting on the structured fields + out-of-fold TF-IDF scores",
            StructuredBoostingBaseline(features, with_text=True, seed=seed),
        ),
    }
    if features.dimension:  # a narrative-only config has no structured fields to boost on
        baselines["gbm_structured"] = (
            "gradient boosting on the structured fields",
            StructuredBoostingBaseline(features, with_text=False, seed=seed),
        )
    systems = {"specialist": _tuned_system(checkpoint, test.claims)}
    systems |= _member_systems(checkpoint, test.claims)
    for other in against:
        compared = load_checkpoint(other)
        _check_comparable(checkpoint, compared)
        systems[compared.manifest.model_version] = _tuned_system(compared, test.claims)
    systems["base_zero_shot"] = ScoredSystem(
        "the base model untuned: claim and label descriptions compared",
        zero_shot.predict_proba(test.claims),
    )
    for name, (description, baseline) in baselines.items():
        started = time.perf_counter()
        fitted = baseline.fit(development.claims, targets, counts)
        seconds = round(time.perf_counter() - started, 2)
        systems[name] = ScoredSystem(
            description, fitted.predict_proba(test.claims), fit_seconds=seconds
        )
    intervals, leads = paired_uncertainty(config, systems, "specialist", test, labels, seed)
    return EvaluationReport(
        model_version=checkpoint.manifest.model_version,
        created_at=datetime.now(UTC),
        data_file=data_path.name,
        data_sha256=file_sha256(data_path),
        test_rows=len(test),
        primary_metrics={task.name: primary_metric(task.kind) for task in config.tasks},
        bootstrap_resamples=BOOTSTRAP_RESAMPLES,
        systems={
            name: SystemResult(
                description=system.description,
                metrics=score_predictions(
                    config, system.probabilities, test, labels, system.decide
                ),
                fit_seconds=system.fit_seconds,
                intervals=intervals[name],
                specialist_lead=leads[name],
            )
            for name, system in systems.items()
        },
    )


def _tuned_system(checkpoint: LoadedCheckpoint, claims: Sequence[Claim]) -> ScoredSystem:
    manifest, predictor = checkpoint.manifest, checkpoint.predictor
    return ScoredSystem(
        f"{manifest.model_version}: fine-tuned ({manifest.strategy}){_blend(predictor)}",
        predictor.predict_proba(claims),
        predictor.decide,
        manifest.training_seconds,
    )


def _member_systems(
    checkpoint: LoadedCheckpoint, claims: Sequence[Claim]
) -> dict[str, ScoredSystem]:
    """Each member of the specialist's stack alone, labels by the most probable: what the
    stack adds over its best member."""
    partner = checkpoint.predictor.preparer.partner
    if partner is None:  # the tuned model alone is the specialist itself
        return {}
    weights = partner.state.stack_weights
    return {
        f"{MEMBER_PREFIX}{member}": ScoredSystem(
            f"the specialist's {member} member alone: {MEMBER_DESCRIPTIONS[member]} (stack "
            "weights: "
            + ", ".join(f"{task} {w.get(member, 0.0):.2f}" for task, w in weights.items())
            + ")",
            probabilities,
        )
        for member, probabilities in checkpoint.predictor.member_probabilities(claims).items()
    }


def _check_comparable(specialist: LoadedCheckpoint, other: LoadedCheckpoint) -> None:
    """Scores compare only on claims both held out, for the same tasks and labels."""
    version = other.manifest.model_version
    if other.manifest.training_data.sha256 != specialist.manifest.training_data.sha256:
        raise ComparisonError(
            f"{version}: trained on another file than the specialist; its held-out claims differ"
        )
    if other.config.split != specialist.config.split:
        raise ComparisonError(f"{version}: its config splits the claims another way")
    if other.predictor.labels != specialist.predictor.labels:
        raise ComparisonError(f"{version}: its tasks or labels differ from the specialist's")


def paired_uncertainty(
    config: SpecialistConfig,
    systems: dict[str, ScoredSystem],
    reference: str,
    claims: LabelledClaims,
    labels: dict[str, list[str]],
    seed: int,
) -> tuple[dict[str, dict[str, Interval]], dict[str, dict[str, Interval]]]:
    """system -> task -> the primary metric's interval on `claims`, and the lead of system
    `reference` over it (none for the reference itself)."""
    intervals: dict[str, dict[str, Interval]] = {name: {} for name in systems}
    leads: dict[str, dict[str, Interval]] = {name: {} for name in systems}
    for task, rows in labelled_rows(config, claims, labels).items():
        kind = config.task(task).kind
        outputs = {}
        for name, system in systems.items():
            probabilities = system.probabilities[task][rows.known]
            if kind is TaskKind.binary:
                outputs[name] = probabilities[:, rows.positive]
            elif system.decide:
                outputs[name] = system.decide(task, probabilities)
            else:
                outputs[name] = probabilities.argmax(axis=1)
        task_intervals, task_leads = paired_bootstrap(
            kind, rows.targets, outputs, reference, rows.positive, seed=seed
        )
        for name, interval in task_intervals.items():
            intervals[name][task] = interval
        for name, lead in task_leads.items():
            leads[name][task] = lead
    return intervals, leads


def _blend(predictor: TunedPredictor) -> str:
    """Whether the tuned model answers alone or in its stack."""
    if predictor.preparer.partner is None:
        return ", alone"
    return ", stacked with the text, boosted and linear members"


def render_report(report: EvaluationReport) -> str:
    tasks = list(report.primary_metrics)
    header = (
        f"# Evaluation of {report.model_version}\n\n"
        f"{report.test_rows:,} held-out claims of `{report.data_file}` "
        f"(sha256 `{report.data_sha256[:16]}…`), {report.created_at:%Y-%m-%d %H:%M} UTC. "
        f"In brackets, 95% intervals from {report.bootstrap_resamples:,} bootstrap resamples "
        "of these claims.\n"
    )
    summary = _table(
        report,
        "system | " + " | ".join(f"{t} ({report.primary_metrics[t]})" for t in tasks),
        lambda system, task: (
            f"{system.metrics[task][report.primary_metrics[task]]:.3f} "
            f"{system.intervals[task].bracketed()}"
        ),
        report.systems,
    )
    rivals = {name: system for name, system in report.systems.items() if system.specialist_lead}
    leads = _table(
        report,
        "specialist minus | " + " | ".join(tasks),
        lambda system, task: system.specialist_lead[task].bracketed(signed=True),
        rivals,
    )
    details = "\n\n".join(
        f"## {name}\n\n{system.description}\n\n{metrics_table(system.metrics)}"
        for name, system in report.systems.items()
    )
    return (
        f"{header}\n{summary}\n\n"
        "The specialist's lead over each system, paired on the same resamples (wholly above "
        f"zero: ahead beyond sampling error):\n\n{leads}\n\n{details}\n"
    )


def _table(
    report: EvaluationReport,
    heading: str,
    cell: Callable[[SystemResult, str], str],
    systems: dict[str, SystemResult],
) -> str:
    tasks = list(report.primary_metrics)
    lines = [f"| {heading} |", "|" + " --- |" * (len(tasks) + 1)]
    lines += [
        f"| {name} | " + " | ".join(cell(system, task) for task in tasks) + " |"
        for name, system in systems.items()
    ]
    return "\n".join(lines)


def write_report(report: EvaluationReport, out_dir: str | Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"evaluation-{report.model_version}"
    json_path, markdown_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render_report(report), encoding="utf-8")
    return json_path, markdown_path
