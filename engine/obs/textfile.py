"""Prometheus textfile writer for node_exporter's textfile collector.

Role: the engine keeps a ``prometheus_client.CollectorRegistry``; a periodic task calls
``write_textfile(METRICS_PATH, registry)`` and node_exporter scrapes the file.

Invariants:
- node_exporter may read at any instant, so the file is only ever replaced whole: render into
  memory first, write ``.<name>.<pid>.tmp`` in the same directory (same filesystem, so
  ``os.replace`` is an atomic rename), fsync, rename. A failure at any step leaves the previous
  file intact and removes the temp.
- The file is mode 0644 whatever the process umask (0077 in the engine: node_exporter usually
  runs as another user), and so is a directory this module creates for it (0755).
- No client-side timestamps: node_exporter rejects a textfile that carries them, so samples are
  stripped of timestamps even if a custom collector sets one.
- One writer per path per process (a module lock serialises writers, because the temp name is
  derived from the pid only).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from engine.core.fsutil import write_all

_WRITE_LOCK = threading.Lock()


class _WithoutTimestamps(Collector):
    """Collector view of a registry whose samples carry no timestamp (see module invariants)."""

    __slots__ = ("_registry",)

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            if any(s.timestamp is not None for s in metric.samples):
                metric.samples = [s._replace(timestamp=None) for s in metric.samples]
            yield metric


def _temp_path(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def _make_shared_dir(directory: Path) -> None:
    """node_exporter (another user) must reach the file: each directory created here is 0755
    whatever the umask (0077 in the engine). Inside the data dir (0700) that opens nothing."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)  # noqa: S103 - deliberate mode (the metrics textfile is world-readable for node-exporter)


def write_textfile(path: Path, registry: CollectorRegistry) -> None:
    """Render ``registry`` and atomically replace ``path`` with it (mode 0644)."""
    # Render before touching the filesystem: a raising collector must not disturb the old file.
    data = generate_latest(_WithoutTimestamps(registry))
    directory = path.parent
    if not directory.exists():
        _make_shared_dir(directory)
    tmp = _temp_path(path, os.getpid())
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    with _WRITE_LOCK:
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileExistsError:
            # Only a dead process with a recycled pid (or a crash of ours) leaves this behind;
            # the lock rules out a live writer in this process.
            os.unlink(tmp)
            fd = os.open(tmp, flags, 0o644)
        try:
            try:
                # os.open's mode is masked by the umask; fchmod is not.
                os.fchmod(fd, 0o644)
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def clean_stale_temps(directory: Path, name: str) -> int:
    """Remove ``.<name>.<pid>.tmp`` leftovers of dead processes; returns how many were removed.

    Temps of live processes (including this one) are kept: they may be mid-write. Names whose
    middle part is not a bare pid are not ours (e.g. ``.metrics.prom.1.tmp`` when ``name`` is
    ``metrics``) and are left alone.
    """
    removed = 0
    prefix, suffix = f".{name}.", ".tmp"
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        fname = entry.name
        if not (fname.startswith(prefix) and fname.endswith(suffix)):
            continue
        middle = fname[len(prefix) : -len(suffix)]
        if not middle.isdigit() or _pid_alive(int(middle)):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue  # another cleaner got there first
        removed += 1
    return removed
