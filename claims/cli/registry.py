"""`claims models list | show | register | promote | rollback`: the registry from a terminal."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from claims.cli.main import user_errors
from claims.store.data_settings import DataSettings
from claims.store.registry import Registry
from schemas.registry import Lineage

models = typer.Typer(
    name="models", help="The model registry in CLAIMS_DATA_DIR.", no_args_is_help=True
)
console = Console()


def _registry() -> Registry:
    return Registry(DataSettings().registry_dir)


@models.command("list")
def list_versions() -> None:
    """Every version, oldest first; the champion is starred."""
    table = Table("", "version", "registered", "origin", "parent", "feedback", "gate")
    for entry in _registry().versions():
        gate = entry.lineage.gate
        table.add_row(
            "*" if entry.champion else "",
            entry.version,
            f"{entry.registered_at:%Y-%m-%d %H:%M}",
            entry.lineage.origin,
            entry.lineage.parent_version or "",
            str(entry.lineage.feedback_count),
            ("promoted" if gate.promoted else "rejected") if gate else "",
        )
    console.print(table)


@models.command()
def show(version: str = typer.Argument(..., help="A version from `claims models list`.")) -> None:
    """A version's metrics, lineage and gate decision, as JSON."""
    with user_errors():
        console.print_json(_registry().get(version).model_dump_json())


@models.command()
def register(
    checkpoint: Path = typer.Argument(..., help="A checkpoint folder written by `claims train`."),
    promote: bool = typer.Option(False, help="Make it the champion as well."),
    reason: str = typer.Option("registered by hand", help="Recorded with the promotion."),
) -> None:
    """Verify a checkpoint and copy it into the registry."""
    from claims.model.checkpoint import verify_checkpoint

    registry = _registry()
    with user_errors():
        manifest = verify_checkpoint(checkpoint)
        data = manifest.training_data
        entry = registry.register(
            checkpoint,
            Lineage(
                origin="registered",
                training_data_file=data.file_name,
                training_data_sha256=data.sha256,
                training_rows=data.rows,
            ),
        )
        if promote:
            registry.promote(entry.version, reason)
    console.print(f"registered {entry.version}" + (" as champion" if promote else ""))


@models.command()
def promote(
    version: str = typer.Argument(...),
    reason: str = typer.Option("promoted by hand", help="Recorded with the promotion."),
) -> None:
    """Make a version the champion; a running service switches to it without dropping requests."""
    with user_errors():
        pointer = _registry().promote(version, reason)
    console.print(f"champion: {pointer.version}")


@models.command()
def rollback(
    reason: str = typer.Option("rolled back by hand", help="Recorded with the rollback."),
) -> None:
    """Restore the previous champion."""
    with user_errors():
        pointer = _registry().rollback(reason)
    console.print(f"champion: {pointer.version} (rolled back)")


def register_commands(app: typer.Typer) -> None:
    app.add_typer(models)
