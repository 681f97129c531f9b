"""bench_rehydrate restarts the real engine on a seeded DB against the loopback venue (small)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_rehydrate_when_small_then_every_open_order_matched_and_json_line() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "scripts/bench_rehydrate.py",
            "--orders",
            "2000",
            "--open",
            "50",
            "--runs",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout
    r = json.loads(lines[0])
    for key in (
        "historical_orders",
        "historical_fills",
        "open_orders",
        "start_to_ready_s_p50",
        "start_to_ready_s_max",
        "reconcile_ms_p50",
        "runs",
        "phases_ms_p50",
    ):
        assert key in r, key
    assert r["historical_orders"] == 2000
    assert r["historical_fills"] == 2000
    assert r["open_orders"] == 50
    assert r["venue_open_orders"] == 50
    assert r["runs"] == 1
    assert r["recon_ok"], r["recon_line"]
    assert " ok in " in r["recon_line"], r["recon_line"]
    assert r["mismatches"]["missing_in_db"] == 0
    assert r["mismatches"]["missing_in_broker"] == 0
    assert set(r["mismatches"].values()) == {0}, r["mismatches"]
    assert 0 < r["start_to_ready_s_p50"] <= r["start_to_ready_s_max"] < 60
    assert r["reconcile_ms_p50"] > 0
    assert r["exit_codes"] == [0]
    ph = r["phases_ms_p50"]
    assert ph["first_log_ms"] <= ph["recon_end_ms"] <= ph["ready_logged_ms"]
