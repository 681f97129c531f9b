"""bench_replay runs the real workload end to end (small sizes) and reports consistent counts."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_replay_when_small_then_one_json_line_with_every_order_filled() -> None:
    out = subprocess.run(
        [sys.executable, "scripts/bench_replay.py", "--ticks", "20000", "--sat-ticks", "5000",
         "--runs", "1", "--intents", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert r["orders"] == 20000 // 100 and r["fills"] >= r["orders"] and r["denials"] == 0
    assert r["audit_rows"] >= 4 * r["orders"]  # decision, order, fill, final state
    for key in ("ticks_per_s", "orders_per_s", "peak_rss_mib", "order_path_us_p50",
                "order_path_us_p99", "durable_intent_us_p50", "durable_intent_us_p99",
                "saturation_orders_per_s"):  # fmt: skip
        assert r[key] > 0, key
