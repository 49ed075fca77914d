"""`claims serve`: the triage service under uvicorn."""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    model: Path | None = typer.Option(None, help="Tuned checkpoint folder; none serves the base."),
    config: Path | None = typer.Option(None, help="Config whose tasks the service must answer."),
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
    }  # unset options leave CLAIMS_* variables in force
    settings = ServiceSettings(
        **{name: value for name, value in given.items() if value is not None}
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command()(serve)
