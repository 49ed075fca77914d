"""Files that hold claims or models: private to the product's user, and durable once written.

The store holds claim narratives and the registry what serves, so neither is left readable by
other users of the machine, and a copy or rename is on disk before anyone is told it happened.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("claims.store.files")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def make_private_dirs(path: Path) -> None:
    """Create `path` and any missing parents, each new folder readable by its owner only;
    folders that already exist are left as they are."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # another process made it first
        folder.chmod(PRIVATE_DIR)  # mkdir's mode passes through the umask


def make_private(path: Path) -> None:
    """Take group and other access away from a path this user owns; say so where it cannot."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    try:
        path.chmod(mode & 0o700)
    except PermissionError:
        log.warning("%s is readable by other users and not ours to change", path.name)


def private_sqlite_file(database: Path) -> None:
    """Create the SQLite file 0600 before SQLite opens it (SQLite gives its journal and WAL
    files the database file's mode), and tighten the files of an older, laxer install."""
    make_private_dirs(database.parent)
    os.close(os.open(database, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE))
    for suffix in ("", *SQLITE_COMPANIONS):
        make_private(database.with_name(database.name + suffix))


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (a rename inside it), to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(root: Path) -> None:
    """Every file and folder under `root`, each folder after what it holds."""
    for folder, _folders, files in os.walk(root, topdown=False):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Held by one thread or process at a time, through an flock on the file at `path`."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
