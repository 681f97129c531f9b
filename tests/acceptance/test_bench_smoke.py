"""The benchmark scripts run end to end at small sizes and report consistent figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.conftest import ROOT


def test_bench_replay_when_small_then_one_json_line_with_every_order_filled() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "scripts/bench_replay.py",
            "--ticks",
            "20000",
            "--sat-ticks",
            "5000",
            "--runs",
            "1",
            "--intents",
            "20",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert r["orders"] == 20000 // 100
    assert r["fills"] >= r["orders"]
    assert r["denials"] == 0
    assert r["audit_rows"] >= 4 * r["orders"]  # decision, order, fill, final state
    for key in (
        "ticks_per_s",
        "orders_per_s",
        "peak_rss_mib",
        "order_path_us_p50",
        "order_path_us_p99",
        "durable_intent_us_p50",
        "durable_intent_us_p99",
        "saturation_orders_per_s",
    ):
        assert r[key] > 0, key


def test_bench_store_when_small_then_heap_samples_and_commit_times(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "scripts/bench_store.py",
            "--orders",
            "800",
            "--sample-every",
            "200",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["orders"] == 800
    assert r["flushes"] == 200
    assert [s["orders"] for s in r["samples"]] == [200, 400, 600, 800]
    assert all(s["rss_mib"] > 0 for s in r["samples"])
    assert 0 < r["commit_ms_p50"] <= r["commit_ms_p99"]
    # every order's three states were written as versions; the view shows one filled row each
    con = duckdb.connect(str(tmp_path / "bench.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM orders_log").fetchone() == (
        3 * 800 - 12,
    )  # the last two flushes' orders are not filled yet
    assert con.execute("SELECT status, count(*) FROM orders GROUP BY 1 ORDER BY 1").fetchall() == [
        ("filled", 792),
        ("pending", 4),
        ("submitted", 4),
    ]
    con.close()


def test_bench_widgets_when_small_then_one_line_per_tab_with_costs() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "scripts/bench_widgets.py",
            "--refreshes",
            "30",
            "--tabs",
            "overview,trading",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert [r["tab"] for r in rows] == ["overview", "trading"]
    for r in rows:
        assert r["refreshes"] == 30
        assert r["size"] == "120x40"
        assert 0 < r["update_ms_p50"] <= r["update_ms_p99"]
        assert 0 < r["frame_ms_p50"] <= r["frame_ms_p99"]
        assert r["cpu_ms_per_refresh"] > 0


def test_bench_cockpit_when_short_then_latency_memory_windows_and_first_frame() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "scripts/bench_cockpit.py",
            "--duration",
            "12",
            "--warmup",
            "2",
            "--tps",
            "400",
            "--symbols",
            "4",
            "--variants",
            "paced",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    (r,) = json.loads(out.stdout.strip().splitlines()[-1])["results"]
    assert r["gc_policy"] == "paced"
    assert 0 < r["first_frame_s"] < 60
    assert r["orders_measured"] > 20  # 400 ticks/s, an order path every 50 ticks
    assert (
        0 < r["tick_to_submit_ms_p50"] <= r["tick_to_submit_ms_p99"] <= r["tick_to_submit_ms_max"]
    )
    assert r["rss_window_s"] == 6
    assert len(r["rss_mib_window_min"]) == 2
    assert all(
        lo <= hi for lo, hi in zip(r["rss_mib_window_min"], r["rss_mib_window_max"], strict=True)
    )
    assert r["mem"][0]["duckdb_tags"]
    assert r["mem"][-1]["gc_tracked"] > 0
    assert r["gc"]["gen0"]["count"] > 0  # the pacer ran young collections
