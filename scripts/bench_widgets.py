#!/usr/bin/env python3
"""Benchmark: what one UI refresh costs the cockpit's main thread while orders roll.

Every millisecond the UI thread spends updating and drawing is GIL time the engine thread waits
for (the tick→submit tail of ``bench_cockpit.py``). This isolates that cost: the real
``CockpitApp`` (headless, ``App.run_test``) fed by a host whose snapshot changes like PERFORMANCE.md
workload 2 at 40 orders/s and 4 Hz — each refresh ~10 new orders, fills and audit rows on top of
bounded lists (50 orders, 50 fills, 100 audit rows), gate ages ticking, budgets counting.

For each tab shown (the overview an operator watches, and the trading tab with the rolling
tables) it prints one JSON line with the main thread's CPU time (``time.thread_time``, so waits are not
counted): the bridge's update pass (``CockpitApp.pull``: every panel's ``update_snapshot``) p50 / p99 ms,
the frame that follows (Textual's message processing and compositor) p50 / p99 ms, and the
whole per refresh.

    .venv/bin/python scripts/bench_widgets.py --refreshes 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cockpit.testkit import FixedHost, snap  # noqa: E402
from engine.snapshot import (  # noqa: E402
    AuditView,
    BudgetView,
    EngineSnapshot,
    FeedView,
    FillView,
    GateView,
    ModelView,
    OrderView,
    ReconView,
    SymbolView,
)

T0 = 1_700_000_000_000_000
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT")


def snapshot(i: int, per_refresh: int) -> EngineSnapshot:
    """Refresh ``i``: ``per_refresh`` new orders (the newest still open), fills and audit rows."""
    now = T0 + i * 250_000
    top = (i + 1) * per_refresh
    ids = range(max(0, top - 50), top)
    orders = tuple(
        OrderView(
            client_order_id=f"ck-1-{k}",
            symbol=SYMBOLS[k % 4],
            side="buy",
            qty=0.01,
            filled=0.0 if k >= top - 4 else 0.01,
            status="submitted" if k >= top - 4 else "filled",
            reason="",
            updated_us=now - (top - k) * 25_000,
        )
        for k in ids
    )
    fills = tuple(
        FillView(
            trade_id=f"t{k}",
            client_order_id=f"ck-1-{k}",
            symbol=SYMBOLS[k % 4],
            side="buy",
            qty=0.01,
            price=100.0 + k % 7,
            slippage_bps=0.4,
            ts_us=now - (top - k) * 25_000,
        )
        for k in ids
        if k < top - 4
    )
    audit = tuple(
        AuditView(seq=k, ts_us=now - (top - k) * 25_000, actor="engine", kind="order")
        for k in range(max(0, top - 100), top)
    )
    gates = tuple(
        GateView(name=n, active=n == "stale_data", reason="", since_us=T0, denials=0)
        for n in ("kill_switch", "safe_mode", "stale_data", "budget", "skew")
    )
    budgets = (
        BudgetView(scope="account", key="all", used=top, limit=1_000_000),
        *(BudgetView(scope="symbol", key=s, used=top // 4, limit=250_000) for s in SYMBOLS),
    )
    symbols = tuple(
        SymbolView(
            symbol=s,
            bid=100.0 + i % 5,
            ask=100.5 + i % 5,
            position=0.5,
            avg_price=99.0,
            realized=1.5,
            unrealized=0.25 * (i % 9),
            staleness_ms=40.0,
            error_rate=0.0,
            p95_place_ms=2.0,
            slippage_p95_bps=0.4,
            fill_ratio=0.9,
        )
        for s in SYMBOLS
    )
    history = tuple(float(k % 13) for k in range(i, i + 60))
    # the shared fixed snapshot (cockpit.testkit), with this frame's moving parts
    return snap(
        seq=i + 1,
        ts_us=now,
        budget_left=1_000_000 - top,
        skew_history=history,
        pnl_history=history,
        latency_history_ms=history,
        gates=gates,
        budgets=budgets,
        feeds=(
            FeedView(name="sim", connected=True, uptime_s=i / 4, reconnects=0, staleness_ms=40.0),
        ),
        symbols=symbols,
        price_history=tuple((s, history) for s in SYMBOLS),
        orders=orders,
        fills=fills,
        model=ModelView(
            champion="m-champ",
            challenger="m-chall",
            pinned=None,
            canary_share=0.1,
            psi=(("m-champ", 0.05),),
            canary_trades=top // 10,
            total_trades=top,
        ),
        recon=ReconView(ts_us=T0, source="periodic", duration_ms=42.0, ok=True, mismatches=()),
        alerts=(),
        audit=audit,
        ticks=i * 500,
        open_orders=4,
    )


def ms(values: list[float], q: float) -> float:
    if len(values) < 2:
        return round(values[0] * 1e3, 3) if values else 0.0
    return round(statistics.quantiles(values, n=100)[int(q) - 1] * 1e3, 3)


async def run_tab(tab: str, refreshes: int, per_refresh: int, size: tuple[int, int]) -> dict:
    from textual.widgets import TabbedContent

    from cockpit.app import CockpitApp

    host = (
        FixedHost()
    )  # the fixed host (cockpit.testkit); the bench replaces its snapshot each refresh
    snaps = [snapshot(i, per_refresh) for i in range(refreshes + 21)]  # first + 20 warm-up
    host.snapshot = snaps[0]
    # the app's own 4 Hz timer is pushed out of the way: the benchmark calls the bridge itself
    app = CockpitApp(host, refresh_hz=1e-4)
    update: list[float] = []
    frame: list[float] = []
    async with app.run_test(size=size) as pilot:
        app.query_one(TabbedContent).active = tab
        await pilot.pause()
        cpu0 = 0.0
        for i, snap in enumerate(snaps[1:]):
            if i == 20:  # warm-up done: widths settled, caches filled
                update.clear()
                frame.clear()
                cpu0 = time.process_time()
            host.snapshot = snap
            t0 = time.thread_time()
            app.pull()
            t1 = time.thread_time()
            await pilot.pause()
            t2 = time.thread_time()
            update.append(t1 - t0)
            frame.append(t2 - t1)
        cpu = time.process_time() - cpu0
    return {
        "tab": tab,
        "size": f"{size[0]}x{size[1]}",
        "refreshes": len(update),
        "orders_per_refresh": per_refresh,
        "update_ms_p50": ms(update, 50),
        "update_ms_p99": ms(update, 99),
        "frame_ms_p50": ms(frame, 50),
        "frame_ms_p99": ms(frame, 99),
        "cpu_ms_per_refresh": round(cpu / len(update) * 1e3, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refreshes", type=int, default=400, help="measured refreshes per tab")
    ap.add_argument("--per-refresh", type=int, default=10, help="new orders per refresh")
    ap.add_argument("--tabs", default="overview,trading,log-tab")
    ap.add_argument("--size", default="120x40")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    for tab in a.tabs.split(","):
        r = asyncio.run(run_tab(tab, a.refreshes, a.per_refresh, (w, h)))
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
