"""The registry: verified versions, the champion by generation, promotion and rollback, on
SQLite and on PostgreSQL (where CLAIMS_TEST_DATABASE_URL names a server)."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest

from claims.model.checkpoint import MANIFEST, CheckpointError
from claims.store import Store
from claims.store.file_registry import import_file_registry
from claims.store.registry import Registry, RegistryError
from schemas.registry import Lineage
from tests.helpers import renamed_checkpoint

LINEAGE = Lineage(
    origin="registered",
    training_data_file="claims.csv",
    training_data_sha256="0" * 64,
    training_rows=480,
)


def test_register_copies_a_verified_checkpoint_once(
    trained_checkpoint: Path, tmp_path: Path, store: Store
) -> None:
    registry = Registry(tmp_path / "registry", store)
    entry = registry.register(trained_checkpoint, LINEAGE)
    again = registry.register(trained_checkpoint, LINEAGE)
    assert again.registered_at == entry.registered_at
    assert [v.version for v in registry.versions()] == [entry.version]
    assert (registry.checkpoint(entry.version) / MANIFEST).is_file()
    assert registry.champion() is None


def test_a_damaged_checkpoint_is_refused(
    checkpoint_copy: Path, tmp_path: Path, store: Store
) -> None:
    (checkpoint_copy / "heads.safetensors").write_bytes(b"not the heads")
    registry = Registry(tmp_path / "registry", store)
    with pytest.raises(CheckpointError, match="hash_mismatch"):
        registry.register(checkpoint_copy, LINEAGE)
    assert registry.versions() == []


def test_promote_and_rollback_move_one_pointer_and_log_each_move(
    trained_checkpoint: Path, tmp_path: Path, store: Store
) -> None:
    registry = Registry(tmp_path / "registry", store)
    first = registry.register(trained_checkpoint, LINEAGE).version
    second = registry.register(
        renamed_checkpoint(trained_checkpoint, tmp_path / "b"), LINEAGE
    ).version
    registry.promote(first, "initial")
    pointer = registry.promote(second, "better")
    assert (pointer.version, pointer.previous) == (second, [first])
    assert registry.get(second).champion and not registry.get(first).champion
    assert registry.rollback("worse in production").version == first
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback("again")
    actions = [(e.action, e.version, e.previous_version) for e in registry.events()]
    assert actions == [
        ("promote", first, None),
        ("promote", second, first),
        ("rollback", first, second),
    ]
    assert [e.generation for e in registry.events()] == [1, 2, 3]
    assert registry.pointer().generation == 3


def test_unknown_versions_are_refused(tmp_path: Path, store: Store) -> None:
    registry = Registry(tmp_path / "registry", store)
    with pytest.raises(RegistryError, match="no version"):
        registry.promote("sp-missing", "typo")
    assert registry.versions() == []


def test_concurrent_switches_each_take_the_next_generation(
    trained_checkpoint: Path, tmp_path: Path, store: Store
) -> None:
    """Replicas promoting at once: every switch is recorded, in one unbroken line of
    generations, each on top of the champion before it (none decided on a stale one)."""
    registry = Registry(tmp_path / "registry", store)
    versions = [registry.register(trained_checkpoint, LINEAGE).version]
    for n in range(2, 5):
        copy = renamed_checkpoint(trained_checkpoint, tmp_path / f"v{n}", f"sp-00000000000{n}")
        versions.append(registry.register(copy, LINEAGE).version)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def promote_twice(worker: int) -> None:
        try:
            start.wait()
            for step in range(2):
                registry.promote(versions[(worker + step) % 4], f"worker {worker}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=promote_twice, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = registry.events()
    assert [e.generation for e in events] == list(range(1, len(events) + 1))
    for before, after in itertools.pairwise(events):
        assert after.previous_version == before.version
    assert registry.pointer().generation == len(events)
    assert registry.champion() == events[-1].version


def test_another_replica_sees_the_registry_through_the_store(
    trained_checkpoint: Path, tmp_path: Path, store: Store, database_url: str
) -> None:
    """A second process's Registry on the same database and path: same versions, same
    champion and generation, and its promotion is the first one's champion."""
    first = Registry(tmp_path / "registry", store)
    version = first.register(trained_checkpoint, LINEAGE).version
    first.promote(version, "initial")
    other_store = Store(database_url)
    second = Registry(tmp_path / "registry", other_store)
    assert second.pointer() == first.pointer()
    assert [v.version for v in second.versions()] == [version]
    assert (second.checkpoint(version) / MANIFEST).is_file()
    newer = second.register(renamed_checkpoint(trained_checkpoint, tmp_path / "b"), LINEAGE).version
    pointer = second.promote(newer, "from the other replica")
    assert first.pointer() == pointer and pointer.generation == 2
    other_store.close()


def test_a_file_registry_is_imported_once(
    trained_checkpoint: Path, tmp_path: Path, store: Store
) -> None:
    """The layout of a registry from before the store kept its records: version.json beside
    each checkpoint, champion.json and events.jsonl."""
    root = tmp_path / "registry"
    versions = ["sp-000000000001", "sp-000000000002"]
    for n, version in enumerate(versions):
        folder = root / "versions" / version
        renamed_checkpoint(trained_checkpoint, folder / "checkpoint", version)
        entry = {
            "version": version,
            "created_at": f"2026-11-0{n + 1}T10:00:00Z",
            "registered_at": f"2026-11-0{n + 1}T11:00:00Z",
            "strategy": "head",
            "metrics": {},
            "lineage": LINEAGE.model_dump(mode="json"),
        }
        (folder / "version.json").write_text(json.dumps(entry))
    events = [
        {"at": "2026-11-01T12:00:00Z", "action": "promote", "version": versions[0],
         "previous_version": None, "reason": "initial"},
        {"at": "2026-11-02T12:00:00Z", "action": "promote", "version": versions[1],
         "previous_version": versions[0], "reason": "better"},
    ]  # fmt: skip
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    pointer = {"version": versions[1], "since": "2026-11-02T12:00:00Z", "reason": "better"}
    (root / "champion.json").write_text(json.dumps({**pointer, "previous": [versions[0]]}))
    registry = Registry(root, store)
    imported = import_file_registry(registry)
    assert (imported.versions, imported.events, imported.champion) == (2, 2, versions[1])
    assert [v.version for v in registry.versions()] == versions
    assert registry.pointer().generation == 2
    assert registry.rollback("back").version == versions[0]  # the rollback list came along
    again = import_file_registry(registry)
    assert (again.versions, again.events) == (0, 0)
    assert registry.champion() == versions[0]
    assert [e.generation for e in registry.events()] == [1, 2, 3]
