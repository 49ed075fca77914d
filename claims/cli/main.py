"""The `claims` command. Training and serving add their own sub-commands through the
`claims.commands` entry points, so this package never imports them."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path

import typer
from rich.console import Console

from claims.data.dataset import DataError
from claims.data.tables import TableFormatError, write_table
from claims.domain.config import ConfigError
from claims.model.checkpoint import CheckpointError
from claims.model.encoder import BaseModelError
from claims.model.features import FeatureError
from claims.store.registry import RegistryError

console = Console(stderr=True)
app = typer.Typer(
    name="claims",
    help="Fine-tune a small open model into your claims-triage specialist, and serve it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    DataError,
    TableFormatError,
    FeatureError,
    CheckpointError,
    BaseModelError,
    RegistryError,
    FileNotFoundError,
)


@contextmanager
def user_errors(*more: type[Exception]) -> Iterator[None]:
    """A bad file, config or checkpoint (or one of `more`) ends the command with its reason,
    not a traceback."""
    try:
        yield
    except (*USER_ERRORS, *more) as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(code=2) from error


class Language(StrEnum):
    """What `claims generate` writes the narratives in (claims/data/synthetic_pt.py)."""

    en = "en"
    pt = "pt"
    mixed = "mixed"


@app.command()
def generate(
    out: Path = typer.Option(..., help="Output file: .csv, .jsonl or .parquet."),
    n: int = typer.Option(5000, "--n", min=1, help="Number of claims."),
    seed: int = typer.Option(0, help="Same seed, same file."),
    language: Language = typer.Option(
        Language.en,
        help="pt: the same stories in Brazilian (BRL) and European (EUR) Portuguese; mixed: "
        "each claim in English or Portuguese.",
    ),
) -> None:
    """Write the embedded default: realistic synthetic claims with triage labels."""
    from claims.data.synthetic import generate_claims

    with user_errors():
        path = write_table(generate_claims(n, seed, language.value), out)
    console.print(f"wrote {n:,} synthetic claims to {path}")


def main() -> None:
    # peft still calls a transformers 5 alias that warns on every load; nothing for a user to do
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
    for entry_point in entry_points(group="claims.commands"):
        entry_point.load()(app)
    app()
