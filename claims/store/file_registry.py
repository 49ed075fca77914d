"""Imports a registry kept in files (before its records moved into the store) once.

Such a registry kept `versions/<version>/version.json` beside each checkpoint, the champion in
`champion.json` and every switch in `events.jsonl`. The checkpoints already lie where the store's
registry looks for them, so only the records are copied; the files are left as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

from claims.store.registry import CHECKPOINT, Registry, RegistryError
from schemas.registry import ChampionPointer, ModelVersion, RegistryEvent

VERSION_FILE = "version.json"
CHAMPION_FILE = "champion.json"
EVENTS_FILE = "events.jsonl"


@dataclass(frozen=True)
class FileImport:
    versions: int  # recorded now; those already in the store are not counted
    events: int  # 0 when the store's registry already had a champion
    champion: str | None


def import_file_registry(registry: Registry) -> FileImport:
    """Records every version in `registry.root` the store lacks; then, if the store's registry
    has no champion yet, the file registry's events and champion. Running it again adds
    nothing."""
    added = 0
    folders = sorted(registry.versions_dir.glob(f"*/{VERSION_FILE}"))
    for path in folders:
        entry = ModelVersion.model_validate_json(path.read_bytes())
        if not (path.parent / CHECKPOINT).is_dir():
            raise RegistryError(f"version {entry.version} has no {CHECKPOINT} folder")
        if registry.records.version(entry.version) is None:
            registry.records.add(entry.model_copy(update={"champion": False}))
            added += 1
    champion_file = registry.root / CHAMPION_FILE
    if not champion_file.is_file() or registry.pointer() is not None:
        return FileImport(added, 0, registry.champion())
    pointer = ChampionPointer.model_validate_json(champion_file.read_bytes())
    events_file = registry.root / EVENTS_FILE
    lines = events_file.read_text(encoding="utf-8").splitlines() if events_file.is_file() else []
    events = [RegistryEvent.model_validate_json(line) for line in lines if line.strip()]
    if not events or events[-1].version != pointer.version:
        # The log is missing or ends elsewhere: the pointer is the truth, recorded as a switch.
        events.append(
            RegistryEvent(
                at=pointer.since,
                action="promote",
                version=pointer.version,
                previous_version=events[-1].version if events else None,
                reason=pointer.reason,
            )
        )
    count = registry.records.import_history(events, pointer)
    return FileImport(added, count, pointer.version)
