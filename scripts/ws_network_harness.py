#!/usr/bin/env python3
"""Network fault matrix: real headless testnet runs against the loopback venue, with NET_SIM_*.

For each fault (latency, jitter, market-frame drops, periodic disconnects, reordering, all at once)
it runs ``cockpit --headless --profile <testnet-like profile>`` for a while, with SAFE_MODE=0 and
the fault injected by the venue simulator on its side of the wire, then checks the final state
against the venue's own truth (the simulator restarted on the same state dir):

- every venue trade of ours is in the DB exactly once, with the same quantity and price;
- DB positions equal the signed sum of DB fills;
- no client order id appears twice at the venue; no order is left submitted/unknown;
- the run dialled loopback only.

Prints one line per fault (reconnects, worst staleness, orders blocked, correct yes/no) and a JSON
summary; exit 0 when every fault ends correct.  ``--quick``: shorter runs (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from engine.core.units import to_e8  # noqa: E402
from venuesim import VenueSim  # noqa: E402

PROFILE = """
kind = "testnet"
venue = "ccxt"
feed = "exchange"
offline = true
[risk]
safe_mode = false
risk_per_trade_pct = 2.0
dupe_intent_window_ms = 0.0
max_data_staleness_ms = 1000.0
# these runs test crash safety / faults on a loaded CI box: the SLO gate (p95 > 300 ms,
# stale acks) would stop their orders first
max_p95_place_ms = 600000.0
slo_stale_ms = 3600000.0
[models]
prob_min = 0.5
min_expected_return = 0.0
decision_interval_ms = 250.0
risk_max = 5.0
[sim]
ticks_per_second = 20.0
[storage]
flush_interval_ms = 50.0
[metrics]
interval_s = 1.0
[feeds]
catch_up_interval_s = 3.0
reconnect_base_ms = 50.0
reconnect_max_ms = 1000.0
unknown_grace_s = 2.0
"""

FAULTS: dict[str, dict[str, str]] = {
    "baseline": {},
    "latency": {"NET_SIM_LATENCY_MS": "60", "NET_SIM_JITTER_MS": "30"},
    "drop": {"NET_SIM_DROP_RATE": "0.05"},
    "disconnect": {"NET_SIM_DISCONNECT_INTERVAL_S": "2.5"},
    "reorder": {"NET_SIM_REORDER_RATE": "0.1"},
    "combined": {
        "NET_SIM_LATENCY_MS": "40",
        "NET_SIM_JITTER_MS": "20",
        "NET_SIM_DROP_RATE": "0.03",
        "NET_SIM_DISCONNECT_INTERVAL_S": "3",
        "NET_SIM_REORDER_RATE": "0.05",
    },
}


def _metrics(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _sum(m: dict[str, float], prefix: str, needle: str = "") -> float:
    return sum(v for k, v in m.items() if k.startswith(prefix) and needle in k)


async def _venue_truth(state_dir: Path) -> dict[str, Any]:
    sim = VenueSim(state_dir, ticks_per_second=1.0, max_lifetime_s=60.0)
    port = await sim.start(0)
    try:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/admin/state") as r:
            return dict(await r.json())
    finally:
        await sim.stop()


def run_fault(name: str, env_faults: dict[str, str], seconds: float, work: Path) -> dict[str, Any]:
    d = work / name
    prof = work / "harness.toml"
    prof.write_text(PROFILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NET_SIM_", "COCKPIT_"))}
    env.update(env_faults)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cockpit",
            "--headless",
            "--profile",
            str(prof),
            "--duration",
            str(seconds),
            "--data-dir",
            str(d),
            "--seed",
            "11",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    result: dict[str, Any] = {"fault": name, "exit": proc.returncode}
    if proc.returncode != 0:
        result.update(correct=False, error=proc.stderr.strip()[-500:])
        return result
    truth = asyncio.run(_venue_truth(d / "venue"))
    con = duckdb.connect(str(d / "cockpit.duckdb"), read_only=True)
    try:
        fills = {
            r[0]: (r[1], r[2])
            for r in con.execute("SELECT trade_id, qty_e8, price_e8 FROM fills").fetchall()
        }
        pos = {r[0]: r[1] for r in con.execute("SELECT symbol, qty_e8 FROM positions").fetchall()}
        signed = {
            r[0]: r[1]
            for r in con.execute(
                "SELECT symbol, sum(CASE side WHEN 'buy' THEN qty_e8 ELSE -qty_e8 END) FROM fills "
                "GROUP BY 1"
            ).fetchall()
        }
        ours = {r[0] for r in con.execute("SELECT client_order_id FROM orders").fetchall()}
        stuck = con.execute(
            "SELECT count(*) FROM orders WHERE status IN ('pending','submitted','unknown')"
        ).fetchone()[0]
    finally:
        con.close()
    venue_trades = {
        str(t["id"]): (to_e8(t["qty"]), to_e8(t["price"]))
        for t in truth["trades"]
        if t.get("clientOrderId") in ours
    }
    venue_cids = [o["clientOrderId"] for o in truth["orders"] if o.get("clientOrderId") in ours]
    m = _metrics(d / "metrics" / "metrics.prom")
    log = (d / "logs" / "engine.log").read_text()
    summary = next(
        (json.loads(x)["venue_summary"] for x in log.splitlines() if '"venue_summary"' in x), {}
    )
    hosts = set(summary.get("dialled_hosts", {}))
    checks = {
        "fills_match_venue": fills == venue_trades,
        "positions_equal_fills": {k: v for k, v in pos.items() if v}
        == {k: v for k, v in signed.items() if v},
        "no_duplicate_client_ids": len(venue_cids) == len(set(venue_cids)),
        "no_order_left_unknown": stuck == 0,
        "loopback_only": hosts <= {"127.0.0.1", "localhost", "::1"}
        and not summary.get("blocked_hosts"),
    }
    result.update(
        correct=all(checks.values()),
        checks=checks,
        orders=len(ours),
        fills=len(fills),
        reconnects=int(_sum(m, "ws_reconnects_total")),
        book_resyncs=int(_sum(m, "order_book_resyncs_total")),
        worst_staleness_s=round(
            max((v for k, v in m.items() if k.startswith("data_stale_worst_seconds")), default=0), 3
        ),
        orders_blocked=int(_sum(m, "orders_denied_total", 'gate="stale_data"')),
        worst_outage_s=summary.get("worst_outage_s"),
        p95_place_ms=summary.get("place_latency_ms_p95"),
    )
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (CI)")
    ap.add_argument("--seconds", type=float, help="seconds per fault (default 8 quick, 25 full)")
    ap.add_argument("--only", help="comma-separated fault names")
    args = ap.parse_args()
    seconds = args.seconds or (8.0 if args.quick else 25.0)
    names = args.only.split(",") if args.only else list(FAULTS)
    results = []
    with tempfile.TemporaryDirectory(prefix="wsharness-") as tmp:
        for name in names:
            r = run_fault(name, FAULTS[name], seconds, Path(tmp))
            results.append(r)
            print(
                f"{name:<11} reconnects={r.get('reconnects', '-'):<3} "
                f"worst_staleness_s={r.get('worst_staleness_s', '-'):<6} "
                f"orders_blocked={r.get('orders_blocked', '-'):<3} orders={r.get('orders', '-'):<3} "
                f"fills={r.get('fills', '-'):<3} correct={'yes' if r['correct'] else 'no'}"
                + ("" if r["correct"] else f"  {r.get('checks') or r.get('error')}"),
                flush=True,
            )
    ok = all(r["correct"] for r in results)
    print(json.dumps({"faults": len(results), "all_correct": ok, "results": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
