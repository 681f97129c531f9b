"""The crash harness end to end: SIGKILLs at every crash point, restarts, books still agree."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.acceptance.helpers import ROOT, clean_env


def test_crash_harness_when_killed_at_each_crash_point_then_no_duplicate_lost_fill_or_mismatch():
    # trial i uses crash point i (cycle), each on its first pass for the order points, with a
    # clean reconciling run + check after trials 1 and 3
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "crash_harness.py"),
            "--trials",
            "4",
            "--json",
            "--cycle-points",
            "--max-n",
            "1",
            "--point-wait",
            "15",
            "--check-every",
            "2",
            "--seed",
            "5",
            "--slow-fill-duration",
            "12",
        ],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = res.stdout.strip().splitlines()
    assert lines, res.stderr[-2000:]
    out = json.loads(lines[-1])
    keys = (
        "duplicates",
        "lost_fills",
        "position_mismatches",
        "stuck",
        "audit_ok",
        "venue_orders",
        "blocked_after_recovery",
        "halts",
        "start_failures",
        "clean_failures",
        "rate_limit",
    )
    brief = json.dumps({k: out.get(k) for k in keys})
    assert res.returncode == 0, brief + "\n" + res.stderr[-3000:]
    assert out["trials"] == 4
    assert (out["duplicates"], out["lost_fills"], out["position_mismatches"]) == (0, 0, 0), out
    assert out["audit_ok"] is True
    assert out["ok"] is True
    assert out["checks"] == 2
    assert out["venue_orders"] > 0
    assert {"after_intent_durable", "after_venue_accept"} <= set(out["points_hit"]), out["kills"]
    assert not out["start_failures"]
    assert not out["clean_failures"]
    assert out["blocked_after_recovery"] == [], out["halts"]  # recovered, not halted / fail-closed
    # a 429 then a 418 ban while trading; nothing leaves on a stale decision
    rl = out["rate_limit"]
    assert out["stale_sends"] == 0, rl
    assert rl["ban_shown"], rl
    assert out["max_order_notional_over_cap"] == 0, rl
    # slow fills on paper; every cap binds and none is ever exceeded
    sf = out["slow_fill"]
    assert sf["exit"] == 0, sf
    assert sf["fills"] > 0, sf
    assert sf["max_order_notional_over_cap"] == 0, sf
    assert sf["max_position_over_cap"] == 0, sf
    assert out["max_order_notional_over_cap"] == 0, out
    assert out["max_position_over_cap"] == 0, out
