"""`claims serve`: the triage service under uvicorn."""

from __future__ import annotations

from pathlib import Path

import typer


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
) -> None:
    """Start the triage API. Without a sound checkpoint it serves the base model, and says why."""
    import uvicorn

    from serving.app import create_app
    from serving.settings import ServiceSettings

    given = {
        "model_dir": model,
        "config": config,
        "data_dir": data_dir,
        "training_data": training_data,
    }  # unset options leave CLAIMS_* variables in force
    settings = ServiceSettings(
        **{name: value for name, value in given.items() if value is not None}
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command()(serve)
