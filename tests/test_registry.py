"""The registry: verified versions, an atomic champion pointer, promotion and rollback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from claims.model.checkpoint import MANIFEST, CheckpointError
from claims.store.registry import CHAMPION_FILE, Registry, RegistryError
from schemas.registry import Lineage

LINEAGE = Lineage(
    origin="registered",
    training_data_file="claims.csv",
    training_data_sha256="0" * 64,
    training_rows=480,
)


def other_version(checkpoint: Path, folder: Path) -> Path:
    """The same checkpoint under another version name: enough for pointer tests."""
    copy = Path(shutil.copytree(checkpoint, folder))
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["model_version"] = "sp-000000000002"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    return copy


def test_register_copies_a_verified_checkpoint_once(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "registry")
    entry = registry.register(trained_checkpoint, LINEAGE)
    again = registry.register(trained_checkpoint, LINEAGE)
    assert again.registered_at == entry.registered_at
    assert [v.version for v in registry.versions()] == [entry.version]
    assert (registry.checkpoint(entry.version) / MANIFEST).is_file()
    assert registry.champion() is None


def test_a_damaged_checkpoint_is_refused(checkpoint_copy: Path, tmp_path: Path) -> None:
    (checkpoint_copy / "heads.safetensors").write_bytes(b"not the heads")
    registry = Registry(tmp_path / "registry")
    with pytest.raises(CheckpointError, match="hash_mismatch"):
        registry.register(checkpoint_copy, LINEAGE)
    assert registry.versions() == []


def test_promote_and_rollback_move_one_pointer_and_log_each_move(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "registry")
    first = registry.register(trained_checkpoint, LINEAGE).version
    second = registry.register(other_version(trained_checkpoint, tmp_path / "b"), LINEAGE).version
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
    assert not [p for p in registry.root.iterdir() if p.name.startswith(f".{CHAMPION_FILE}")]


def test_unknown_versions_are_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    with pytest.raises(RegistryError, match="no version"):
        registry.promote("sp-missing", "typo")
    assert registry.versions() == []
