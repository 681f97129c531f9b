"""Trained candle models: the one inference path shared by live trading, `cockpit signal` and
walk-forward campaigns (so a backtest and live cannot disagree).

Role:
- ``window_features`` computes the curated features (``curate.FEATURES``) of the newest candle
  from the last ``LOOKBACK`` candles in plain Python — the same definitions ``curate.features``
  writes with polars (a test checks them against each other);
- ``CandleWindow`` keeps those candles per symbol and ``CandleBuilder`` cuts live mid prices
  (and the market's cumulative trade volume) into candles of the model's interval;
- ``CandleModel`` is a trained *bundle* (``ml_<interval>_v<N>``: one trend, one return and one
  risk version, written by ``research.training``) and turns features into a ``Decision``;
- ``CandleStrategyModel`` adapts a bundle to the live ``Model`` protocol with its own candles
  and its own PSI monitor over candle features.

Invariants:
- Inference is pure: scaler, coefficients and thresholds come from the JSON files; no clock, no
  randomness, no I/O after loading. Features that are not finite give NO_TRADE, never a trade.
- NO_TRADE when ``prob < PROB_MIN``, ``expected_return < MIN_EXPECTED_RETURN`` or the predicted
  risk is above the bundle's ``risk_max`` (the training set's 90th percentile of forward
  volatility); the reason names the threshold (``strategies.why_no_trade``).
- A model file that is missing or malformed is a ``ModelFileError`` (one line, with the path).
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb

from engine.core.events import Action, Decision, Regime
from engine.store.candles import INTERVAL_US, align, market_db_path, open_market_db
from engine.strategy.drift import PsiMonitor
from engine.strategy.features import FeatureState
from engine.strategy.registry import ModelRegistry, Reference
from engine.strategy.signal_models import ModelParams

CANDLE_FEATURES = (
    "ret_1",
    "ret_4",
    "ret_24",
    "vol_24",
    "range_pct",
    "sma_ratio_24",
    "volume_z_24",
)
LOOKBACK = 25  # ret_24 needs 25 closes; vol_24 is the std of the last 24 one-candle returns
PSI_WINDOW_CANDLES = 500
PSI_MIN_CANDLES = 48


class ModelFileError(Exception):
    """A trained model file is missing or malformed (one line naming the file)."""


def _std(xs: list[float]) -> float:
    n = len(xs)
    m = sum(xs) / n
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))


def window_features(
    closes: list[float], highs: list[float], lows: list[float], volumes: list[float]
) -> tuple[float, ...] | None:
    """Features of the last candle (ordered as ``CANDLE_FEATURES``); None before ``LOOKBACK``."""
    if len(closes) < LOOKBACK:
        return None
    c = closes[-LOOKBACK:]
    if min(c) <= 0:
        return None
    logs = [math.log(x) for x in c]
    rets = [logs[i] - logs[i - 1] for i in range(1, LOOKBACK)]  # the last 24 one-candle returns
    last = c[-1]
    vols = volumes[-24:]
    vol_std = _std(vols)
    vol_z = (vols[-1] - sum(vols) / 24) / vol_std if vol_std > 0 else math.nan
    return (
        rets[-1],
        logs[-1] - logs[-5],
        logs[-1] - logs[0],
        _std(rets),
        (highs[-1] - lows[-1]) / last,
        last / (sum(c[-24:]) / 24) - 1.0,
        vol_z,
    )


class CandleWindow:
    """The last ``LOOKBACK`` closed candles of one symbol."""

    __slots__ = ("closes", "highs", "lows", "volumes")

    def __init__(self) -> None:
        self.closes: deque[float] = deque(maxlen=LOOKBACK)
        self.highs: deque[float] = deque(maxlen=LOOKBACK)
        self.lows: deque[float] = deque(maxlen=LOOKBACK)
        self.volumes: deque[float] = deque(maxlen=LOOKBACK)

    def push(self, high: float, low: float, close: float, volume: float) -> None:
        self.highs.append(high)
        self.lows.append(low)
        self.closes.append(close)
        self.volumes.append(volume)

    @property
    def n(self) -> int:
        return len(self.closes)

    def features(self) -> tuple[float, ...] | None:
        return window_features(
            list(self.closes), list(self.highs), list(self.lows), list(self.volumes)
        )


class CandleBuilder:
    """Cuts a stream of (mid, time, cumulative volume) into candles of ``interval_us``; ``update``
    returns the candle that just closed as (open_us, high, low, close, volume), else None. The
    first candle is dropped unless its first quote is on the boundary: it would be partial."""

    __slots__ = (
        "close", "cum0", "cum_last", "high", "interval_us", "keep_first", "low", "open_us",
        "partial",
    )  # fmt: skip

    def __init__(self, interval_us: int, keep_first: bool = False) -> None:
        self.interval_us = interval_us
        self.keep_first = keep_first
        self.open_us = -1
        self.high = self.low = self.close = 0.0
        self.cum0 = self.cum_last = 0.0
        self.partial = True

    def update(
        self, mid: float, ts_us: int, cum_volume: float
    ) -> tuple[int, float, float, float, float] | None:
        bucket = ts_us - ts_us % self.interval_us
        done = None
        if bucket != self.open_us:
            if self.open_us >= 0 and not self.partial:
                done = (self.open_us, self.high, self.low, self.close, self.cum_last - self.cum0)
            # the first candle seen started before us: partial, never emitted
            self.partial = self.open_us < 0 and ts_us != bucket and not self.keep_first
            if self.open_us < 0:
                self.cum_last = cum_volume
            self.open_us, self.high, self.low, self.cum0 = bucket, mid, mid, self.cum_last
        self.high = max(self.high, mid)
        self.low = min(self.low, mid)
        self.close = mid
        self.cum_last = cum_volume
        return done


@dataclass(frozen=True, slots=True)
class LinearModel:
    """``coef . (x - mean) / scale + intercept`` (the logistic of it for the trend model)."""

    model_id: str
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def score(self, x: tuple[float, ...]) -> float:
        s = self.intercept
        for v, m, sc, w in zip(x, self.mean, self.scale, self.coef, strict=True):
            s += w * (v - m) / (sc or 1.0)
        return s


def _read(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(
            f"model file not found: {path}; `cockpit model list` shows the trained versions"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"model file {path} is unreadable ({exc}); retrain it") from None
    return doc


def linear_from_doc(doc: dict[str, Any], path: Path | str) -> LinearModel:
    """The linear model of one trained version's JSON document (``path`` names it in errors)."""
    try:
        if list(doc["features"]) != list(CANDLE_FEATURES):
            raise ValueError(f"features {doc['features']} are not {list(CANDLE_FEATURES)}")
        m = LinearModel(
            str(doc["model_id"]),
            tuple(float(v) for v in doc["scaler"]["mean"]),
            tuple(float(v) for v in doc["scaler"]["scale"]),
            tuple(float(v) for v in doc["coef"]),
            float(doc["intercept"]),
        )
        if not len(m.mean) == len(m.scale) == len(m.coef) == len(CANDLE_FEATURES):
            raise ValueError("scaler and coefficients do not match the features")
        if not all(math.isfinite(v) for v in (*m.mean, *m.scale, *m.coef, m.intercept)):
            raise ValueError("a coefficient, mean or scale is not a finite number")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"model file {path} is malformed ({exc}); retrain it") from None
    return m


def candle_regime(x: tuple[float, ...], vol_high: float) -> tuple[Regime, str]:
    vol, sma = x[3], x[5]
    if vol > vol_high:
        return "HIGH_VOL", f"vol_24 {vol * 1e4:.1f}bps > {vol_high * 1e4:.1f}bps"
    if sma > vol:
        return "TREND_UP", f"close {sma * 1e4:+.1f}bps above its 24-candle mean (> 1 sigma)"
    if sma < -vol:
        return "TREND_DOWN", f"close {sma * 1e4:+.1f}bps below its 24-candle mean (> 1 sigma)"
    return "RANGE", f"close within 1 sigma of its 24-candle mean ({sma * 1e4:+.1f}bps)"


@dataclass(frozen=True, slots=True)
class CandleModel:
    """A trained bundle: P(up) from the trend model, the next-candle return from the return
    model, the forward volatility from the risk model."""

    model_id: str
    interval: str
    version: int
    trend: LinearModel
    ret: LinearModel
    risk: LinearModel
    risk_max: float
    reference: Reference

    @property
    def name(self) -> str:
        return f"trained {self.interval}: {self.trend.model_id}+{self.ret.model_id}+{self.risk.model_id}"

    def params(self, p: ModelParams) -> ModelParams:
        """The engine's thresholds with this bundle's risk limit (a volatility, not per-tick)."""
        return ModelParams(p.prob_min, p.min_expected_return, self.risk_max)

    def _scores(self, x: tuple[float, ...]) -> tuple[float, float, float]:
        return self.trend.score(x), self.ret.score(x), self.risk.score(x)

    def decide_features(
        self,
        symbol: str,
        x: tuple[float, ...] | None,
        ts_us: int,
        decision_id: str,
        params: ModelParams,
        warm: str = "",
    ) -> Decision:
        regime: Regime = "RANGE"
        direction: Action = "NO_TRADE"
        prob, expected, risk_ok = 0.5, 0.0, False
        ok = x is not None and all(math.isfinite(v) for v in x)
        scores = self._scores(x) if x is not None and ok else None
        if x is None or scores is None:
            reason = warm or "features missing (NaN)"
        elif not all(math.isfinite(v) for v in scores):
            reason = "model output not finite"  # never clamped: min/max read NaN as 50, a LONG
        else:
            regime, reason = candle_regime(
                x, self.reference.edges[3][-1] if self.reference.edges[3] else math.inf
            )
            p_up = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, scores[0]))))
            direction = "LONG" if p_up >= 0.5 else "SHORT"
            prob = min(max(p_up, 1.0 - p_up), 0.99)
            expected = max(0.0, scores[1] if direction == "LONG" else -scores[1])
            risk_ok = scores[2] <= self.risk_max
        action = direction
        if (
            direction == "NO_TRADE"
            or prob < params.prob_min
            or expected < params.min_expected_return
            or not risk_ok
        ):
            action = "NO_TRADE"
        return Decision(
            decision_id=decision_id,
            ts_us=ts_us,
            symbol=symbol,
            model_id=self.model_id,
            action=action,
            prob=prob,
            expected_return=expected,
            regime=regime,
            regime_reason=reason,
            risk_allowed=risk_ok,
            position_size=0.0 if action == "NO_TRADE" else min(1.0, (prob - 0.5) / 0.49),
        )


def load_bundle(models_dir: Path, model_id: str) -> CandleModel:
    """The bundle ``model_id`` and its three members from ``models_dir``."""
    path = models_dir / f"{model_id}.json"
    doc = _read(path)
    try:
        members = {k: str(doc["members"][k]) for k in ("trend", "return", "risk")}
        reference = Reference.from_json(json.dumps(doc["reference"]))
        interval, version, risk_max = (
            str(doc["interval"]),
            int(doc["version"]),
            float(doc["risk_max"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"model file {path} is malformed ({exc}); retrain it") from None
    if interval not in INTERVAL_US:
        raise ModelFileError(f"model file {path}: unknown interval {interval!r}")
    parts = {k: linear_from_doc(_read(models_dir / f"{v}.json"), models_dir / f"{v}.json")
             for k, v in members.items()}  # fmt: skip
    return CandleModel(
        model_id, interval, version, parts["trend"], parts["return"], parts["risk"], risk_max,
        reference,
    )  # fmt: skip


def is_trained_id(model_id: str) -> bool:
    """Trained bundles are named ``ml_<interval>_v<N>`` (built-ins never are)."""
    head, _, tail = model_id.rpartition("_v")
    return model_id.startswith("ml_") and head[3:] in INTERVAL_US and tail.isdigit()


class CandleStrategyModel:
    """A bundle behind the live ``Model`` protocol: it builds its own candles from the quotes it
    observes, decides on the last closed candle, and feeds its own PSI monitor per candle."""

    __slots__ = ("builders", "bundle", "model_id", "monitor", "name", "version", "windows")

    def __init__(self, bundle: CandleModel) -> None:
        self.bundle = bundle
        self.model_id, self.name, self.version = bundle.model_id, bundle.name, bundle.version
        self.builders: dict[str, CandleBuilder] = {}
        self.windows: dict[str, CandleWindow] = {}
        self.monitor = PsiMonitor(bundle.reference, PSI_WINDOW_CANDLES, PSI_MIN_CANDLES)

    def seed(self, symbol: str, candles: list[tuple[float, float, float, float]]) -> None:
        """Warm the window with stored candles (high, low, close, volume), oldest first."""
        w = self.windows.setdefault(symbol, CandleWindow())
        for h, lo, c, v in candles:
            w.push(h, lo, c, v)
        # the candle in progress follows the seeded ones: keep it, partial as it is (its close
        # is right; dropping it would leave a hole in the window)
        self.builders[symbol] = CandleBuilder(INTERVAL_US[self.bundle.interval], keep_first=True)

    def observe(self, symbol: str, mid: float, ts_us: int, cum_volume: float) -> None:
        b = self.builders.get(symbol)
        if b is None:
            b = self.builders[symbol] = CandleBuilder(INTERVAL_US[self.bundle.interval])
        done = b.update(mid, ts_us, cum_volume)
        if done is not None:
            w = self.windows.setdefault(symbol, CandleWindow())
            w.push(done[1], done[2], done[3], done[4])
            x = w.features()
            if x is not None and all(math.isfinite(v) for v in x):
                self.monitor.observe(x)

    def decide(
        self, symbol: str, f: FeatureState, ts_us: int, decision_id: str, params: ModelParams
    ) -> Decision:
        w = self.windows.get(symbol)
        n = w.n if w is not None else 0
        x = w.features() if w is not None else None
        warm = f"warming up {n}/{LOOKBACK} {self.bundle.interval} candles"
        return self.bundle.decide_features(
            symbol, x, ts_us, decision_id, self.bundle.params(params), warm
        )


class UnavailableModel:
    """A registered trained model whose files cannot be read: it decides NO_TRADE, naming why
    (fail closed — a damaged model never trades, and never stops the engine)."""

    __slots__ = ("model_id", "name", "reason", "version")

    def __init__(self, model_id: str, reason: str) -> None:
        self.model_id, self.name, self.version, self.reason = model_id, model_id, 0, reason

    def decide(
        self, symbol: str, f: FeatureState, ts_us: int, decision_id: str, params: ModelParams
    ) -> Decision:
        return Decision(
            decision_id=decision_id, ts_us=ts_us, symbol=symbol, model_id=self.model_id,
            action="NO_TRADE", prob=0.5, expected_return=0.0, regime="RANGE",
            regime_reason=self.reason, risk_allowed=False, position_size=0.0,
        )  # fmt: skip


def trained_ids(models_dir: Path) -> list[str]:
    """Ids of the trained bundles in ``models_dir``, oldest version first."""
    ids = [p.stem for p in models_dir.glob("ml_*.json") if is_trained_id(p.stem)]
    return sorted(ids, key=lambda i: (i.rpartition("_v")[0], int(i.rpartition("_v")[2])))


def build_trained(models_dir: Path, model_id: str) -> CandleStrategyModel | UnavailableModel:
    try:
        return CandleStrategyModel(load_bundle(models_dir, model_id))
    except ModelFileError as exc:
        return UnavailableModel(model_id, str(exc))


def register_trained(registry: ModelRegistry, models_dir: Path, now_us: int) -> list[str]:
    """Register every readable trained bundle in ``models_dir`` the registry does not know, as
    ``retired`` (ready to pin or to make challenger); returns the ids added."""
    registry.models_dir = models_dir
    known = {e.model_id for e in registry.entries()}
    added = []
    for model_id in trained_ids(models_dir):
        if model_id in known:
            continue
        model = build_trained(models_dir, model_id)
        if isinstance(model, CandleStrategyModel):
            registry.register(model, "retired", model.bundle.reference, now_us)
            added.append(model_id)
    return added


def seed_from_market(
    model: CandleStrategyModel, data_dir: Path, symbols: tuple[str, ...], now_us: int
) -> dict[str, int]:
    """Warm ``model`` with the last ``LOOKBACK`` closed candles per symbol from the market DB
    (``cockpit data backfill``), so a 1d model decides today, not in 25 days. Only a contiguous
    run ending at the newest closed candle is used (a hole or stale data would poison the
    features); a missing or busy DB seeds nothing. Returns candles seeded per symbol."""
    path = market_db_path(data_dir)
    interval = model.bundle.interval
    step = INTERVAL_US[interval]
    newest = align(now_us, interval) - step  # open time of the newest closed candle
    if not path.exists():
        return {}
    try:
        con = open_market_db(data_dir, read_only=True)
    except duckdb.Error:  # held by a running backfill: warm up from live quotes instead
        return {}
    seeded = {}
    try:
        for sym in symbols:
            rows = con.execute(
                "SELECT open_us, high_e8, low_e8, close_e8, volume_e8 FROM candles WHERE "
                "symbol = ? AND interval = ? AND open_us <= ? ORDER BY open_us DESC LIMIT ?",
                [sym, interval, newest, LOOKBACK],
            ).fetchall()[::-1]
            if len(rows) < LOOKBACK or rows[-1][0] != newest:
                continue
            if any(b[0] - a[0] != step for a, b in pairwise(rows)):
                continue
            model.seed(sym, [(h * 1e-8, lo * 1e-8, c * 1e-8, v * 1e-8) for _, h, lo, c, v in rows])
            seeded[sym] = len(rows)
    finally:
        con.close()
    return seeded
