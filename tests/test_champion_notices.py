"""Replicas hear of a new champion from PostgreSQL as its switch commits (LISTEN/NOTIFY), and
still look every reload interval; on SQLite they only look. Skipped on PostgreSQL where
CLAIMS_TEST_DATABASE_URL names no server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from claims.store import Store
from claims.store.registry_records import CHAMPION_CHANNEL, RegistryRecords
from schemas.registry import ChampionPointer, Lineage, ModelVersion, RegistryEvent
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


def _refuse(current: ChampionPointer | None) -> ChampionPointer:
    raise LookupError("no earlier champion")
