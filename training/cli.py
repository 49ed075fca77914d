"""`claims train` and `claims evaluate`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from claims.cli.main import user_errors
from schemas.config import Strategy
from schemas.jobs import RetrainEngine
from schemas.report import EvaluationReport

console = Console()


def train(
    data: Path = typer.Option(..., help="Labelled claims: .csv, .jsonl or .parquet."),
    out: Path = typer.Option(..., help="Checkpoint folder to write."),
    config: Path | None = typer.Option(None, help="TOML config; default: the synthetic claims."),
    strategy: Strategy | None = typer.Option(None, help="What fine-tuning changes."),
    epochs: int | None = typer.Option(None, min=1),
    max_steps: int | None = typer.Option(None, min=1, help="Stop after this many steps."),
    seed: int | None = typer.Option(None, help="Same seed, same model."),
) -> None:
    """Fine-tune the base model on labelled claims and write a verified checkpoint."""
    from claims.domain.config import load_config
    from training.model_card import split_title
    from training.trainer import SpecialistTrainer

    with user_errors():
        settings = load_config(config)
        overrides = {"strategy": strategy, "epochs": epochs, "max_steps": max_steps, "seed": seed}
        settings.training = settings.training.model_copy(
            update={name: value for name, value in overrides.items() if value is not None}
        )
        manifest = SpecialistTrainer(settings).fit(data).save(out)
    console.print(
        f"[green]trained {manifest.model_version}[/] ({manifest.strategy}, "
        f"{manifest.trainable_parameters:,} trainable parameters, "
        f"{manifest.training_seconds:.0f} s) -> {out}"
    )
    for split, metrics in manifest.metrics.items():
        shown = ("macro_f1", "accuracy", "auc", "ece")
        table = Table("task", *shown, title=split_title(split))
        for task, values in metrics.items():
            table.add_row(task, *(f"{values[m]:.3f}" if m in values else "" for m in shown))
        console.print(table)


def evaluate(
    model: Path = typer.Option(..., help="Checkpoint folder."),
    data: Path = typer.Option(..., help="The labelled file; its held-out rows are scored."),
    out: Path = typer.Option(Path("reports"), help="Folder for the JSON and Markdown report."),
    against: list[Path] = typer.Option(
        [],
        help="Another checkpoint trained on the same file and split (an ablation, a model "
        "trained with other settings), scored on the same claims; repeatable.",
    ),
) -> None:
    """Score the specialist beside the base model and classical baselines, with 95% intervals
    and its paired lead over each."""
    from training.evaluate import ComparisonError, write_report
    from training.evaluate import evaluate as run_evaluation

    with user_errors(ComparisonError):
        report = run_evaluation(model, data, against)
        json_path, markdown_path = write_report(report, out)
    for table in comparison_tables(report):
        console.print(table)
    console.print(f"report: {markdown_path} and {json_path}")


def retrain(
    data: Path | None = typer.Option(
        None, help="Historical labelled claims; default: CLAIMS_TRAINING_DATA."
    ),
    job: str | None = typer.Option(
        None, help="The job to report progress to (the service creates it); default: a new one."
    ),
    engine: RetrainEngine = typer.Option(
        RetrainEngine.local,
        help="local: in this process; ray: as a task on the Ray cluster RAY_ADDRESS names (a GPU "
        "node when it has one), reading the data path every node mounts.",
    ),
) -> None:
    """Train a challenger on history plus confirmed feedback; promote it only if the gate passes."""
    from claims.store import Store
    from claims.store.data_settings import DataSettings
    from claims.store.job_progress import reporting
    from claims.store.registry import Registry
    from training.retrain import retrain as run_retraining

    settings = DataSettings()
    store = Store.from_settings(settings)
    with reporting(store, "retrain", job) as report, user_errors():
        data = data or settings.training_data
        if data is None:
            raise FileNotFoundError("no training data: pass --data or set CLAIMS_TRAINING_DATA")
        where: dict[str, object] = {"engine": engine.value}
        if engine is RetrainEngine.ray:
            from training.ray_retrain import retrain_on_ray

            on_ray = retrain_on_ray(data, report.job_id, report.owner, settings)
            outcome = on_ray.outcome
            where |= {"ray_node": on_ray.node_id, "gpus": on_ray.gpus}
        else:
            outcome = run_retraining(
                data,
                Registry.from_settings(settings, store),
                store,
                progress=report.progress,
                show_progress=job is None,
            )
        decision = outcome.decision
        report.succeeded(
            decision.reason,
            {
                "challenger_version": outcome.challenger.version,
                "promoted": decision.promoted,
                "unusable_feedback": outcome.unusable_feedback,
                "gate": decision.model_dump(mode="json"),
                **where,
            },
        )
    table = Table("slice", "task", "metric", "rows", "base", "champion", "challenger", "verdict")
    for check in decision.checks:
        table.add_row(
            check.slice,
            check.task,
            check.metric,
            str(check.rows),
            *(
                f"{value:.3f}" if value is not None else ""
                for value in (check.base, check.champion, check.challenger)
            ),
            check.verdict,
        )
    console.print(table)
    colour = "green" if decision.promoted else "yellow"
    console.print(f"[{colour}]{decision.reason}[/] (challenger {outcome.challenger.version})")


def comparison_tables(report: EvaluationReport) -> list[Table]:
    """One table per task, one row per system: fits a terminal whatever the number of tasks."""
    tables = []
    for task, primary in report.primary_metrics.items():
        table = Table(title=f"{task}: {report.test_rows:,} held-out claims of {report.data_file}")
        table.add_column("system")
        for heading in (primary, "95% interval", "specialist's lead", "ece"):
            table.add_column(heading, justify="right")
        for name, system in report.systems.items():
            lead = system.specialist_lead.get(task)
            table.add_row(
                name,
                f"{system.metrics[task][primary]:.3f}",
                system.intervals[task].bracketed(),
                lead.bracketed(signed=True) if lead else "",
                f"{system.metrics[task]['ece']:.3f}",
            )
        tables.append(table)
    return tables


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(evaluate)
    app.command()(retrain)
