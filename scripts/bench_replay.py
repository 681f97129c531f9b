#!/usr/bin/env python3
"""Benchmark: the replay workload (1M ticks) through the project's real engine.

1,000,000 seeded synthetic BTC/USDT quote ticks (1 ms apart, built before timing) on the simulated
clock; the paper venue; a market order of 0.01 BTC every 100 ticks alternating buy/sell; every
risk gate on; outbox, audit chain and DuckDB persistence in a temp dir (the single writer thread,
batched); metrics refreshed every simulated second. Plus the saturation case (100k ticks, an order
every 10 ticks) and the durable-intent path used for outside venues (append + fdatasync).

Prints one JSON line. Each figure is the median of --runs runs (default 3).
Peer (NautilusTrader 1.221 on this machine kind): 80k ticks/s, 804 orders/s; saturation 1,920
orders/s; peak RSS 617 MiB.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config.loader import load_config
from engine.core.clock import SimClock
from engine.core.units import to_e8
from engine.runtime.boot import boot
from engine.sim.marketsim import MarketSimulator
from engine.store.intent_journal import IntentJournal
from engine.strategy.strategies import AlternatingStrategy

SYMBOL = "BTC/USDT"
FLUSH_ROWS = 8192  # hand a batch to the writer once this many rows accumulated
REFRESH_TICKS = 1000  # engine.refresh (gauges, standing gates) every simulated second


class TimedStrategy(AlternatingStrategy):
    """The bench model, timing its whole order path (decision → gates → OMS → venue → fill)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.order_ns: list[int] = []

    def on_quote(self, symbol: str, bid_e8: int, ask_e8: int, ts_ns: int) -> None:
        if (self.n + 1) % self.every:
            self.n += 1
            return
        t0 = time.perf_counter_ns()
        super().on_quote(symbol, bid_e8, ask_e8, ts_ns)
        self.order_ns.append(time.perf_counter_ns() - t0)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))] if s else 0.0


def run_case(cols: dict, n: int, every: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            "paper",
            env={},
            overrides={
                "symbols": [SYMBOL],
                "paper.starting_balance_usd": 10_000_000.0,
                "paper.latency_ms_mean": 0.0,
                "risk.budget_orders_per_day_strategy": 10_000_000,
                "risk.budget_orders_per_day_symbol": 10_000_000,
                "risk.budget_orders_per_day_account": 10_000_000,
                "risk.max_trades_per_day": 10_000_000,
                # on, and tight: same side repeats every 2*every ticks (ms)
                "risk.dupe_intent_window_ms": every * 1.5,
                # readiness (recon / venue signals with TTLs) is evaluated but has no required
                # signal in a replay: no reconciler runs on a simulated day
                "live.readiness_required": [],
            },
        )
        clock = SimClock(start_ns=cols["ts_ns"][0] - 1_000_000)
        booted = boot(cfg, Path(tmp) / "data", clock=clock, strategy="none")
        e = booted.engine
        e.log_orders = False
        strat = TimedStrategy(e, SYMBOL, every, to_e8("0.01"))
        e.strategy = strat
        bid, ask, bsz, asz, ts = (
            cols[k] for k in ("bid_e8", "ask_e8", "bid_size_e8", "ask_size_e8", "ts_ns")
        )
        on_quote = e.on_quote
        t0 = time.perf_counter()
        for i in range(n):
            on_quote(SYMBOL, bid[i], ask[i], bsz[i], asz[i], ts[i])
            if e.recorder.batch.rows >= FLUSH_ROWS:
                e.flush()
            if not i % REFRESH_TICKS:
                e.refresh()
        e.refresh()
        e.flush()
        booted.writer.wait_idle()
        wall = time.perf_counter() - t0
        orders = len(e.order_cache.orders)
        fills = sum(len(o.trade_ids) for o in e.order_cache.orders.values())
        denials = e.kpis.denials
        audit_rows = e.recorder.chain.last_seq
        commit_s = booted.writer.commit_seconds
        error = booted.writer.error
        booted.close("bench")
        if error is not None:
            raise SystemExit(f"bench: DB writer failed: {error}")
        return {
            "wall_s": wall,
            "ticks_per_s": n / wall,
            "orders_per_s": orders / wall,
            "orders": orders,
            "fills": fills,
            "denials": denials,
            "audit_rows": audit_rows,
            "db_commit_s": commit_s,
            "order_path_us_p50": pct(strat.order_ns, 0.50) / 1000,
            "order_path_us_p99": pct(strat.order_ns, 0.99) / 1000,
        }


def durable_intents(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        j = IntentJournal(Path(tmp) / "journal" / "intents.bin")
        lat = []
        for i in range(n):
            rec = (f"ck-1-{i}.0", f"ck-1-{i}", SYMBOL, "buy", "market", 1_000_000, 0, i)
            t0 = time.perf_counter_ns()
            j.append_durable(rec)
            lat.append(time.perf_counter_ns() - t0)
        j.close()
    return {
        "durable_intent_us_p50": pct(lat, 0.5) / 1000,
        "durable_intent_us_p99": pct(lat, 0.99) / 1000,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--sat-ticks", type=int, default=100_000)
    ap.add_argument("--sat-every", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--intents", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # as the peer: logging at ERROR

    sim = MarketSimulator((SYMBOL,), seed=args.seed)
    cols = sim.quote_columns(SYMBOL, max(args.ticks, args.sat_ticks), dt_ns=1_000_000)

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    main_runs = [run_case(cols, args.ticks, args.every) for _ in range(args.runs)]
    sat_runs = [run_case(cols, args.sat_ticks, args.sat_every) for _ in range(args.runs)]
    dur = [durable_intents(args.intents) for _ in range(args.runs)]
    out = {
        "ticks": args.ticks,
        "runs": args.runs,
        "ticks_per_s": round(median(main_runs, "ticks_per_s")),
        "orders_per_s": round(median(main_runs, "orders_per_s")),
        "orders": main_runs[0]["orders"],
        "fills": main_runs[0]["fills"],
        "denials": main_runs[0]["denials"],
        "audit_rows": main_runs[0]["audit_rows"],
        "order_path_us_p50": round(median(main_runs, "order_path_us_p50"), 1),
        "order_path_us_p99": round(median(main_runs, "order_path_us_p99"), 1),
        "db_commit_s": round(median(main_runs, "db_commit_s"), 2),
        "saturation_ticks_per_s": round(median(sat_runs, "ticks_per_s")),
        "saturation_orders_per_s": round(median(sat_runs, "orders_per_s")),
        "saturation_order_path_us_p99": round(median(sat_runs, "order_path_us_p99"), 1),
        "durable_intent_us_p50": round(
            statistics.median(d["durable_intent_us_p50"] for d in dur), 1
        ),
        "durable_intent_us_p99": round(
            statistics.median(d["durable_intent_us_p99"] for d in dur), 1
        ),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peer": {
            "ticks_per_s": 80_000,
            "orders_per_s": 804,
            "saturation_orders_per_s": 1920,
            "peak_rss_mib": 617,
        },
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
