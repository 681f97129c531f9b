"""GC pause watch: how long CPython's collector stopped the process, per generation.

Role: the cockpit's latency tail is dominated by collector pauses (measured in scripts/bench_cockpit.py), so the process
measures them instead of guessing. ``install()`` registers one ``gc.callbacks`` hook (idempotent);
``stats()`` returns counts, totals and maxima per generation plus a bounded ring of recent pauses.

Invariants: the hook does O(1) work and never allocates unboundedly (fixed-size deque); it is
process-wide and thread-agnostic (a collection stops every thread, whichever triggered it); it is
removed when the engine stops and at exit (see ``uninstall``).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

_started: list[float] = [0.0, 0.0]
_cpu_us = [0, 0, 0]
_count = [0, 0, 0]
_total_us = [0, 0, 0]
_max_us = [0, 0, 0]
_recent: deque[tuple[int, int]] = deque(maxlen=4096)  # (generation, pause µs)
_young = [0, 0]  # young objects at the start of young collections: sum, max
_collected = [0, 0, 0]  # unreachable (cyclic garbage) objects freed, per generation


def _hook(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        _started[1] = time.thread_time()
        if info.get("generation", 0) == 0:
            n = gc.get_count()[0]  # not yet reset: the size of the young generation
            _young[0] += n
            _young[1] = max(_young[1], n)
        return
    gen = int(info.get("generation", 0))
    us = int((time.perf_counter() - _started[0]) * 1e6)
    _count[gen] += 1
    _cpu_us[gen] += int((time.thread_time() - _started[1]) * 1e6)
    _total_us[gen] += us
    if us > _max_us[gen]:
        _max_us[gen] = us
    _collected[gen] += int(info.get("collected", 0))
    _recent.append((gen, us))


def install() -> None:
    if _hook not in gc.callbacks:
        gc.callbacks.append(_hook)
        atexit.register(uninstall)


def uninstall() -> None:
    """Before interpreter shutdown: a Python-level GC hook lets a daemon thread that collects
    inside a C++ extension (DuckDB) drop the GIL mid-collection; once finalization has begun such
    a thread is unwound through C++ frames and the process aborts."""
    while _hook in gc.callbacks:
        gc.callbacks.remove(_hook)


def reset() -> None:
    for i in range(3):
        _count[i] = _total_us[i] = _max_us[i] = _cpu_us[i] = _collected[i] = 0
    _young[0] = _young[1] = 0
    _recent.clear()


def stats() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g in range(3):
        out[f"gen{g}"] = {
            "count": _count[g],
            "total_ms": round(_total_us[g] / 1000, 1),
            "max_ms": round(_max_us[g] / 1000, 2),
            "cpu_ms": round(_cpu_us[g] / 1000, 1),
            "collected": _collected[g],
        }
    out["gen0"]["young_avg"] = _young[0] // _count[0] if _count[0] else 0
    out["gen0"]["young_max"] = _young[1]
    pauses = sorted(us for _, us in _recent)
    out["recent_p99_ms"] = round(pauses[int(len(pauses) * 0.99)] / 1000, 2) if pauses else 0.0
    out["tracked_objects"] = sum(gc.get_count()) + len(gc.get_objects(2))
    out["frozen_objects"] = gc.get_freeze_count()
    out["debug_flags"] = gc.get_debug()  # 0 unless a garbage probe is running
    return out


class GcPacer:
    """Collections at moments the engine chooses, small and frequent, instead of large ones at
    whatever allocation happens to cross a threshold (often mid order path, or mid render).

    ``step()`` runs on the engine loop between callbacks (never inside a tick's processing):
    a young collection when ``young`` container objects accumulated, a middle one every
    ``middle_every`` young ones, and a full one every ``full_every_s`` so cyclic garbage that
    reached the old generation is still reclaimed (memory bounded). The automatic thresholds stay
    in force as a backstop — collection is never switched off.
    """

    def __init__(
        self,
        *,
        young: int = 2000,
        middle_every: int = 5,
        full_every_s: float = 300.0,
        now: Any = time.monotonic,
    ) -> None:
        self.young = young
        self.middle_every = middle_every
        self.full_every_s = full_every_s
        self._now = now
        self._last_full = now()
        self.collections = [0, 0, 0]

    def step(self) -> int:
        """Run at most one collection; returns its generation, or -1 if none was due."""
        if self._now() - self._last_full >= self.full_every_s:
            self._last_full = self._now()
            gen = 2
        elif gc.get_count()[1] >= self.middle_every:
            gen = 1
        elif gc.get_count()[0] >= self.young:
            gen = 0
        else:
            return -1
        gc.collect(gen)
        self.collections[gen] += 1
        return gen


def top_types(n: int = 15) -> list[tuple[str, int]]:
    """The most numerous types among collector-tracked, unfrozen old objects (leak hunting)."""
    from collections import Counter

    counts = Counter(type(o).__qualname__ for o in gc.get_objects(2))
    return counts.most_common(n)


class SavedGarbage:
    """What :func:`saving_garbage` collected: type counts, taken when the window closed."""

    def __init__(self) -> None:
        self.counts: list[tuple[str, int]] = []

    def top(self, n: int = 15) -> list[tuple[str, int]]:
        return self.counts[:n]


@contextlib.contextmanager
def saving_garbage() -> Iterator[SavedGarbage]:
    """Leak/churn hunting (the bench's ``garbage`` probe, diagnostic only): while inside, keep what
    the collector frees (``gc.DEBUG_SAVEALL``); on leaving — normally, by an error or by a
    cancellation — count it by type, release it and restore the debug flags as they were."""
    from collections import Counter

    saved = SavedGarbage()
    flags = gc.get_debug()
    if flags & gc.DEBUG_SAVEALL:  # nested windows would restore each other's flags out of order
        raise RuntimeError("a garbage probe is already running")
    gc.set_debug(flags | gc.DEBUG_SAVEALL)
    try:
        yield saved
    finally:
        gc.set_debug(flags)
        saved.counts = Counter(type(o).__qualname__ for o in gc.garbage).most_common()
        gc.garbage.clear()
