"""`claims serve`: the triage service under uvicorn."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

if TYPE_CHECKING:
    from claims.domain.language import LanguageDetector
    from schemas.scoring import ScoreSummary


def serve(
    model: Path | None = typer.Option(
        None, help="Pin a checkpoint folder; default: the registry's champion, followed live."
    ),
    config: Path | None = typer.Option(None, help="Config whose tasks the service must answer."),
    data_dir: Path | None = typer.Option(
        None, help="Store, registry and jobs; default: CLAIMS_DATA_DIR, else ./data."
    ),
    training_data: Path | None = typer.Option(
        None, help="Historical labelled claims for POST /v1/retrain; default: CLAIMS_TRAINING_DATA."
    ),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Development only: no API keys; said loudly at start-up."
    ),
) -> None:
    """Start the triage API. Without a sound checkpoint it serves the base model, and says why."""
    import uvicorn

    from serving.app import create_app
    from serving.settings import ServiceSettings

    given: dict[str, Any] = {
        "model_dir": model,
        "config": config,
        "data_dir": data_dir,
        "training_data": training_data,
        "auth": False if no_auth else None,
    }  # unset options leave CLAIMS_* variables in force
    settings = ServiceSettings(
        **{name: value for name, value in given.items() if value is not None}
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=int(settings.shutdown_grace),
    )


def score(
    source: Path = typer.Argument(..., help="Claims: .csv, .jsonl (gzip too) or .parquet."),
    out: Path = typer.Option(..., help="Output file; its format follows its extension."),
    model: Path | None = typer.Option(
        None, help="Checkpoint folder; default: the registry's champion."
    ),
    rejects: Path | None = typer.Option(
        None, help="Rows that cannot be scored, with the reason; default: OUT with .rejects."
    ),
    chunk_rows: int = typer.Option(16_384, min=1, help="Rows per chunk: the unit of resumption."),
    workers: int | None = typer.Option(
        None,
        min=1,
        help="Processes preparing chunks (validate, tokenise, features); default 1 beside a CPU "
        "model, every core but two beside a GPU.",
    ),
    batch_size: int | None = typer.Option(
        None, min=1, help="Claims per forward pass; default 64 on the CPU, 1024 on a GPU."
    ),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    precision: str = typer.Option(
        "auto", help="auto (bf16 on a GPU or a CPU with native bf16, else fp32), bf16 or fp32."
    ),
    restart: bool = typer.Option(False, help="Discard what an interrupted run left."),
    engine: str = typer.Option(
        "local", help="local, or ray: Ray Data over RAY_ADDRESS or a local Ray (OUT: a folder)."
    ),
    actors: int | None = typer.Option(
        None, min=1, help="Ray: model actors; default one per GPU, else one per two CPUs."
    ),
    explain: bool = typer.Option(
        False,
        "--explain",
        help="Add each row's top factors per task and the decision's reasons as columns "
        "(docs/scoring.md); answers each claim once more per phrase of its narrative.",
    ),
    job: str | None = typer.Option(None, help="The job to report to (the service creates it)."),
) -> None:
    """Score a backlog file in chunks; an interrupted run resumes where it stopped."""
    from claims.cli.main import user_errors
    from claims.store import Store
    from claims.store.data_settings import DataSettings
    from claims.store.job_progress import reporting
    from serving.batch.scoring import ScoringError

    console = Console(stderr=True)
    store = Store.from_settings(DataSettings())
    with reporting(store, "score", job) as report, user_errors(ScoringError):
        languages = _languages()
        if engine == "ray":
            from serving.batch.ray_scoring import score_with_ray

            if model is None:
                raise ScoringError("--engine ray needs --model: a folder every node can read")
            summary = score_with_ray(
                model, source, out, rejects, actors=actors, explain=explain, languages=languages
            )
        elif engine == "local":
            summary = _score_locally(
                source,
                out,
                rejects,
                loading={"device": device, "batch_size": batch_size, "precision": precision},
                model=model,
                chunk_rows=chunk_rows,
                workers=workers,
                restart=restart,
                explain=explain,
                languages=languages,
                console=console,
                report=report.progress,
            )
        else:
            raise ScoringError(f"--engine: {engine!r} is neither local nor ray")
        report.succeeded(
            f"{summary.scored:,} scored, {summary.rejected:,} rejected", summary.model_dump()
        )
    console.print(
        f"{summary.rows:,} rows in: {summary.scored:,} scored -> {summary.output}, "
        f"{summary.rejected:,} rejected -> {summary.rejects} "
        f"({summary.claims_per_second:,.0f} claims/s, model {summary.model_version})"
    )
    if summary.model_seconds is not None and summary.waiting_seconds is not None:
        helpers = f"{summary.workers} processes" if summary.workers > 1 else "a thread"
        console.print(
            f"the model worked {summary.model_seconds:,.1f} s and waited "
            f"{summary.waiting_seconds:,.1f} s for the CPU work ({helpers})"
        )


def _score_locally(
    source: Path,
    out: Path,
    rejects: Path | None,
    *,
    loading: dict[str, Any],
    model: Path | None,
    chunk_rows: int,
    workers: int | None,
    restart: bool,
    explain: bool,
    languages: LanguageDetector,
    console: Console,
    report: Callable[[float, str], None],
) -> ScoreSummary:
    """The local engine, behind a progress bar with rows, rate and time left."""
    from claims.data.streams import count_rows
    from serving.batch.scoring import BacklogScorer, default_workers, load_scoring_model

    checkpoint = load_scoring_model(model, **loading)
    device = next(checkpoint.predictor.model.parameters()).device.type
    total = count_rows(source)
    with Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} rows"),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("score", total=total, rate=0.0)
        started = time.perf_counter()

        def advance(rows: int) -> None:
            progress.advance(bar, rows)
            done = progress.tasks[0].completed
            progress.update(bar, rate=done / max(time.perf_counter() - started, 1e-9))
            report(done / max(total or 1, done), f"{done:,} rows scored or rejected")

        scorer = BacklogScorer(
            checkpoint.predictor,
            checkpoint.config,
            chunk_rows=chunk_rows,
            workers=workers or default_workers(device),
            progress=advance,
            explain=explain,
            languages=languages,
        )
        return scorer.score(source, out, rejects, restart=restart)


def _languages() -> LanguageDetector:
    """The service's reading of languages, from the same CLAIMS_* variables (a batch job the
    service starts inherits them); one the detector lacks stops the run before it scores."""
    from pydantic import ValidationError

    from claims.domain.config import describe_validation_error
    from claims.domain.language import LanguageSettings
    from serving.batch.scoring import ScoringError

    try:
        languages = LanguageSettings().detector()
        languages.load()
    except ValidationError as error:
        raise ScoringError(f"CLAIMS_* settings: {describe_validation_error(error)}") from error
    except ValueError as error:
        raise ScoringError(f"CLAIMS_DETECT_LANGUAGES: {error}") from error
    return languages


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(score)
