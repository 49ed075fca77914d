"""The model registry's records in the store, shared by every replica that opens it.

Versions (with their lineage and gate report) and the champion's history are rows; the
champion is the history's newest row, and its generation goes up by one with every switch, so
a replica that has seen generation N knows whether anything changed with one indexed read.
A switch reads the champion and writes the next generation in one transaction; two switches at
once (on PostgreSQL, where they can overlap) cannot both write it, and the loser starts again
from the winner's champion, so no switch is lost and none is applied to a stale champion.
On PostgreSQL the transaction that writes a generation also sends it on `CHAMPION_CHANNEL`
(`pg_notify`), which the server delivers to every listening replica when, and only if, it
commits; on SQLite replicas find it by looking.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from claims.store.orm import ChampionEvent, ModelVersionRecord
from claims.store.store import Store
from schemas.registry import ChampionPointer, Lineage, ModelVersion, RegistryEvent

# The PostgreSQL channel on which every new champion generation is announced; its payload is
# the generation.
CHAMPION_CHANNEL = "claims_champion"

# Switches that lose the race for a generation this many times in a row give up.
SWITCH_ATTEMPTS = 20

# Decides the next champion from the current one (None: none yet).
Switch = Callable[[ChampionPointer | None], ChampionPointer]


class RegistryRecords:
    """Reads and writes of the registry's tables; the checkpoints themselves are files."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, entry: ModelVersion) -> ModelVersion:
        """Records a version once: adding it again, by anyone, returns the first record."""
        row = ModelVersionRecord(
            version=entry.version,
            created_at=entry.created_at,
            registered_at=entry.registered_at,
            strategy=entry.strategy.value,
            origin=entry.lineage.origin,
            parent_version=entry.lineage.parent_version,
            metrics=json.dumps(entry.metrics),
            lineage=entry.lineage.model_dump_json(),
        )
        try:
            with self.store.writing() as session:
                if session.get(ModelVersionRecord, entry.version) is None:
                    session.add(row)
        except IntegrityError:
            pass  # another replica recorded it between our read and our insert
        found = self.version(entry.version)
        assert found is not None, "a version just recorded is readable"
        return found

    def version(self, version: str) -> ModelVersion | None:
        with self.store.reading() as session:
            row = session.get(ModelVersionRecord, version)
            return None if row is None else _model_version(row)

    def versions(self) -> list[ModelVersion]:
        """Oldest first."""
        query = select(ModelVersionRecord).order_by(
            ModelVersionRecord.registered_at, ModelVersionRecord.version
        )
        with self.store.reading() as session:
            return [_model_version(row) for row in session.scalars(query)]

    def champion(self) -> ChampionPointer | None:
        with self.store.reading() as session:
            row = _newest(session)
            return None if row is None else _pointer(row)

    def switch(self, action: str, decide: Switch) -> ChampionPointer:
        """Writes the champion `decide` makes of the current one as the next generation;
        `decide` returning the current pointer (already the champion) writes nothing."""
        for _ in range(SWITCH_ATTEMPTS):
            try:
                with self.store.writing() as session:
                    row = _newest(session)
                    current = None if row is None else _pointer(row)
                    pointer = decide(current)
                    if pointer == current:
                        return pointer
                    pointer = pointer.model_copy(
                        update={"generation": (current.generation if current else 0) + 1}
                    )
                    session.add(
                        ChampionEvent(
                            generation=pointer.generation,
                            at=pointer.since,
                            action=action,
                            version=pointer.version,
                            previous_version=current.version if current else None,
                            reason=pointer.reason,
                            previous=json.dumps(pointer.previous),
                        )
                    )
                    self._announce(session, pointer.generation)
                return pointer
            except IntegrityError:
                continue  # another switch took this generation: decide again from it
        raise RuntimeError(f"the champion changed {SWITCH_ATTEMPTS} times during one {action}")

    def import_history(self, events: list[RegistryEvent], final: ChampionPointer) -> int:
        """Writes a file registry's events as generations 1..N, the last with `final`'s
        rollback list; only into a registry with no champion yet. Returns N."""
        with self.store.writing() as session:
            if _newest(session) is not None:
                raise ValueError("the store's registry already has a champion")
            for generation, event in enumerate(events, start=1):
                last = generation == len(events)
                session.add(
                    ChampionEvent(
                        generation=generation,
                        at=event.at,
                        action=event.action,
                        version=event.version,
                        previous_version=event.previous_version,
                        reason=final.reason if last else event.reason,
                        previous=json.dumps(final.previous if last else []),
                    )
                )
            if events:
                self._announce(session, len(events))
        return len(events)

    def _announce(self, session: Session, generation: int) -> None:
        """Queues the generation's notice in the transaction that writes it: PostgreSQL sends it
        on commit and drops it on rollback, so no replica hears of a switch that did not happen."""
        if self.store.dialect == "postgresql":
            session.flush()  # the row first: a generation another switch took fails here
            session.execute(select(func.pg_notify(CHAMPION_CHANNEL, str(generation))))

    def events(self) -> list[RegistryEvent]:
        """Oldest first."""
        query = select(ChampionEvent).order_by(ChampionEvent.generation)
        with self.store.reading() as session:
            return [
                RegistryEvent(
                    generation=row.generation,
                    at=row.at,
                    action=row.action,
                    version=row.version,
                    previous_version=row.previous_version,
                    reason=row.reason,
                )
                for row in session.scalars(query)
            ]


def _newest(session: Session) -> ChampionEvent | None:
    query = select(ChampionEvent).order_by(ChampionEvent.generation.desc()).limit(1)
    return session.scalar(query)


def _pointer(row: ChampionEvent) -> ChampionPointer:
    return ChampionPointer(
        version=row.version,
        generation=row.generation,
        since=row.at,
        reason=row.reason,
        previous=json.loads(row.previous),
    )


def _model_version(row: ModelVersionRecord) -> ModelVersion:
    return ModelVersion(
        version=row.version,
        created_at=row.created_at,
        registered_at=row.registered_at,
        strategy=row.strategy,
        metrics=json.loads(row.metrics),
        lineage=Lineage.model_validate_json(row.lineage),
    )
