"""The model registry: verified checkpoints on a shared path, their records in the store.

    registry/
      versions/<version>/checkpoint/   the checkpoint, as training wrote it; <version> is a
                                       digest of its files, each verified whenever it is loaded
      .challenger-*/, versions/.sp-*/  work in progress, each locked by the process doing it

Which versions exist, where each came from, its gate report, the champion and every promotion
and rollback are in the store (claims/store/registry_records.py), so every replica that shares
the database and the path sees one registry, and follows the champion by its generation. Every
copy and rename is fsynced, folders included, before a version is recorded; work folders whose
process died are removed by `remove_abandoned`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from claims.model.checkpoint import verify_checkpoint
from claims.store.data_settings import DataSettings
from claims.store.files import exclusive_lock, fsync_path, fsync_tree, make_private_dirs
from claims.store.registry_records import RegistryRecords
from claims.store.store import Store
from schemas.registry import ChampionPointer, Lineage, ModelVersion, RegistryEvent

CHECKPOINT = "checkpoint"
CHALLENGER_PREFIX = ".challenger-"  # retraining's work folder, in the registry's root


class RegistryError(RuntimeError):
    """An unknown version, or a promotion or rollback that cannot be done."""


class Registry:
    def __init__(self, root: str | Path, store: Store) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.records = RegistryRecords(store)

    @classmethod
    def from_settings(cls, settings: DataSettings, store: Store | None = None) -> Registry:
        """The registry of the data directory and store the settings name."""
        return cls(settings.registry_dir, store or Store.from_settings(settings))

    def register(self, checkpoint: str | Path, lineage: Lineage) -> ModelVersion:
        """Copy a verified checkpoint in and record it; registering the same version again, on
        any replica, changes nothing."""
        manifest = verify_checkpoint(checkpoint)
        if self.records.version(manifest.model_version) is not None:
            return self.get(manifest.model_version)
        folder = self.versions_dir / manifest.model_version
        if not (folder / CHECKPOINT).is_dir():
            with self.scratch(f".{manifest.model_version}-", self.versions_dir) as staging:
                shutil.copytree(checkpoint, staging / CHECKPOINT)
                verify_checkpoint(staging / CHECKPOINT)
                staging.chmod(0o755)
                fsync_tree(staging)  # the copy is on disk before its name says it is there
                try:
                    staging.rename(folder)
                except OSError:
                    if not (folder / CHECKPOINT).is_dir():
                        raise
                    # another replica placed the same version first: same digest, same files
                fsync_path(self.versions_dir)
        self.records.add(
            ModelVersion(
                version=manifest.model_version,
                created_at=manifest.created_at,
                registered_at=datetime.now(UTC),
                strategy=manifest.strategy,
                metrics=manifest.metrics,
                lineage=lineage,
            )
        )
        return self.get(manifest.model_version)

    @contextmanager
    def scratch(self, prefix: str, parent: Path | None = None) -> Iterator[Path]:
        """A work folder in the registry, removed on leaving; it stays locked while its process
        lives, so `remove_abandoned` takes only the folders of processes that died."""
        parent = parent or self.root
        with self._locked():  # made and locked at once, out of remove_abandoned's reach
            make_private_dirs(parent)
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            holder = os.open(folder, os.O_RDONLY)
            fcntl.flock(holder, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # gone already once renamed into place
            os.close(holder)

    def remove_abandoned(self) -> list[str]:
        """Delete the work folders of registrations and retrains that were killed; those of
        live processes stay. Returns the names removed."""
        if not self.root.is_dir():
            return []
        removed = []
        with self._locked():
            candidates = [*self.root.glob(f"{CHALLENGER_PREFIX}*")]
            if self.versions_dir.is_dir():
                candidates += self.versions_dir.glob(".*")
            for path in sorted(candidates):
                if path.is_dir() and not path.is_symlink():
                    if not _abandoned(path):
                        continue
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed

    def get(self, version: str) -> ModelVersion:
        entry = self.records.version(version)
        if entry is None:
            raise RegistryError(f"no version {version!r} in the registry")
        entry.champion = version == self.champion()
        return entry

    def versions(self) -> list[ModelVersion]:
        """Oldest first."""
        champion = self.champion()
        entries = self.records.versions()
        for entry in entries:
            entry.champion = entry.version == champion
        return entries

    def checkpoint(self, version: str) -> Path:
        self.get(version)
        return self.versions_dir / version / CHECKPOINT

    def pointer(self) -> ChampionPointer | None:
        return self.records.champion()

    def champion(self) -> str | None:
        pointer = self.pointer()
        return pointer.version if pointer else None

    def promote(self, version: str, reason: str) -> ChampionPointer:
        self.get(version)

        def promoted(current: ChampionPointer | None) -> ChampionPointer:
            if current is not None and current.version == version:
                return current
            previous = [*current.previous, current.version] if current else []
            return ChampionPointer(
                version=version, since=datetime.now(UTC), reason=reason, previous=previous
            )

        return self.records.switch("promote", promoted)

    def rollback(self, reason: str) -> ChampionPointer:
        """Back to the champion before this one, with its exact files."""

        def rolled_back(current: ChampionPointer | None) -> ChampionPointer:
            if current is None or not current.previous:
                raise RegistryError("no earlier champion to roll back to")
            return ChampionPointer(
                version=current.previous[-1],
                since=datetime.now(UTC),
                reason=reason,
                previous=current.previous[:-1],
            )

        return self.records.switch("rollback", rolled_back)

    def events(self) -> list[RegistryEvent]:
        return self.records.events()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One clean-up or new work folder at a time, across the processes of one machine."""
        make_private_dirs(self.root)
        with exclusive_lock(self.root / ".lock"):
            yield


def _abandoned(folder: Path) -> bool:
    """Whether no process holds the folder's lock: its owner finished or was killed."""
    try:
        holder = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(holder)
    return True
