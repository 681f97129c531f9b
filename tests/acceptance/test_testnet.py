"""Whole-process testnet runs (offline: the cockpit starts its own loopback venue)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

from tests.acceptance.helpers import query, run
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import ws_network_harness as harness


def test_headless_testnet_with_netsim_faults_then_db_equals_venue(tmp_path: Path) -> None:
    r = harness.run_fault("combined", harness.FAULTS["combined"], 8.0, tmp_path)
    assert r["exit"] == 0, r
    assert r["checks"] == {k: True for k in r["checks"]}, r
    assert r["orders"] > 0
    assert r["fills"] >= r["orders"] - 1
    assert r["reconnects"] >= 1  # the disconnects really happened


def test_headless_testnet_when_safe_mode_default_then_no_order_and_exit0(tmp_path: Path) -> None:
    d = tmp_path / "d"
    res = run("--headless", "--profile", "testnet", "--duration", "4", "--data-dir", str(d))
    assert res.returncode == 0, res.stderr
    assert query(d, "SELECT count(*) FROM orders")[0][0] == 0
    assert query(d, "SELECT count(*) FROM decisions")[0][0] > 0
    denied = query(d, "SELECT DISTINCT gate FROM gate_events WHERE action='deny'")
    assert denied in ([], [("safe_mode",)])


def test_ntp_server_when_3s_off_then_skew_gate_blocks_orders(tmp_path: Path) -> None:
    from engine.venues.clocksync import SntpTestServer

    loop = asyncio.new_event_loop()
    server = SntpTestServer(offset_ms=3000.0)
    port = loop.run_until_complete(server.start(0))
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        d = tmp_path / "d"
        prof = tmp_path / "p.toml"
        prof.write_text(harness.PROFILE + "[clock]\nskew_check_interval_s = 0.5\n")
        res = run(
            "--headless",
            "--profile",
            str(prof),
            "--duration",
            "5",
            "--data-dir",
            str(d),
            NTP_SERVER=f"127.0.0.1:{port}",
        )
        assert res.returncode == 0, res.stderr
    finally:
        loop.call_soon_threadsafe(server.stop)
        loop.call_soon_threadsafe(loop.stop)
        t.join(timeout=5)
    assert server.requests >= 2
    denied = query(d, "SELECT count(*) FROM gate_events WHERE gate='clock_skew' AND action='deny'")
    assert denied[0][0] > 0
    sent_after = query(d, "SELECT count(*) FROM orders")[0][0]
    assert sent_after <= 3  # only what went out before the first SNTP answer, if anything
    prom = (d / "metrics" / "metrics.prom").read_text()
    skew = next(
        float(x.split()[-1]) for x in prom.splitlines() if x.startswith("time_skew_seconds ")
    )
    assert -3.3 < skew < -2.7


def test_ws_network_harness_when_quick_subset_then_exit0_and_reports(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "scripts/ws_network_harness.py",
            "--quick",
            "--seconds",
            "5",
            "--only",
            "baseline,disconnect",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("baseline")
    assert "correct=yes" in lines[0]
    assert lines[1].startswith("disconnect")
    assert "correct=yes" in lines[1]
    summary = json.loads(lines[-1])
    assert summary["all_correct"]
    assert summary["faults"] == 2
