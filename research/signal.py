"""The current decision and the feature drift from stored candles (seed 001 incident D,
"run-inference → signal.json", §7 drift): what ``cockpit signal`` and ``cockpit drift`` compute.

Role:
- ``load_candles`` reads the newest closed candles per symbol from the market DB
  (``<data-dir>/market/candles.duckdb``, read-only);
- ``choose_model`` picks the bundle: the one asked for, else the engine's pinned model, else its
  champion (read from the live DB's ``models`` table and ``engine_state['models']``) when that is
  a trained bundle, else the newest trained bundle of the interval — and says which and why;
- ``measure_drift`` is the PSI of the recent candle features against the bundle's training
  reference, fed row by row, in time order over all symbols, to the live gate's ``PsiMonitor``;
- ``signal_document`` decides for each symbol on its last ``LOOKBACK`` closed candles with the
  live inference path (``CandleModel.decide_features``) and the drift gate, and ``write_signal``
  keeps it as ``<data-dir>/signals/latest.json`` plus a dated copy.

Invariants:
- Pure computation on what is stored: the same candles, model and thresholds give the same
  document (the decision id is a hash of model id, symbol and candle open time); only
  ``generated_us`` and the dated file name depend on the clock, which the caller passes in.
- Nothing is written but the signal files: 0600, atomic, in a 0700 directory; a dated copy is
  never overwritten. The market DB and the live DB are opened read-only; a running engine or
  backfill that holds one is never waited for.
- No scikit-learn here: only the bundle's JSON is read (``engine.strategy.candle_model``).
- Errors are one line naming the remedy: ``SignalError`` (missing input, exit 2),
  ``MarketBusy`` (a backfill holds the market DB, exit 3); a damaged model file is the loader's
  ``ModelFileError``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from engine.core.events import Decision
from engine.core.fsutil import make_private_dir, write_private_atomic
from engine.store.candles import INTERVAL_US, market_db_path, open_market_db
from engine.strategy.candle_model import (
    CANDLE_FEATURES,
    LOOKBACK,
    PSI_MIN_CANDLES,
    PSI_WINDOW_CANDLES,
    CandleModel,
    is_trained_id,
    trained_ids,
    window_features,
)
from engine.strategy.drift import PsiMonitor
from engine.strategy.registry import Reference
from engine.strategy.signal_models import ModelParams
from engine.strategy.strategies import why_no_trade

TRAIN_HINT = (
    "run `cockpit model train trend` (and `cockpit model train return`, `cockpit model train "
    "risk`) after `cockpit data curate --interval {interval}`"
)


class SignalError(Exception):
    """Missing or bad input: one line naming the remedy."""


class MarketBusy(SignalError):
    """Another process (a running backfill) holds the market DB."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The engine's decision thresholds (``cfg.models``): PROB_MIN, MIN_EXPECTED_RETURN and the
    drift gate's PSI levels. RISK_MAX is the bundle's own (``CandleModel.params``)."""

    prob_min: float
    min_expected_return: float
    psi_block: float
    psi_halve: float


@dataclass(frozen=True, slots=True)
class Candles:
    """Closed candles of one symbol, oldest first."""

    open_us: list[int]
    highs: list[float]
    lows: list[float]
    closes: list[float]
    volumes: list[float]


@dataclass(frozen=True, slots=True)
class ModelChoice:
    model_id: str
    source: str  # requested | pinned | champion | newest
    note: str  # why this one, for the operator


@dataclass(frozen=True, slots=True)
class Drift:
    per_feature: dict[str, float]
    psi: float  # the worst feature's
    feature: str  # which one
    samples: int  # feature rows in the window


def load_candles(
    data_dir: Path, interval: str, per_symbol: int, now_us: int, symbol: str | None = None
) -> dict[str, Candles]:
    """The last ``per_symbol`` closed candles of each symbol (or of ``symbol``)."""
    backfill = f"run `cockpit data backfill --interval {interval}`"
    path = market_db_path(data_dir)
    if not path.exists():
        raise SignalError(f"no market data in {data_dir}: {backfill}")
    try:
        con = open_market_db(data_dir, read_only=True)
    except duckdb.IOException as exc:  # DuckDB lets one process hold the file
        first = (str(exc).splitlines() or [""])[0]
        raise MarketBusy(
            f"{path}: in use by another process, e.g. a running backfill ({first}); "
            "try again when it ends"
        ) from None
    sql = (
        "SELECT symbol, open_us, high_e8 / 1e8, low_e8 / 1e8, close_e8 / 1e8, volume_e8 / 1e8 "
        "FROM candles WHERE interval = ? AND open_us + ? <= ?"
        + (" AND symbol = ?" if symbol else "")
        + " QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY open_us DESC) <= ? "
        "ORDER BY symbol, open_us"
    )
    params: list[Any] = [interval, INTERVAL_US[interval], now_us]
    try:
        rows = con.execute(sql, [*params, *([symbol] if symbol else []), per_symbol]).fetchall()
    finally:
        con.close()
    out: dict[str, Candles] = {}
    for sym, ts, h, lo, c, v in rows:
        cs = out.setdefault(str(sym), Candles([], [], [], [], []))
        cs.open_us.append(int(ts))
        cs.highs.append(float(h))
        cs.lows.append(float(lo))
        cs.closes.append(float(c))
        cs.volumes.append(float(v))
    if not out:
        what = f"{symbol} {interval}" if symbol else interval
        raise SignalError(f"no closed {what} candles in {path}: {backfill}")
    return out


def feature_rows(candles: dict[str, Candles]) -> list[tuple[int, str, tuple[float, ...]]]:
    """(open time, symbol, features) of every candle with a full look-back and finite features,
    in time order across symbols — the order the live monitor sees closed candles in."""
    rows = []
    for sym, cs in candles.items():
        for i in range(LOOKBACK, len(cs.closes) + 1):
            x = window_features(cs.closes[:i], cs.highs[:i], cs.lows[:i], cs.volumes[:i])
            if x is not None and all(math.isfinite(v) for v in x):
                rows.append((cs.open_us[i - 1], sym, x))
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def measure_drift(
    reference: Reference, rows: list[tuple[int, str, tuple[float, ...]]], window: int
) -> Drift:
    """PSI per feature of the last ``window`` feature rows (``PsiMonitor``: 0.0 below its
    minimum of samples, ``min(PSI_MIN_CANDLES, window)``)."""
    mon = PsiMonitor(reference, window, min(PSI_MIN_CANDLES, window))
    for _, _, x in rows:
        mon.observe(x)
    per = mon.per_feature()
    worst = max(per, key=lambda k: per[k]) if per else ""
    return Drift(per, per.get(worst, 0.0), worst, mon.n)


def bundle_ids(folder: Path, interval: str) -> list[str]:
    """Trained bundles of ``interval`` in ``folder``, oldest version first."""
    return [m for m in trained_ids(folder) if m.startswith(f"ml_{interval}_v")]


def engine_registry(data_dir: Path) -> tuple[str | None, str | None, str]:
    """(pinned, champion, note): from the running engine (its control socket's ``status``), else
    as it last persisted them in its live DB; (None, None, why) when neither answers."""
    from engine.runtime.boot import db_path
    from engine.runtime.control import NotRunning, call

    try:  # a running engine holds its DB: ask it
        models = call(data_dir, "status", timeout_s=10.0).get("models") or {}
        return models.get("pinned") or None, models.get("champion") or None, ""
    except NotRunning:
        pass
    except (OSError, RuntimeError, ValueError) as exc:
        return None, None, f"the running engine did not answer ({exc})"
    db = db_path(data_dir)
    if not db.exists():
        return None, None, f"no engine DB in {data_dir}"
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return None, None, f"the engine's model registry is not readable (running? {first})"
    try:
        champ = con.execute("SELECT model_id FROM models WHERE role = 'champion'").fetchone()
        state = con.execute("SELECT value FROM engine_state WHERE key = 'models'").fetchone()
    except duckdb.Error as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return None, None, f"the engine's model registry is not readable ({first})"
    finally:
        con.close()
    pinned = json.loads(state[0]).get("pinned") if state else None
    return (str(pinned) if pinned else None), (str(champ[0]) if champ else None), ""


def models_dir(data_dir: Path) -> Path:
    """Where ``research.training`` saves versions (not imported: it loads scikit-learn)."""
    return data_dir / "models"


def choose_model(data_dir: Path, interval: str, requested: str | None = None) -> ModelChoice:
    """The bundle to decide with (see the module docstring); ``SignalError`` when none exists."""
    if requested:
        if not is_trained_id(requested):
            raise SignalError(
                f"--model {requested}: not a trained bundle (ml_<interval>_v<N>; "
                "`cockpit model list` shows them)"
            )
        return ModelChoice(requested, "requested", f"model {requested} (--model)")
    pinned, champion, why = engine_registry(data_dir)
    skipped: list[str] = []  # registry entries that are not trained bundles of this interval
    for role, mid in (("pinned", pinned), ("champion", champion)):
        if mid is None:
            continue
        if is_trained_id(mid) and mid.split("_")[1] == interval:
            also = f"; its {skipped[0]}" if skipped else ""
            return ModelChoice(mid, role, f"model {mid} (the engine's {role}{also})")
        skipped.append(f"{role} {mid} is not a trained {interval} bundle")
    why = why or "; ".join(f"the engine's {s}" for s in skipped) or "the engine has no champion"
    found = bundle_ids(models_dir(data_dir), interval)
    if not found:
        raise SignalError(
            f"no trend/return/risk model found for {interval} in {models_dir(data_dir)}: "
            + TRAIN_HINT.format(interval=interval)
        )
    return ModelChoice(found[-1], "newest", f"model {found[-1]}: newest trained bundle ({why})")


def decision_id(model_id: str, symbol: str, open_us: int) -> str:
    """Deterministic: the same model on the same candle is the same decision."""
    digest = hashlib.sha256(f"{model_id}|{symbol}|{open_us}".encode()).hexdigest()
    return f"sig-{digest[:16]}"


def iso(ts_us: int) -> str:
    return dt.datetime.fromtimestamp(ts_us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON has no NaN


def _gated(d: Decision, psi: float, th: Thresholds) -> tuple[Decision, str]:
    """The live drift gate on a decision: PSI > psi_block no trade, > psi_halve size halved."""
    d = msgspec.structs.replace(d, psi=psi)
    if d.action == "NO_TRADE":
        return d, ""
    if psi > th.psi_block:
        return msgspec.structs.replace(d, action="NO_TRADE", position_size=0.0), ""
    if psi > th.psi_halve:
        note = f"size halved: drift (PSI {psi:.2f} > {th.psi_halve:g})"
        return msgspec.structs.replace(d, position_size=d.position_size / 2), note
    return d, ""


def decide_symbol(
    model: CandleModel, symbol: str, cs: Candles, psi: float, th: Thresholds
) -> dict[str, Any]:
    """One symbol's signal on its last closed candle."""
    step = INTERVAL_US[model.interval]
    open_us = cs.open_us[-1]
    x = window_features(cs.closes, cs.highs, cs.lows, cs.volumes)
    warm = (
        f"only {len(cs.closes)}/{LOOKBACK} closed {model.interval} candles: run "
        f"`cockpit data backfill --interval {model.interval}`"
    )
    params = model.params(ModelParams(th.prob_min, th.min_expected_return, 0.0))
    did = decision_id(model.model_id, symbol, open_us)
    raw = model.decide_features(symbol, x, open_us + step, did, params, warm)
    d, note = _gated(raw, psi, th)
    return {
        "symbol": symbol,
        "decision": d.action,
        "prob": d.prob,
        "expected_return": d.expected_return,
        "regime": d.regime,
        "regime_reason": d.regime_reason,
        "risk_allowed": d.risk_allowed,
        "position_size": d.position_size,
        "decision_id": did,
        "model_id": d.model_id,
        "candle_open_us": open_us,
        "candle_open": iso(open_us),
        "features": dict.fromkeys(CANDLE_FEATURES)
        if x is None
        else {k: _finite(v) for k, v in zip(CANDLE_FEATURES, x, strict=True)},
        "psi": psi,
        "why": why_no_trade(d, params, th.psi_block),
        "note": note,
    }


def signal_document(
    model: CandleModel,
    choice: ModelChoice,
    candles: dict[str, Candles],
    th: Thresholds,
    now_us: int,
) -> dict[str, Any]:
    """Every symbol's signal, the drift they were gated with, and what produced them."""
    drift = measure_drift(model.reference, feature_rows(candles), PSI_WINDOW_CANDLES)
    signals = {sym: decide_symbol(model, sym, cs, drift.psi, th) for sym, cs in candles.items()}
    close_us = INTERVAL_US[model.interval]
    for sig in signals.values():  # how old the decision's candle is: stale data, stale signal
        sig["candle_age_s"] = (now_us - sig["candle_open_us"] - close_us) // 1_000_000
    return {
        "generated_us": now_us,
        "generated": iso(now_us),
        "interval": model.interval,
        "model_id": model.model_id,
        "model_source": choice.source,
        "model_note": choice.note,
        "thresholds": {
            "prob_min": th.prob_min,
            "min_expected_return": th.min_expected_return,
            "risk_max": model.risk_max,
            "psi_block": th.psi_block,
            "psi_halve": th.psi_halve,
        },
        "psi": drift.psi,
        "psi_feature": drift.feature,
        "psi_samples": drift.samples,
        "signals": signals,
    }


def signals_dir(data_dir: Path) -> Path:
    return data_dir / "signals"


def write_signal(data_dir: Path, doc: dict[str, Any], now_us: int) -> tuple[Path, Path]:
    """``signals/latest.json`` and ``signals/signal-<UTC>.json`` (``-2``, ``-3``... when that
    second already has one): 0600, atomic; returns (latest, dated)."""
    folder = make_private_dir(signals_dir(data_dir))
    data = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False).encode()
    stamp = dt.datetime.fromtimestamp(now_us / 1e6, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dated = folder / f"signal-{stamp}.json"
    n = 1
    while dated.exists():  # a dated copy is never replaced
        n += 1
        dated = folder / f"signal-{stamp}-{n}.json"
    write_private_atomic(dated, data)
    latest = folder / "latest.json"
    write_private_atomic(latest, data)
    return latest, dated
