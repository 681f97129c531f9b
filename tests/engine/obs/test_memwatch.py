"""Memory watch: the process breakdown the cockpit benchmark samples (RSS, Python heap, C heap,
DuckDB, per-thread CPU), read from the real process and a real DuckDB connection."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from engine.obs import memwatch


def test_process_when_memory_allocated_then_blocks_and_rss_grow() -> None:
    before = memwatch.process()
    hold = [object() for _ in range(200_000)]
    after = memwatch.process(objects=True)
    assert after["py_blocks"] - before["py_blocks"] >= 190_000
    assert after["rss_mib"] > 0
    assert after["gc_tracked"] is not None
    assert after["gc_tracked"] > 0
    assert before["gc_tracked"] is None  # the O(heap) count only on request
    assert after["malloc_used_mib"] is None or after["malloc_used_mib"] > 0
    del hold


def test_thread_cpu_when_a_thread_spins_then_it_is_charged_by_name() -> None:
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    t = threading.Thread(target=spin, name="spinner")
    t.start()
    try:
        stop.wait(0.3)
        cpu = memwatch.thread_cpu_s()
    finally:
        stop.set()
        t.join()
    assert cpu.get("spinner", 0.0) > 0.01
    assert "MainThread" in cpu


def test_duckdb_bytes_when_table_filled_then_grows(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    try:
        empty = memwatch.duckdb_bytes(con)
        con.execute("CREATE TABLE t AS SELECT range AS i, range::VARCHAR AS s FROM range(500000)")
        full = memwatch.duckdb_bytes(con)
        assert empty is not None
        assert full is not None
        assert full > empty
    finally:
        con.close()


def test_duckdb_tags_when_table_filled_then_base_table_reported(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    try:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(500000)")
        tags = memwatch.duckdb_tags(con)
        assert tags
        assert all(v > 0 for v in tags.values())
        assert sum(tags.values()) * 2**20 <= (memwatch.duckdb_bytes(con) or 0) + 2**20
    finally:
        con.close()


def test_trace_growth_when_not_tracing_then_none() -> None:
    import tracemalloc

    assert not tracemalloc.is_tracing()
    assert memwatch.trace_growth(5) is None


def test_trace_growth_when_tracing_then_the_growing_line_is_named() -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        assert memwatch.trace_growth(5) == []  # the first call sets the mark
        hold = [str(i) * 3 for i in range(50_000)]  # this line should lead the growth
        top = memwatch.trace_growth(5)
        assert top
        assert "test_memwatch.py" in top[0]
        assert hold
    finally:
        tracemalloc.stop()
        memwatch._last_trace = None
