"""Scoring the tuned specialist beside the base model zero-shot and a classical baseline."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from claims.checkpoint import load_checkpoint
from claims.dataset import DataError, load_claims
from claims.encoder import (
    file_sha256,
)
from claims.features import StructuredFeatures
from claims.predictor import TunedPredictor, ZeroShotPredictor
from schemas.report import EvaluationReport, SystemResult
from training.baselines import (
    RetrievalBaseline,
    StructuredBoostingBaseline,
    TfidfLogisticBaseline,
)
from training.labels import label_indices
from training.metrics import primary_metric
from training.model_card import metrics_table
from training.trainer import score_predictions


def evaluate(model_dir: str | Path, data_path: str | Path) -> EvaluationReport:
    """Scores on the rows the checkpoint's config holds out; baselines learn from the rest."""
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
    baselines = {
        "base_retrieval": (
            "the base model untuned: nearest historical claims, voted by similarity",
            RetrievalBaseline(zero_shot.embed),
        ),
        "tfidf_logreg": (
            "TF-IDF on the narrative + logistic regression",
            TfidfLogisticBaseline(),
        ),
        "gbm_structured": (
            "gradient boosting on the structured fields",
            StructuredBoostingBaseline(features, with_text=False, seed=seed),
        ),
        "gbm_stacked": (
            "gradient boosting on the structured fields + out-of-fold TF-IDF scores",
            StructuredBoostingBaseline(features, with_text=True, seed=seed),
        ),
    }
    manifest = checkpoint.manifest
    systems = {
        "specialist": (
            f"{manifest.model_version}: fine-tuned ({manifest.strategy}){_blend(predictor)}",
            predictor.predict_proba(test.claims),
        ),
        "base_zero_shot": (
            "the base model untuned: claim and label descriptions compared",
            zero_shot.predict_proba(test.claims),
        ),
    }
    fit_seconds = {"specialist": manifest.training_seconds}
    for name, (description, baseline) in baselines.items():
        started = time.perf_counter()
        fitted = baseline.fit(development.claims, targets, counts)
        fit_seconds[name] = round(time.perf_counter() - started, 2)
        systems[name] = (description, fitted.predict_proba(test.claims))
    return EvaluationReport(
        model_version=manifest.model_version,
        created_at=datetime.now(UTC),
        data_file=data_path.name,
        data_sha256=file_sha256(data_path),
        test_rows=len(test),
        primary_metrics={task.name: primary_metric(task.kind) for task in config.tasks},
        systems={
            name: SystemResult(
                description=description,
                metrics=score_predictions(
                    config,
                    probabilities,
                    test,
                    labels,
                    predictor.decide if name == "specialist" else None,
                ),
                fit_seconds=fit_seconds.get(name),
            )
            for name, (description, probabilities) in systems.items()
        },
    )


def _blend(predictor: TunedPredictor) -> str:
    """What share of each task's answer the tuned model gives, when it is blended."""
    if predictor.partner is None:
        return ""
    weights = ", ".join(
        f"{task} {weight:.1f}" for task, weight in predictor.partner.state.tuned_weights.items()
    )
    return f", blended with the boosted partner (tuned model's weight: {weights})"


def render_report(report: EvaluationReport) -> str:
    tasks = list(report.primary_metrics)
    header = (
        f"# Evaluation of {report.model_version}\n\n"
        f"{report.test_rows:,} held-out claims of `{report.data_file}` "
        f"(sha256 `{report.data_sha256[:16]}…`), {report.created_at:%Y-%m-%d %H:%M} UTC.\n"
    )
    summary = [
        "| system | " + " | ".join(f"{t} ({report.primary_metrics[t]})" for t in tasks) + " |",
        "| --- | " + " | ".join("---" for _ in tasks) + " |",
    ]
    for name, system in report.systems.items():
        cells = [f"{system.metrics[t][report.primary_metrics[t]]:.3f}" for t in tasks]
        summary.append(f"| {name} | " + " | ".join(cells) + " |")
    details = "\n\n".join(
        f"## {name}\n\n{system.description}\n\n{metrics_table(system.metrics)}"
        for name, system in report.systems.items()
    )
    return f"{header}\n" + "\n".join(summary) + f"\n\n{details}\n"


def write_report(report: EvaluationReport, out_dir: str | Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"evaluation-{report.model_version}"
    json_path, markdown_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render_report(report), encoding="utf-8")
    return json_path, markdown_path
