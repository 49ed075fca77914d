"""A model registry in a directory: verified versions, their lineage, and one champion pointer.

    registry/
      versions/<version>/checkpoint/   the checkpoint, as training wrote it
      versions/<version>/version.json  when it was registered, where it came from, its gate
      champion.json                    which version serves; replaced atomically
      events.jsonl                     every promotion and rollback, appended
      .challenger-*/, versions/.sp-*/  work in progress, each locked by the process doing it

A running service polls `champion.json`, so promoting here switches what it serves. Every copy,
write and rename is fsynced, folders included, before the registry says it happened; work
folders whose process died are removed by `remove_abandoned`.
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
from claims.store.files import exclusive_lock, fsync_path, fsync_tree, make_private_dirs
from schemas.registry import ChampionPointer, Lineage, ModelVersion, RegistryEvent

CHECKPOINT = "checkpoint"
VERSION_FILE = "version.json"
CHAMPION_FILE = "champion.json"
EVENTS_FILE = "events.jsonl"
CHALLENGER_PREFIX = ".challenger-"  # retraining's work folder, in the registry's root


class RegistryError(RuntimeError):
    """An unknown version, or a promotion or rollback that cannot be done."""


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"

    def register(self, checkpoint: str | Path, lineage: Lineage) -> ModelVersion:
        """Copy a verified checkpoint in; registering the same version again changes nothing."""
        manifest = verify_checkpoint(checkpoint)
        folder = self.versions_dir / manifest.model_version
        if (folder / VERSION_FILE).is_file():
            return self.get(manifest.model_version)
        with self.scratch(f".{manifest.model_version}-", self.versions_dir) as staging:
            shutil.copytree(checkpoint, staging / CHECKPOINT)
            verify_checkpoint(staging / CHECKPOINT)
            entry = ModelVersion(
                version=manifest.model_version,
                created_at=manifest.created_at,
                registered_at=datetime.now(UTC),
                strategy=manifest.strategy,
                metrics=manifest.metrics,
                lineage=lineage,
            )
            _write_atomically(staging / VERSION_FILE, entry.model_dump_json(indent=2))
            staging.chmod(0o755)
            fsync_tree(staging)  # the copy is on disk before its name says it is registered
            staging.rename(folder)
            fsync_path(self.versions_dir)
        return entry

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
        """Delete the work folders (and half-written files) of registrations and retrains that
        were killed; those of live processes stay. Returns the names removed."""
        if not self.root.is_dir():
            return []
        removed = []
        with self._locked():
            candidates = [*self.root.glob(f"{CHALLENGER_PREFIX}*"), *self.root.glob(".*.json-*")]
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
        path = self.versions_dir / version / VERSION_FILE
        if not path.is_file():
            raise RegistryError(f"no version {version!r} in the registry at {self.root}")
        entry = ModelVersion.model_validate_json(path.read_bytes())
        entry.champion = version == self.champion()
        return entry

    def versions(self) -> list[ModelVersion]:
        """Oldest first."""
        if not self.versions_dir.is_dir():
            return []
        found = [
            self.get(folder.name)
            for folder in self.versions_dir.iterdir()
            if (folder / VERSION_FILE).is_file()
        ]
        return sorted(found, key=lambda entry: entry.registered_at)

    def checkpoint(self, version: str) -> Path:
        self.get(version)
        return self.versions_dir / version / CHECKPOINT

    def pointer(self) -> ChampionPointer | None:
        path = self.root / CHAMPION_FILE
        if not path.is_file():
            return None
        return ChampionPointer.model_validate_json(path.read_bytes())

    def champion(self) -> str | None:
        pointer = self.pointer()
        return pointer.version if pointer else None

    def promote(self, version: str, reason: str) -> ChampionPointer:
        self.get(version)
        with self._locked():
            current = self.pointer()
            if current is not None and current.version == version:
                return current
            previous = [*current.previous, current.version] if current else []
            pointer = ChampionPointer(
                version=version, since=datetime.now(UTC), reason=reason, previous=previous
            )
            self._switch(pointer, "promote", current)
        return pointer

    def rollback(self, reason: str) -> ChampionPointer:
        """Back to the champion before this one, with its exact files."""
        with self._locked():
            current = self.pointer()
            if current is None or not current.previous:
                raise RegistryError("no earlier champion to roll back to")
            pointer = ChampionPointer(
                version=current.previous[-1],
                since=datetime.now(UTC),
                reason=reason,
                previous=current.previous[:-1],
            )
            self._switch(pointer, "rollback", current)
        return pointer

    def events(self) -> list[RegistryEvent]:
        path = self.root / EVENTS_FILE
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [RegistryEvent.model_validate_json(line) for line in lines if line.strip()]

    def _switch(
        self, pointer: ChampionPointer, action: str, current: ChampionPointer | None
    ) -> None:
        event = RegistryEvent(
            at=pointer.since,
            action=action,
            version=pointer.version,
            previous_version=current.version if current else None,
            reason=pointer.reason,
        )
        with open(self.root / EVENTS_FILE, "a", encoding="utf-8") as log:
            log.write(event.model_dump_json() + "\n")
            log.flush()
            os.fsync(log.fileno())
        fsync_path(self.root)  # the log's name, the first time it is written
        _write_atomically(self.root / CHAMPION_FILE, pointer.model_dump_json(indent=2))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One promotion, rollback, clean-up or new work folder at a time, across processes."""
        make_private_dirs(self.root)
        with exclusive_lock(self.root / ".lock"):
            yield


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a part: write, fsync, rename."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
        fsync_path(path.parent)  # the rename itself
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
