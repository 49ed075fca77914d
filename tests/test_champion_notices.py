"""Replicas hear of a new champion from PostgreSQL as its switch commits (LISTEN/NOTIFY), and
still look every reload interval; on SQLite they only look. Skipped on PostgreSQL where
CLAIMS_TEST_DATABASE_URL names no server."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from claims.store import Store
from claims.store.registry_records import CHAMPION_CHANNEL, RegistryRecords
from schemas.registry import ChampionPointer, Lineage, ModelVersion, RegistryEvent
from serving.champion_follower import APPLICATION_NAME, listen_for_champions
from tests.helpers import empty_database_url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with empty_database_url("postgresql", tmp_path / "unused.db") as url:
        yield url


@pytest.fixture
def listening(postgres_url: str) -> Iterator[psycopg.Connection]:
    """A connection of its own that LISTENs on the champion's channel, as a replica's does."""
    conninfo = make_url(postgres_url).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"LISTEN {CHAMPION_CHANNEL}")
        yield conn


VERSIONS = ("sp-000000000001", "sp-000000000002")
LINEAGE = Lineage(
    origin="registered", training_data_file="c.csv", training_data_sha256="0", training_rows=1
)


def recorded(store: Store) -> RegistryRecords:
    """The registry's records with two versions, no champion yet."""
    records = RegistryRecords(store)
    for version in VERSIONS:
        at = datetime.now(UTC)
        records.add(
            ModelVersion(
                version=version,
                created_at=at,
                registered_at=at,
                strategy="head",
                metrics={},
                lineage=LINEAGE,
            )
        )
    return records


def pointer(version: str) -> ChampionPointer:
    return ChampionPointer(version=version, since=datetime.now(UTC), reason="test", previous=[])


def notices(conn: psycopg.Connection, timeout: float) -> list[str]:
    return [notice.payload for notice in conn.notifies(timeout=timeout)]


def test_a_champion_switch_on_postgresql_announces_its_generation(
    postgres_url: str, listening: psycopg.Connection
) -> None:
    store = Store(postgres_url)
    try:
        records = recorded(store)
        records.switch("promote", lambda current: pointer(VERSIONS[0]))
        records.switch("promote", lambda current: pointer(VERSIONS[1]))
        assert notices(listening, timeout=2) == ["1", "2"]

        records.switch("promote", lambda current: current or pointer("x"))  # already champion
        with pytest.raises(LookupError):
            records.switch("rollback", _refuse)
        assert notices(listening, timeout=1) == []  # nothing written, nothing announced
    finally:
        store.close()


def test_a_registry_imported_into_the_store_is_announced(
    postgres_url: str, listening: psycopg.Connection
) -> None:
    store = Store(postgres_url)
    try:
        at = datetime.now(UTC)
        events = [
            RegistryEvent(at=at, action="promote", version=v, previous_version=None, reason="file")
            for v in VERSIONS
        ]
        recorded(store).import_history(events, pointer(VERSIONS[1]))
        assert notices(listening, timeout=2) == ["2"]
    finally:
        store.close()


def test_a_replica_hears_every_switch_and_listens_again_once_its_connection_is_lost(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(postgres_url)
    records = recorded(store)

    async def heard(changed: asyncio.Event) -> None:
        await asyncio.wait_for(changed.wait(), 10)
        changed.clear()

    async def scenario() -> None:
        changed = asyncio.Event()
        listener = asyncio.create_task(listen_for_champions(postgres_url, changed))
        try:
            await heard(changed)  # once listening: whatever it may have missed is looked at
            await asyncio.to_thread(records.switch, "promote", lambda c: pointer(VERSIONS[0]))
            await heard(changed)
            assert await asyncio.to_thread(terminate_listeners, postgres_url) == 1
            await heard(changed)  # listening again, on a new connection
            await asyncio.to_thread(records.switch, "promote", lambda c: pointer(VERSIONS[1]))
            await heard(changed)
            assert not listener.done()
        finally:
            listener.cancel()
            store.close()

    with caplog.at_level(logging.WARNING, logger="claims.serving"):
        asyncio.run(scenario())
    assert "listening for champion switches failed" in caplog.text


def terminate_listeners(url: str) -> int:
    """Ends the listening connections' server processes, as a failover or a restart would."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            ended = connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": APPLICATION_NAME},
            )
            return len(ended.all())
    finally:
        engine.dispose()


def _refuse(current: ChampionPointer | None) -> ChampionPointer:
    raise LookupError("no earlier champion")


def test_a_service_on_sqlite_starts_without_the_postgres_extra() -> None:
    """psycopg comes with the postgres extra; importing the service must not need it."""
    probe = "import sys, serving.app; print('psycopg' in sys.modules)"
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert shown.strip() == "False"
