#!/usr/bin/env python3
"""Benchmark: walk-forward campaign replay through the real engine, and fold fan-out.

1. Replay: 1,000,000 quote ticks (10,000 seeded synthetic 15m candles of BTC/USDT, 100 quotes
   each) through a campaign fold's engine path — paper engine on the simulated clock, every
   gate on, DuckDB persistence in a temp dir — with the ``momentum`` candidate deciding at every
   candle close (an order whenever its target changes, at most one per 100 ticks). Timed: the
   replay only (candles are built before).
2. Fan-out: a 4-fold campaign (1h candles, 2 symbols, ml + momentum, cost and zero-cost twin, 100
   quotes per candle) on 1 then 2 local worker processes; parallel efficiency =
   (time with 1 worker / time with 2) / 2, each the median of --runs campaigns. Workers are started
   and warmed (imports) before the timing, as a long-lived pool or Dask cluster would be.

Prints one JSON line. Peer (PERFORMANCE.md): NautilusTrader's BacktestEngine, 80k ticks/s with an
order every 100 ticks; goal >= 3x (240k ticks/s) and >= 80 % parallel efficiency.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import multiprocessing
import random
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.store.candles import INTERVAL_US
from engine.strategy.curate import features
from engine.strategy.signal_models import ModelParams
from research.campaign import CampaignSpec, plan
from research.candidates import build_candidate
from research.fold_replay import FoldTask, _replay, run_fold, to_ipc

T0 = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000
THRESHOLDS = {"models.prob_min": 0.55, "models.min_expected_return": 0.0}


def candles(symbols: tuple[str, ...], interval: str, n: int, seed: int) -> pl.DataFrame:
    step = INTERVAL_US[interval]
    rows = []
    for k, sym in enumerate(symbols):
        rnd = random.Random(seed + k)
        c = 60_000.0 / (1 + 15 * k)
        for i in range(n):
            o = c
            c = o * math.exp(rnd.gauss(0.0, 0.003) + 0.001 * math.sin(i / 40))
            rows.append((sym, T0 + i * step, o, max(o, c) * 1.001, min(o, c) * 0.999, c,
                         rnd.uniform(5, 15)))  # fmt: skip
    return pl.DataFrame(rows, orient="row",
                        schema=["symbol", "open_us", "open", "high", "low", "close", "volume"])  # fmt: skip


def replay_case(ticks: int, per_candle: int) -> dict[str, float]:
    n = ticks // per_candle
    frame = candles(("BTC/USDT",), "15m", n + 24, seed=42)
    start = T0 + 24 * INTERVAL_US["15m"]
    task = FoldTask(
        fold=0, interval="15m", candidates=("momentum",), costs=(5.0,), train_ipc=b"",
        candles_ipc=to_ipc(frame), test_from_us=start, test_to_us=T0 + (n + 24) * 900_000_000,
        train_from_us=0, train_to_us=0, overrides=THRESHOLDS, ticks_per_candle=per_candle,
    )  # fmt: skip
    decide, _ = build_candidate("momentum", "15m", frame.head(0), ModelParams(0.55, 0.0, 0.0), 0)
    t = time.perf_counter()
    res = _replay(task, frame, decide, 5.0)
    wall = time.perf_counter() - t
    return {"wall_s": wall, "ticks": res["ticks"], "ticks_per_s": res["ticks"] / wall,
            "orders_filled": res["trades"], "denials": res["denials"]}  # fmt: skip


def _warm(_: int) -> int:
    return 0


def fanout_case(per_candle: int, runs: int) -> dict[str, float]:
    frame = candles(("BTC/USDT", "ETH/USDT"), "1h", 24 * 150, seed=7)
    table = features(frame)
    spec = CampaignSpec("1h", "2026-03-01", "2026-05-30", 30, 4, 5.0, ("ml", "momentum"),
                        ticks_per_candle=per_candle)  # fmt: skip
    tasks = plan(spec, table, THRESHOLDS)
    walls = {}
    outputs = {}
    ctx = multiprocessing.get_context("forkserver")
    for workers in (1, 2):
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            list(pool.map(_warm, range(workers * 4)))  # workers started and imports loaded
            list(pool.map(run_fold, tasks[:workers]))  # first-use costs (numpy, sklearn, duckdb)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                outputs[workers] = list(pool.map(run_fold, tasks))
                times.append(time.perf_counter() - t)
            walls[workers] = statistics.median(times)
    same = json.dumps(outputs[1], sort_keys=True) == json.dumps(outputs[2], sort_keys=True)
    ticks = sum(r["ticks"] for out in outputs[1] for r in out["runs"])
    return {"wall_1_s": walls[1], "wall_2_s": walls[2], "efficiency": walls[1] / walls[2] / 2,
            "folds_per_s_1": 4 / walls[1], "folds_per_s_2": 4 / walls[2],
            "fold_ticks": ticks, "identical": same}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--per-candle", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-fanout", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("engine").setLevel(logging.ERROR)
    reps = [replay_case(args.ticks, args.per_candle) for _ in range(args.runs)]
    out: dict[str, object] = {
        "ticks": reps[0]["ticks"],
        "runs": args.runs,
        "ticks_per_s": round(statistics.median(r["ticks_per_s"] for r in reps)),
        "orders_filled": reps[0]["orders_filled"],
        "denials": reps[0]["denials"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if not args.no_fanout:
        fan = fanout_case(args.per_candle, args.runs)
        out.update({k: round(v, 3) if isinstance(v, float) else v for k, v in fan.items()})
    out["peer"] = {"ticks_per_s": 80_000, "goal_ticks_per_s": 240_000, "goal_efficiency": 0.8}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
