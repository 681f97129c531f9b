"""Private files and directories: crash-safe small writes (audit head, keystore), owner-only
directories and the process umask.

Invariants:
- Every write of a whole buffer goes through ``write_all``: ``os.write`` may write *part* of it
  (a full disk writes what fits and returns the count); unchecked, a truncated file would be
  fsynced and renamed over the good one.
- After ``write_private_atomic`` returns, the file holds exactly ``data`` with mode 0600 and the
  rename itself is durable (directory fsynced); on any failure the previous file is intact and no
  temp file is left behind.
- Every directory the cockpit creates (the data dir and its parents, ``secrets/``, ``audit/``,
  ``logs/``, ``backups/``...) is created by ``make_private_dir``: mode 0700 whatever the umask.
- ``private_umask`` (0077) is set once at process start by the ``cockpit`` command, so DuckDB's
  WAL and every file a library creates is owner-only; a file meant to be shared (the metrics
  textfile) sets its mode explicitly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_umask() -> int:
    """Make everything this process creates owner-only; returns the previous umask."""
    return os.umask(PRIVATE_UMASK)


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parent with mode 0700 (chmod: the umask cannot widen or
    narrow it); an existing directory is left as it is (``others_can_read`` reports it)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue  # created meanwhile by another process: its mode is its own
        os.chmod(d, 0o700)
    return path


def others_can_read(path: Path) -> int:
    """The group/other permission bits of ``path`` (0 when owner-only)."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` or raise ``OSError`` (ENOSPC when the disk is full)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # not seen on Linux (a full disk raises), but a 0 must never loop forever
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def append_all(fd: int, data: bytes, size: int | None = None, *, sync: bool = False) -> None:
    """Append every byte of ``data`` to the O_APPEND ``fd`` (then ``fdatasync`` it with
    ``sync``), or none: on failure the file is cut back to ``size`` (its length now, unless the
    caller tracks it), so no torn record is left for the next append to glue onto."""
    size = os.fstat(fd).st_size if size is None else size
    try:
        write_all(fd, data)
        if sync:
            os.fdatasync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


def write_private_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        os.fchmod(fd, 0o600)
        write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(path.parent)  # the rename must survive a crash, or the file could silently revert
