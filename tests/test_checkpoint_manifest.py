"""A manifest vouches for every file of its checkpoint: one that leaves a file out is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claims.model.checkpoint import (
    MANIFEST,
    CheckpointError,
    FallbackCode,
    load_checkpoint,
    required_files,
    verify_checkpoint,
)
from claims.store.registry import Registry
from schemas.config import Strategy
from schemas.registry import Lineage


def leave_out(folder: Path, name: str) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"] = [entry for entry in manifest["files"] if entry["path"] != name]
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "name",
    ["heads.safetensors", "config.json", "specialist.json", "encoder.safetensors"],
)
def test_a_manifest_that_omits_a_file_the_model_loads_is_refused(
    checkpoint_copy: Path, name: str
) -> None:
    leave_out(checkpoint_copy, name)
    (checkpoint_copy / name).write_bytes(b"anything at all")  # nothing would check it
    with pytest.raises(CheckpointError) as refused:
        verify_checkpoint(checkpoint_copy)
    assert refused.value.code is FallbackCode.manifest_invalid
    assert name in refused.value.detail
    with pytest.raises(CheckpointError):
        load_checkpoint(checkpoint_copy)


def test_a_manifest_that_omits_heads_and_the_file_itself_is_refused(checkpoint_copy: Path) -> None:
    leave_out(checkpoint_copy, "heads.safetensors")
    (checkpoint_copy / "heads.safetensors").unlink()
    with pytest.raises(CheckpointError) as refused:
        verify_checkpoint(checkpoint_copy)
    assert refused.value.code is FallbackCode.manifest_invalid
    assert "does not list heads.safetensors" in refused.value.detail


def test_a_file_the_manifest_does_not_list_is_refused(checkpoint_copy: Path) -> None:
    # weights a loader could read beside the listed ones
    (checkpoint_copy / "encoder.bin").write_bytes(b"unchecked weights")
    with pytest.raises(CheckpointError) as refused:
        verify_checkpoint(checkpoint_copy)
    assert refused.value.code is FallbackCode.manifest_invalid
    assert "encoder.bin is not in the manifest" in refused.value.detail


def test_the_registry_refuses_a_checkpoint_whose_manifest_omits_heads(
    checkpoint_copy: Path, tmp_path: Path
) -> None:
    leave_out(checkpoint_copy, "heads.safetensors")
    registry = Registry(tmp_path / "registry")
    lineage = Lineage(
        origin="registered", training_data_file="c.csv", training_data_sha256="0", training_rows=1
    )
    with pytest.raises(CheckpointError):
        registry.register(checkpoint_copy, lineage)
    assert registry.versions() == []


def test_a_sound_checkpoint_lists_what_its_strategy_requires(trained_checkpoint: Path) -> None:
    manifest = verify_checkpoint(trained_checkpoint)
    assert manifest.strategy is Strategy.full
    assert required_files(manifest.strategy) <= {entry.path for entry in manifest.files}
    assert "encoder.safetensors" in required_files(Strategy.last_layers)
    assert "encoder.safetensors" not in required_files(Strategy.head)
    assert "adapter/adapter_model.safetensors" in required_files(Strategy.lora)
