"""Memory watch: where the process's resident memory goes (Python heap, C heap, DuckDB).

Role: "memory stays bounded" is a claim about a long session, so the process reports its own
breakdown instead of leaving the benchmark to guess from RSS alone. ``process()`` is cheap (a
/proc read, ``sys.getallocatedblocks`` and glibc's ``mallinfo2``) and safe to call from any
thread; ``duckdb_bytes(con)`` must run on the thread that owns the connection (the DB writer).

Invariants: read-only; never imports UI packages; where a figure is unavailable (not glibc, an
older DuckDB) it is reported as ``None``, never guessed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
import threading
import time
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo2() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2  # glibc >= 2.33
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO = _mallinfo2()


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


def process(objects: bool = False) -> dict[str, Any]:
    """RSS, Python's live small blocks, the C heap in use / free, and (on request, O(heap))
    the number of objects the collector tracks."""
    out: dict[str, Any] = {"rss_mib": round(rss_mib(), 1), "py_blocks": sys.getallocatedblocks()}
    if _MALLINFO is not None:
        mi = _MALLINFO()
        out["malloc_used_mib"] = round((mi.uordblks + mi.hblkhd) / 2**20, 1)
        out["malloc_free_mib"] = round(mi.fordblks / 2**20, 1)
    else:
        out["malloc_used_mib"] = out["malloc_free_mib"] = None
    out["gc_tracked"] = len(gc.get_objects()) if objects else None
    out["thread_cpu_s"] = thread_cpu_s()
    return out


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by each live Python thread, by thread name."""
    out: dict[str, float] = {}
    for t in threading.enumerate():
        if t.ident is None:
            continue
        try:
            clk = time.pthread_getcpuclockid(t.ident)
            out[t.name] = round(time.clock_gettime(clk), 3)
        except (OSError, AttributeError, ValueError):  # gone meanwhile, or not POSIX
            continue
    return out


def duckdb_bytes(con: Any) -> int | None:
    """DuckDB's own accounting of the memory it holds (buffer pool, hash tables, ...)."""
    try:
        row = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
    except Exception:  # noqa: BLE001 - an older DuckDB without the table function
        return None
    return int(row[0] or 0) if row else None


def duckdb_tags(con: Any) -> dict[str, float]:
    """DuckDB's memory by tag (BASE_TABLE, ART_INDEX, METADATA, ...), MiB, non-zero only."""
    try:
        rows = con.execute(
            "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0"
        ).fetchall()
    except Exception:  # noqa: BLE001 - an older DuckDB without the table function
        return {}
    return {str(tag): round(int(n) / 2**20, 1) for tag, n in rows}


_last_trace: Any = None


def trace_growth(limit: int) -> list[str] | None:
    """Under ``PYTHONTRACEMALLOC`` (a diagnosis run, not the default): the source lines whose live
    allocations grew most since the previous call (the first call only sets the mark)."""
    import tracemalloc  # here: importing it is free, but only a diagnosis run ever calls this

    global _last_trace
    if not tracemalloc.is_tracing():
        return None
    snap = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    prev, _last_trace = _last_trace, snap
    if prev is None:
        return []
    return [str(s) for s in snap.compare_to(prev, "lineno")[:limit]]
