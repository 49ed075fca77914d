"""The registry and the store on disk: copies and renames fsynced, killed work cleared, files
private, and a champion that cannot load replaced by the one before it, not the base model."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from claims.model.checkpoint import MANIFEST, FallbackCode
from claims.store import Store
from claims.store.data_settings import DataSettings
from claims.store.registry import CHALLENGER_PREFIX, Registry, RegistryError
from schemas.claim import Claim
from schemas.registry import Lineage
from serving.models import ModelService
from serving.settings import ServiceSettings
from training.retrain import retrain

LINEAGE = Lineage(
    origin="registered", training_data_file="c.csv", training_data_sha256="0", training_rows=1
)


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path os.fsync is called on, in order (the real fsync still runs)."""
    calls: list[Path] = []
    real = os.fsync

    def recording(descriptor: int) -> None:
        calls.append(Path(os.readlink(f"/proc/self/fd/{descriptor}")))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", recording)
    return calls


def test_a_registered_copy_is_fsynced_file_by_file_and_folder_by_folder(
    trained_checkpoint: Path, tmp_path: Path, fsynced: list[Path]
) -> None:
    registry = Registry(tmp_path / "registry")
    entry = registry.register(trained_checkpoint, LINEAGE)
    folder = registry.versions_dir / entry.version
    # fsynced under the staging name, then the rename in versions/
    staged = {path.name for path in fsynced}
    copied = [path for path in folder.rglob("*")]
    assert {path.name for path in copied} <= staged
    assert any(path.name.startswith(f".{entry.version}-") for path in fsynced)
    assert fsynced[-1] == registry.versions_dir.resolve()


def test_promotion_fsyncs_the_pointer_and_its_folder(
    trained_checkpoint: Path, tmp_path: Path, fsynced: list[Path]
) -> None:
    registry = Registry(tmp_path / "registry")
    version = registry.register(trained_checkpoint, LINEAGE).version
    fsynced.clear()
    registry.promote(version, "first")
    root = registry.root.resolve()
    assert (root / "events.jsonl") in fsynced
    assert fsynced.count(root) >= 2  # the log's first entry, then champion.json's rename
    assert fsynced[-1] == root
    assert fsynced.index(root / "events.jsonl") < len(fsynced) - 1


def hold_scratch(root: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process doing retraining's work in the registry, stopped wherever it is."""
    code = (
        "import sys, time\n"
        "from claims.store.registry import CHALLENGER_PREFIX, Registry\n"
        "with Registry(sys.argv[1]).scratch(CHALLENGER_PREFIX) as work:\n"
        "    (work / 'checkpoint').mkdir()\n"
        "    (work / 'checkpoint' / 'heads.safetensors').write_bytes(b'x' * 1000)\n"
        "    print(work, flush=True)\n"
        "    time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip())


def test_the_work_of_a_killed_retrain_is_removed_and_live_work_is_not(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    killed, killed_work = hold_scratch(registry.root)
    alive, alive_work = hold_scratch(registry.root)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert killed_work.is_dir()  # a SIGKILL runs no clean-up of its own
        assert registry.remove_abandoned() == [killed_work.name]
        assert not killed_work.exists()
        assert alive_work.is_dir()
    finally:
        alive.kill()
        alive.wait(10)
    assert registry.remove_abandoned() == [alive_work.name]


def test_the_next_retrain_and_the_next_start_clear_what_killed_ones_left(
    claims_csv: Path, data_dir: Path
) -> None:
    settings = DataSettings()
    registry = Registry(settings.registry_dir)
    left = registry.root / f"{CHALLENGER_PREFIX}k1lled"
    (left / "checkpoint").mkdir(parents=True)
    (left / "checkpoint" / "encoder.safetensors").write_bytes(b"\0" * 4096)
    staging = registry.versions_dir / ".sp-0123456789ab-x1"
    staging.mkdir(parents=True)
    half_pointer = registry.root / ".champion.json-abc"
    half_pointer.write_text("{")
    with pytest.raises(RegistryError, match="no champion"):
        retrain(claims_csv, registry, Store.from_settings(settings))
    assert not left.exists() and not staging.exists() and not half_pointer.exists()
    assert registry.versions() == []

    left.mkdir()
    ModelService.start(ServiceSettings())
    assert not left.exists()


def test_the_store_file_and_the_data_directory_are_private(data_dir: Path) -> None:
    Store.from_settings(DataSettings()).close()
    assert stat.S_IMODE((data_dir / "claims.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) & 0o077 == 0
    for companion in data_dir.glob("claims.db-*"):
        assert stat.S_IMODE(companion.stat().st_mode) & 0o077 == 0, companion.name


def test_an_older_laxer_install_is_tightened(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    Store.from_settings(DataSettings()).close()
    (data_dir / "claims.db").chmod(0o644)
    Store.from_settings(DataSettings()).close()
    assert stat.S_IMODE((data_dir / "claims.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_a_registry_made_first_keeps_the_data_directory_private(
    trained_checkpoint: Path, data_dir: Path
) -> None:
    Registry(DataSettings().registry_dir).register(trained_checkpoint, LINEAGE)
    assert stat.S_IMODE(data_dir.stat().st_mode) & 0o077 == 0


def test_a_champion_that_cannot_load_at_start_gives_way_to_the_one_before_it(
    trained_checkpoint: Path, checkpoint_copy: Path, data_dir: Path
) -> None:
    registry = Registry(DataSettings().registry_dir)
    good = registry.register(trained_checkpoint, LINEAGE).version
    registry.promote(good, "first")
    manifest = json.loads((checkpoint_copy / MANIFEST).read_text())
    manifest["model_version"] = "sp-broken"
    (checkpoint_copy / MANIFEST).write_text(json.dumps(manifest))
    broken = registry.register(checkpoint_copy, LINEAGE).version
    registry.promote(broken, "second")
    heads = registry.checkpoint(broken) / "heads.safetensors"
    heads.write_bytes(heads.read_bytes()[:-8])  # damaged on disk while the service was down

    service = ModelService.start(ServiceSettings())
    active = service.active()
    assert (active.source, active.registry_version) == ("tuned", good)
    assert active.fallback_reason.startswith(
        f"{FallbackCode.previous_champion}: champion sp-broken cannot serve (hash_mismatch"
    )
    assert active.reload_error.startswith("champion sp-broken cannot serve: hash_mismatch")
    readiness = service.readiness()
    assert (readiness.status, readiness.source) == ("degraded", "tuned")
    assert readiness.reason == active.fallback_reason
    result = service.triage([Claim(claim_id="C-1", description="My basement flooded.")])[0]
    assert result.served_by.source == "tuned"
    assert result.served_by.fallback_reason is None
    assert service.reload() is False  # the broken champion is not loaded again and again

    registry.rollback("back to the good one")
    assert service.reload() is False  # it already serves
    assert service.readiness().status == "ready"
    assert (service.active().fallback_reason, service.active().reload_error) == (None, None)


def test_without_a_sound_earlier_champion_the_base_model_answers(
    trained_checkpoint: Path, data_dir: Path
) -> None:
    registry = Registry(DataSettings().registry_dir)
    only = registry.register(trained_checkpoint, LINEAGE).version
    registry.promote(only, "first")
    (registry.checkpoint(only) / "specialist.json").unlink()
    service = ModelService.start(ServiceSettings())
    readiness = service.readiness()
    assert (readiness.status, readiness.source) == ("degraded", "base")
    assert readiness.reason.startswith("file_missing")
