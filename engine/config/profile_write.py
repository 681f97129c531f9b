"""Writing a profile file without ever losing the old one (``cockpit config set``).

Role: :func:`backup` keeps a copy of the current file in ``<profile dir>/.history/<name>.<UTC
yyyymmddThhmmssZ>.toml`` (owner-only; a name already taken gets ``-1``, ``-2``... : a backup is
never overwritten); :func:`stage` writes the new text to a temporary file in the same directory
(so it can be validated with the real loader before anything is replaced); :func:`commit` renames
it over the profile; :func:`restore` puts the old bytes back when the change could not be
recorded.

Invariants:
- At every instant the profile path holds either the complete old text or the complete new one:
  the temporary file is fsynced before ``os.replace``, the directory after it.
- The profile keeps its permission bits (profiles are often shared read-only, 0644); backups
  are 0600 in a 0700 directory (a profile may hold a Telegram chat id or endpoints).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from pathlib import Path

from engine.core.fsutil import fsync_dir, make_private_dir, write_all

HISTORY_DIR = ".history"


def _write_fd(fd: int, data: bytes) -> None:
    write_all(fd, data)
    os.fsync(fd)


def backup(path: Path, data: bytes, now: float | None = None) -> Path:
    """A new owner-only copy of ``data`` (the file's current bytes) next to ``path``."""
    folder = make_private_dir(path.parent / HISTORY_DIR)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    for n in range(10_000):
        target = folder / f"{path.stem}.{stamp}{f'-{n}' if n else ''}.toml"
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        try:
            _write_fd(fd, data)
        finally:
            os.close(fd)
        fsync_dir(folder)
        return target
    raise FileExistsError(f"{folder}: no free backup name for {path.name} at {stamp}")


def stage(path: Path, text: str) -> Path:
    """``text`` in a fsynced temporary file beside ``path``, with ``path``'s permission bits."""
    mode = stat.S_IMODE(path.stat().st_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".toml.tmp")
    try:
        os.fchmod(fd, mode)
        _write_fd(fd, text.encode("utf-8"))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return Path(tmp)


def discard(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def commit(tmp: Path, path: Path) -> None:
    """Atomically put the staged file in place of ``path``."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


def restore(path: Path, old: bytes, backup_file: Path | None) -> None:
    """Undo a committed change whose record failed: the old bytes back, the backup removed."""
    commit(stage(path, old.decode("utf-8")), path)
    if backup_file is not None:
        with contextlib.suppress(FileNotFoundError):
            backup_file.unlink()
