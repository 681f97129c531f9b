"""One engine per data dir: an exclusive ``flock`` on ``<data_dir>/engine.lock``.

Role: called once at start, before the DB is opened; a second engine (or a second cockpit with an
embedded engine) on the same data dir fails fast with ``AlreadyRunning`` naming the holder's pid.

Invariants:
- The lock is the kernel ``flock``, not the file's existence: it dies with the process (kill -9
  included), so there is no stale-lock cleanup and the file is never unlinked (unlinking a flock'd
  file lets a third process lock a fresh inode while the second still holds the old one).
- The file is opened without truncation; only the holder truncates and writes its pid, so a loser
  never erases the winner's pid. A loser touches nothing.
- The fd is close-on-exec (Python's default, PEP 446, and O_CLOEXEC says so explicitly):
  subprocesses the engine spawns do not inherit and prolong the lock. Never make it inheritable.
  A plain ``fork()`` without exec would share it; the engine does not fork.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from engine.core.fsutil import make_private_dir

LOCK_NAME = "engine.lock"
# The holder locks, then writes its pid: a loser arriving in between reads an empty file.
_PID_READ_ATTEMPTS = 20
_PID_READ_PAUSE_S = 0.005


class AlreadyRunning(Exception):
    """Another live process holds the data dir's engine lock."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        shown = str(pid) if pid is not None else "unknown"
        super().__init__(f"engine already running (pid {shown})")

    def __str__(self) -> str:
        return str(self.args[0])


class EngineLock:
    """A held engine lock; ``release()`` (or leaving the ``with`` block) gives it up."""

    __slots__ = ("_fd", "path", "pid")

    def __init__(self, path: Path, fd: int, pid: int) -> None:
        self.path = path
        self.pid = pid
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        """Unlock and close; idempotent. The file stays (see module invariants)."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    for attempt in range(_PID_READ_ATTEMPTS):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        if attempt + 1 < _PID_READ_ATTEMPTS:
            time.sleep(_PID_READ_PAUSE_S)
    return None


def acquire(data_dir: Path) -> EngineLock:
    """Take the data dir's engine lock or raise ``AlreadyRunning`` without side effects on it."""
    if not data_dir.exists():
        make_private_dir(data_dir)  # 0700, parents too
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = _read_pid(fd)
        finally:
            os.close(fd)
        raise AlreadyRunning(holder) from None
    except BaseException:
        os.close(fd)
        raise
    pid = os.getpid()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n".encode(), 0)
    except BaseException:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise
    return EngineLock(path, fd, pid)
