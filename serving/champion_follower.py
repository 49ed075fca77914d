"""How a replica follows the registry's champion.

It looks at the champion's generation every reload interval. On PostgreSQL it also listens,
on a connection of its own, for the notice a switch sends as it commits
(claims/store/registry_records.py), and looks at once when one arrives: a promotion through
any replica reaches the others as soon as each has loaded the new model. The looking stays as
the safety net for a notice missed while that connection was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import make_url

from claims.store.registry_records import CHAMPION_CHANNEL
from serving.batching import in_passing_thread
from serving.models import ModelService

log = logging.getLogger("claims.serving")

# A listening connection lost, or never made, is tried again after this many seconds, twice as
# long after each failure in a row, up to the longest.
RECONNECT_FIRST_SECONDS = 1.0
RECONNECT_LONGEST_SECONDS = 60.0
# A listening connection with no notice for this long is asked a query, so a dead one is found
# and replaced; it must answer within as long.
CHECK_SECONDS = 30
# Named so that an operator sees each replica's listener in pg_stat_activity.
APPLICATION_NAME = "claims-champion-listener"


async def follow_champion(models: ModelService, interval: float, store_url: str) -> None:
    """Switches when the registry's champion changes: at once on a switch's notice (on
    PostgreSQL), and in any case after `interval` seconds without one."""
    changed = asyncio.Event()
    listening = (
        asyncio.create_task(listen_for_champions(store_url, changed))
        if make_url(store_url).get_backend_name() == "postgresql"
        else None
    )
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), interval)
            changed.clear()  # before looking: a notice during the look is looked at again
            try:
                await in_passing_thread(models.reload)
            except Exception:  # the loop must outlive any one bad look
                log.exception("reloading the champion failed")
    finally:
        if listening is not None:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening


async def listen_for_champions(store_url: str, changed: asyncio.Event) -> None:
    """Sets `changed` on every champion notice on the PostgreSQL database `store_url` names,
    and once each time it starts listening, for a switch it may have missed meanwhile. Runs
    until cancelled: a connection that fails is logged and opened again, ever less often."""
    import psycopg  # the postgres extra: a service on SQLite runs without it
    from psycopg import sql

    arguments = connection_arguments(store_url)
    listen = sql.SQL("LISTEN {}").format(sql.Identifier(CHAMPION_CHANNEL))
    delay = RECONNECT_FIRST_SECONDS
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(**arguments) as connection:
                await connection.execute(listen)
                log.info("listening for champion switches on PostgreSQL")
                delay = RECONNECT_FIRST_SECONDS
                changed.set()
                while True:
                    async for _notice in connection.notifies(timeout=CHECK_SECONDS):
                        changed.set()
                    await asyncio.wait_for(connection.execute("SELECT 1"), CHECK_SECONDS)
        except Exception as error:  # the listener must outlive any one connection
            log.warning(
                "listening for champion switches failed (%s: %s); the champion is still looked "
                "at every reload interval; listening again in %g s",
                type(error).__name__,
                error,
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_LONGEST_SECONDS)


def connection_arguments(store_url: str) -> dict[str, Any]:
    """psycopg's arguments for the database the store's URL names, as the store's own
    connections get them, in autocommit: a LISTEN takes effect at once, and the notices of
    a connection inside a transaction wait for its end."""
    url = make_url(store_url).set(drivername="postgresql+psycopg")
    _, arguments = url.get_dialect()().create_connect_args(url)
    return {
        "connect_timeout": CHECK_SECONDS,
        "application_name": APPLICATION_NAME,
        **arguments,
        "autocommit": True,
    }
