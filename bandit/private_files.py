"""The data folder and the files in it, readable by their owner only.

The embedded default keeps people's data on disk: the SQLite database (decisions, profiles,
signals, sealed tokens) with its WAL, shared-memory and journal files beside it, the vault's
local key file, and later the VAPID keys. Whatever the process's umask, a folder oO creates is
0700 and a file it creates 0600; a database file left readable by an older version is tightened
when it is opened, and so is the data folder (OO_DATA_DIR) at start-up (`private_folder`).

An existing folder the operator chose for a database elsewhere (OO_DATABASE_URL, a CLI's
`--database-url`) is not changed: it may be their home or a shared folder. Neither is anything
that is not ours, nor a sticky (shared) folder such as /tmp.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""Files SQLite creates beside a database; it gives them the database file's mode."""


def private_folder(path: Path) -> Path:
    """oO's own folder, owner-only: created 0700 when missing, tightened to 0700 when not."""
    if not _create_folder(path):
        _tighten(path, FOLDER_MODE)
    return path


def _create_folder(path: Path) -> bool:
    """Create `path` 0700 (and any missing parents, with the default mode) when it is missing;
    False when it exists already."""
    if path.is_dir():
        return False
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    os.chmod(path, FOLDER_MODE)  # the umask may have taken bits mkdir's mode asked for
    return True


def private_file(path: Path) -> Path:
    """`path` as an owner-only file: created empty (0600) when missing, tightened when not."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
    else:
        os.fchmod(fd, FILE_MODE)
        os.close(fd)
    return path


def create_private_file(path: Path, text: str) -> bool:
    """Write `text` to a new owner-only file (its folder created 0700 if missing); False, and
    nothing written, when the file exists already (another process created it a moment before)."""
    _create_folder(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return True


def private_sqlite(path: Path) -> Path:
    """A SQLite database file, owner-only before SQLite first opens it (its folder created 0700
    if missing).

    SQLite creates the WAL, shared-memory and journal files with the database file's mode, so a
    0600 database keeps them 0600 too; ones an older version left are tightened here.
    """
    _create_folder(path.parent)
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        # None, or another connection's SQLite removed it meanwhile (a rollback journal).
        with contextlib.suppress(FileNotFoundError):
            _tighten(companion, FILE_MODE)
    return path


def _tighten(path: Path, mode: int) -> None:
    """Set `path` to `mode` when others may read it, it is ours and it is not sticky."""
    status = path.stat()
    current = stat.S_IMODE(status.st_mode)
    if current & 0o077 == 0:
        return
    if status.st_uid != os.geteuid() or current & stat.S_ISVTX:
        log.warning("%s is readable by others (mode %o) and not ours to change", path, current)
        return
    os.chmod(path, mode)
    log.warning("%s was readable by others (mode %o); it is now %o", path, current, mode)
