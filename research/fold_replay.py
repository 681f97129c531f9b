"""One walk-forward fold: train on the window before it, then replay the test candles through
the real engine on the simulated clock, once per candidate and cost.

Role: ``run_fold(task)`` is the unit of work a campaign fans out — to local processes or to a
Dask cluster — so it takes and returns plain data: the fold's candles travel inside the task (Arrow
IPC bytes), so a remote worker needs no shared disk and no access to the data dir.

The replay is the trading path, not a model of it: each candle becomes ``ticks_per_candle`` quotes
(open → high/low → close) fed to ``Engine.on_quote`` of a freshly booted paper engine (fees =
the cost, the half-spread crossed by market orders, latency 0, every gate on); at each close the
candidate decides with the live inference code (``candle_model``) and ``submit_target`` — the live
strategy's sizing — sends the order through gates → OMS → paper venue → fills → positions.

Invariants:
- No look-ahead: a decision at a candle's close sees candles up to that close; the models were
  fitted on rows whose labels end before the fold (the embargo is applied by the planner).
- Deterministic: the simulated clock, no latency jitter and a fixed fit give the same metrics for
  the same task, on any worker.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.config.loader import load_config
from engine.core.clock import SimClock
from engine.core.events import Decision
from engine.runtime.boot import boot
from engine.store.candles import INTERVAL_US
from engine.strategy.candle_model import LOOKBACK, CandleModel, CandleWindow
from engine.strategy.signal_models import ModelParams
from engine.strategy.strategies import submit_target
from research.candidates import build_candidate

FLUSH_ROWS = 8192
PREFIX = "campaign-fold-"  # + pid + "-": a scratch dir names the process that owns it
DEPTH_E8 = 1_000_000 * 100_000_000  # quoted size: deep enough that a market order never walks


@dataclass(frozen=True)
class FoldTask:
    fold: int
    interval: str
    candidates: tuple[str, ...]
    costs: tuple[float, ...]  # bps: the campaign's cost, then 0.0 (the zero-cost twin)
    train_ipc: bytes  # curated rows (features + labels) the models fit on
    candles_ipc: bytes  # the test fold's candles, preceded by LOOKBACK - 1 warm-up candles
    test_from_us: int
    test_to_us: int
    train_from_us: int
    train_to_us: int
    overrides: dict[str, Any] = field(default_factory=dict)  # thresholds from the profile
    ticks_per_candle: int = 4
    spread_bps: float = 1.0


def _frame(ipc: bytes) -> pl.DataFrame:
    return pl.read_ipc(ipc)


def to_ipc(frame: pl.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    frame.write_ipc(buf)
    return buf.getvalue()


def _first(row: tuple[Any, ...]) -> int:
    return int(row[0])


def quote_ticks(
    bars: list[tuple[Any, ...]], n: int, interval_us: int, half: float
) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """Per bar (open_us, symbol, open, high, low, close, ...): ``n`` bid and ask prices (e8) from
    the open to the close through the extremes (low first on an up candle), and the ``n`` time
    offsets (ns) shared by every bar — the last quote closes the candle 1 ms before the next."""
    pts = np.array([(o, lo, h, c) if c >= o else (o, h, lo, c) for _, _, o, h, lo, c, *_ in bars])
    if n >= 4:
        pos = np.linspace(0.0, 3.0, n)
        seg = np.minimum(pos.astype(int), 2)
        frac = pos - seg
        px = pts[:, seg] + (pts[:, seg + 1] - pts[:, seg]) * frac
    else:
        px = pts[:, [0, *range(4 - n + 1, 4)]] if n > 1 else pts[:, [3]]
    bid = np.rint(px * (1 - half) * 1e8).astype(np.int64)
    ask = np.maximum(bid, np.rint(px * (1 + half) * 1e8).astype(np.int64))
    step = interval_us * 1000 // n
    offsets = [k * step for k in range(n - 1)] + [interval_us * 1000 - 1_000_000]
    return bid.tolist(), ask.tolist(), offsets


def sweep_stale(root: str | None = None) -> list[str]:
    """Remove fold scratch dirs whose process is gone (a worker killed mid-fold leaves its
    throw-away engine DB behind, in memory when under /dev/shm); returns what was removed."""
    root = root or _scratch() or tempfile.gettempdir()
    gone = []
    for name in os.listdir(root):
        pid = name.removeprefix(PREFIX).partition("-")[0]
        if not name.startswith(PREFIX) or not pid.isdigit() or _alive(int(pid)):
            continue
        path = os.path.join(root, name)
        if os.path.isdir(path) and os.stat(path).st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _scratch() -> str | None:
    """Where a fold's throw-away engine keeps its DB: memory-backed ``/dev/shm`` when there is
    one (two workers' fsyncs would otherwise queue on one disk), else the temp dir."""
    shm = "/dev/shm"  # noqa: S108 (a private TemporaryDirectory is created inside it)
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


class _Replay:
    """One engine, one candidate, one cost: feeds candles and records the equity curve."""

    def __init__(self, task: FoldTask, cost_bps: float, symbols: tuple[str, ...], start_ns: int):
        self.task = task
        self.tmp = tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-", dir=_scratch())
        cfg = load_config(
            "paper",
            env={},
            overrides={
                **task.overrides,
                "symbols": list(symbols),
                "paper.taker_fee_bps": cost_bps,
                "paper.maker_fee_bps": cost_bps,
                "paper.latency_ms_mean": 0.0,
                "paper.latency_ms_jitter": 0.0,
                "live.readiness_required": [],
            },
        )
        self.booted = boot(cfg, Path(self.tmp.name) / "data", clock=SimClock(start_ns=start_ns),
                           strategy="none")  # fmt: skip
        self.e = self.booted.engine
        self.e.log_orders = False
        self.half = (task.spread_bps if cost_bps > 0 else 0.0) / 2e4
        self.risk_pct = cfg.risk.risk_per_trade_pct
        self.order_type = cfg.oms.order_type
        self.ticks = 0

    def quotes(self, symbol: str, bids: list[int], asks: list[int], ts: list[int]) -> None:
        on_quote = self.e.on_quote
        for bid, ask, t in zip(bids, asks, ts, strict=True):
            on_quote(symbol, bid, ask, DEPTH_E8, DEPTH_E8, t)
        self.ticks += len(ts)
        if self.e.recorder.batch.rows >= FLUSH_ROWS:
            self.e.flush()

    def act(self, d: Decision) -> None:
        e = self.e
        e.record_decision(d)
        if d.action != "NO_TRADE":
            submit_target(e, d, d.decision_id, self.risk_pct, self.order_type)

    def equity(self) -> tuple[float, bool]:
        p = self.e.portfolio
        eq = p.equity_e8(p.unrealized_e8(self.e.market.mid_e8)) / 1e8
        return eq, any(pos.qty_e8 for pos in p.positions.values())

    def close(self) -> dict[str, float]:
        e = self.e
        e.refresh()
        e.flush()
        self.booted.writer.wait_idle()
        orders = list(e.order_cache.orders.values())
        notional = sum(o.notional_filled_e16 for o in orders) / 1e16
        crossed = sum(abs(o.notional_filled_e16 - o.filled_qty_e8 * o.arrival_mid_e8)
                      for o in orders if o.arrival_mid_e8) / 1e16  # fmt: skip
        out = {
            "fees": e.portfolio.fees_e8 / 1e8, "crossed": crossed, "notional": notional,
            "trades": float(sum(len(o.trade_ids) for o in orders)),
            "denials": float(e.kpis.denials), "start": e.portfolio.start_equity_e8 / 1e8,
        }  # fmt: skip
        error = self.booted.writer.error
        self.booted.close("campaign fold done")
        self.tmp.cleanup()
        if error is not None:
            raise RuntimeError(f"campaign fold {self.task.fold}: DB writer failed: {error}")
        return out


def _replay(task: FoldTask, candles: pl.DataFrame, decide: Callable[..., Decision],
            cost_bps: float) -> dict[str, Any]:  # fmt: skip
    interval_us = INTERVAL_US[task.interval]
    symbols = tuple(sorted(candles["symbol"].unique().to_list()))
    test = candles.filter(pl.col("open_us") >= task.test_from_us)
    r = _Replay(task, cost_bps, symbols, int(test["open_us"].min()) * 1000 - 1)  # type: ignore[arg-type]
    windows = {s: CandleWindow() for s in symbols}
    curve: list[tuple[int, float]] = [(task.test_from_us, 0.0)]
    in_market: list[bool] = [False]
    cols = ("open_us", "symbol", "open", "high", "low", "close", "volume")
    rows = candles.sort("open_us", "symbol").select(cols).rows()
    live_rows = [row for row in rows if row[0] >= task.test_from_us]
    bids, asks, offsets = quote_ticks(live_rows, task.ticks_per_candle, interval_us, r.half)
    i = 0
    for open_us, group in groupby(rows, _first):
        bars = [row[1:] for row in group]  # (symbol, open, high, low, close, volume)
        live = open_us >= task.test_from_us
        if live:
            base = open_us * 1000
            ts = [base + off for off in offsets]
            for bar in bars:
                r.quotes(bar[0], bids[i], asks[i], ts)
                i += 1
        for sym, _o, h, lo, c, v in bars:
            windows[sym].push(h, lo, c, v)
            if live:
                did = f"f{task.fold}-{sym}-{open_us}"
                r.act(decide(sym, windows[sym].features(), open_us + interval_us, did))
        if live:
            eq, pos = r.equity()
            curve.append((open_us + interval_us, eq))
            in_market.append(pos)
    costs = r.close()
    curve[0] = (curve[0][0], costs["start"])
    return {"curve": curve, "in_market": in_market, "ticks": r.ticks, **costs}


def run_fold(task: FoldTask) -> dict[str, Any]:
    """Train (when a candidate needs it) and replay every candidate at every cost."""
    sweep_stale()
    engine_log = logging.getLogger("engine")
    level = engine_log.level
    engine_log.setLevel(logging.ERROR)  # gate flips are the replay working, not news
    try:
        return _run_fold(task)
    finally:
        engine_log.setLevel(level)


def _run_fold(task: FoldTask) -> dict[str, Any]:
    train = _frame(task.train_ipc)
    candles = _frame(task.candles_ipc)
    params = ModelParams(
        float(task.overrides.get("models.prob_min", 0.55)),
        float(task.overrides.get("models.min_expected_return", 0.0002)),
        0.0,
    )
    out: dict[str, Any] = {"fold": task.fold, "runs": []}
    for name in task.candidates:
        model: CandleModel | None
        decide, model = build_candidate(name, task.interval, train, params, task.fold)
        for cost in task.costs:
            res = _replay(task, candles, decide, cost)
            res.update(candidate=name, cost_bps=cost,
                       model_ids=model.name if model is not None else name)  # fmt: skip
            out["runs"].append(res)
    return out


def candles_for_fold(frame: pl.DataFrame, test_from_us: int, test_to_us: int,
                     interval_us: int) -> pl.DataFrame:  # fmt: skip
    """The test fold's candles plus the LOOKBACK - 1 before it (the features' warm-up)."""
    warm_from = test_from_us - (LOOKBACK - 1) * interval_us
    cols = ["symbol", "open_us", "open", "high", "low", "close", "volume"]
    return frame.filter((pl.col("open_us") >= warm_from) & (pl.col("open_us") < test_to_us)).select(
        cols
    )
