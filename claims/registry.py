"""A model registry in a directory: verified versions, their lineage, and one champion pointer.

    registry/
      versions/<version>/checkpoint/   the checkpoint, as training wrote it
      versions/<version>/version.json  when it was registered, where it came from, its gate
      champion.json                    which version serves; replaced atomically
      events.jsonl                     every promotion and rollback, appended

A running service polls `champion.json`, so promoting here switches what it serves.
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

from claims.checkpoint import verify_checkpoint
from schemas.registry import ChampionPointer, Lineage, ModelVersion, RegistryEvent

CHECKPOINT = "checkpoint"
VERSION_FILE = "version.json"
CHAMPION_FILE = "champion.json"
EVENTS_FILE = "events.jsonl"


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
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{manifest.model_version}-", dir=self.versions_dir)
        )
        try:
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
            staging.rename(folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return entry

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
        _write_atomically(self.root / CHAMPION_FILE, pointer.model_dump_json(indent=2))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One promotion or rollback at a time, across processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


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
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
