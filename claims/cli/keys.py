"""`claims keys create | list | revoke`: the service's API keys, kept hashed in the store."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from claims.store import Store
from claims.store.data_settings import DataSettings
from schemas.auth import Role

keys = typer.Typer(
    name="keys", help="API keys for the service, each with a role.", no_args_is_help=True
)
console = Console(stderr=True)  # stdout carries only the key, for scripts


@keys.command()
def create(
    name: str = typer.Option(..., help="Who or what uses the key, e.g. 'fnol-intake'."),
    role: Role = typer.Option(..., help="triage, adjuster (also feedback) or admin (also all)."),
) -> None:
    """Print a new key once; the store keeps only its hash."""
    info, key = Store.from_settings(DataSettings()).create_key(name, role)
    console.print(f"key {info.key_id} ({info.role}) for {info.name}; shown once, keep it safe:")
    print(key)


@keys.command("list")
def list_keys() -> None:
    table = Table("key_id", "name", "role", "created", "revoked")
    for info in Store.from_settings(DataSettings()).api_keys():
        revoked = f"{info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else ""
        table.add_row(
            info.key_id, info.name, info.role, f"{info.created_at:%Y-%m-%d %H:%M}", revoked
        )
    console.print(table)


@keys.command()
def revoke(key_id: str = typer.Argument(..., help="From `claims keys list`.")) -> None:
    """Refuse the key from now on (a running service within a few seconds)."""
    try:
        info = Store.from_settings(DataSettings()).revoke_key(key_id)
    except LookupError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(code=2) from error
    console.print(f"revoked {info.key_id} ({info.name})")


def register_commands(app: typer.Typer) -> None:
    app.add_typer(keys)
