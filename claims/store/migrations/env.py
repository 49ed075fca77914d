"""Alembic's entry point for the store's migrations.

`Store` runs them on its own connection (`config.attributes["connection"]`), inside the transaction
that holds its migration lock. To write the next revision, bring a database to head and compare:

    from alembic import command
    from claims.store.store import alembic_config
    command.revision(alembic_config("sqlite:///data/claims.db"), "what changed",
                     autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from claims.store.orm import Base

config = context.config


def run(connection: Connection) -> None:
    # SQLite alters a table by copying it, which Alembic does only in batch mode.
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("give the database: alembic_config(url) or attributes['connection']")
    if context.is_offline_mode():  # `--sql`: write the DDL out for review instead of running it
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            run(connection)
    finally:
        engine.dispose()


main()
