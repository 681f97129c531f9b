"""``cockpit signal`` and ``cockpit drift``: the current decision and the feature drift, from the
market DB's candles and a trained bundle (seed 001 incident D "why no trade", §7 drift).

- ``signal [--symbol S] [--interval I] [--model ID] [--json]``: each symbol's decision on its last
  closed candle (the live inference path and drift gate), written to
  ``<data-dir>/signals/latest.json`` and a dated ``signal-<UTC>.json`` (0600, never replaced);
  one line per symbol (a NO_TRADE names the threshold that stopped it), or the document.
- ``drift [--model ID] [--interval I] [--window N] [--json]``: PSI per feature of the last N
  candle feature rows (all symbols, default 500 — the live gate's window) against the bundle's
  training reference, with the live gate's ``PsiMonitor``.

The model: ``--model``, else the engine's pinned model, else its champion when it is a trained
bundle, else the newest trained bundle of the interval (the output says which, and why).
Exit codes: 0 done (drift: PSI ≤ ``models.psi_block``); 1 drift: PSI above ``psi_block``;
2 missing or bad input (no market data, no trained bundle, damaged model file, bad option) — one
line naming the remedy; 3 the market DB is held by another process (a running backfill).
The logic lives in ``research.signal``; this module parses, prints and maps errors to codes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cockpit.control_cli import shown
from engine.config.loader import load_config, resolve_data_dir
from engine.store.candles import INTERVAL_US

COMMANDS = ("signal", "drift")
RETRAIN = (
    "retrain (`cockpit model train trend`, `... return`, `... risk`) or roll back "
    "(`cockpit model rollback`)"
)


def _err(msg: str) -> None:
    print(f"cockpit: {shown(msg)}", file=sys.stderr)


def _window(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of candles > 0 (got {text!r})")
    return n


def add_parsers(sub: Any, common: Any) -> None:
    s = sub.add_parser(
        "signal", help="current decision per symbol from stored candles -> signals/latest.json"
    )
    common(s)
    s.add_argument("--symbol", help="only this symbol (default: every symbol in the market DB)")
    s.add_argument("--interval", choices=tuple(INTERVAL_US), help="default: the model's, else 1h")
    s.add_argument("--model", help="a trained bundle id (ml_<interval>_v<N>)")
    s.add_argument("--json", action="store_true")
    d = sub.add_parser("drift", help="PSI per feature of recent candles; exit 1 above psi_block")
    common(d)
    d.add_argument("--model", help="a trained bundle id (ml_<interval>_v<N>)")
    d.add_argument("--interval", choices=tuple(INTERVAL_US), help="default: the model's, else 1h")
    d.add_argument("--window", type=_window, default=500, help="candle feature rows (500)")
    d.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from engine.strategy.candle_model import ModelFileError
    from research.signal import MarketBusy, SignalError

    data_dir = resolve_data_dir(args.data_dir)
    try:
        if args.cmd == "signal":
            return _signal(data_dir, args)
        return _drift(data_dir, args)
    except MarketBusy as exc:
        _err(str(exc))
        return 3
    except (SignalError, ModelFileError) as exc:
        _err(str(exc))
        return 2


def _setup(
    data_dir: Path, args: argparse.Namespace, per_symbol: int, symbol: str | None = None
) -> tuple[Any, Any, Any, Any]:
    """(config thresholds, candles, model choice, loaded bundle): the market data is checked
    first, as it is the first step of the chain (backfill, curate, train)."""
    from engine.strategy.candle_model import is_trained_id, load_bundle
    from research.signal import (
        SignalError,
        Thresholds,
        choose_model,
        load_candles,
        models_dir,
    )

    cfg = load_config(args.profile)
    interval = args.interval or "1h"
    if args.model and is_trained_id(args.model):
        own = args.model.split("_")[1]
        if args.interval and args.interval != own:
            raise SignalError(f"--model {args.model} is a {own} model, not {args.interval}")
        interval = own
    candles = load_candles(data_dir, interval, per_symbol, time.time_ns() // 1000, symbol)
    choice = choose_model(data_dir, interval, args.model)
    model = load_bundle(models_dir(data_dir), choice.model_id)
    m = cfg.models
    th = Thresholds(m.prob_min, m.min_expected_return, m.psi_block, m.psi_halve)
    return th, candles, choice, model


def _signal(data_dir: Path, args: argparse.Namespace) -> int:
    from engine.strategy.candle_model import LOOKBACK, PSI_WINDOW_CANDLES
    from research.signal import signal_document, write_signal

    per_symbol = PSI_WINDOW_CANDLES + LOOKBACK - 1  # the decision's window and the PSI's
    th, candles, choice, model = _setup(data_dir, args, per_symbol, args.symbol)
    now_us = time.time_ns() // 1000
    doc = signal_document(model, choice, candles, th, now_us)
    latest, dated = write_signal(data_dir, doc, now_us)
    if args.json:
        print(json.dumps(doc, sort_keys=True))
        return 0
    print(shown(f"{choice.note}; PSI {doc['psi']:.2f} ({doc['psi_feature']}, "
                f"{doc['psi_samples']} candles)"))  # fmt: skip
    for sig in doc["signals"].values():
        print(shown(_line(sig)))
    print(shown(f"wrote {latest} (and {dated.name})"))
    age_s = min(sig["candle_age_s"] for sig in doc["signals"].values())
    if age_s > 2 * INTERVAL_US[model.interval] // 1_000_000:
        _err(f"warning: the newest candle closed {age_s / 3600:.1f} h ago: run `cockpit data "
             f"backfill --interval {model.interval}` for a current signal")  # fmt: skip
    return 0


def _line(sig: dict[str, Any]) -> str:
    head = (
        f"{sig['symbol']:<10} {sig['decision']:<8} prob {sig['prob']:.2f} "
        f"exp {sig['expected_return'] * 1e4:+.2f} bps {sig['regime']}"
    )
    if sig["decision"] == "NO_TRADE":
        return f"{head}: {sig['why']} (candle {sig['candle_open']})"
    extra = f"; {sig['note']}" if sig["note"] else ""
    return f"{head} size {sig['position_size']:.2f} (candle {sig['candle_open']}){extra}"


def _drift(data_dir: Path, args: argparse.Namespace) -> int:
    from engine.strategy.candle_model import LOOKBACK, PSI_MIN_CANDLES
    from research.signal import SignalError, feature_rows, measure_drift

    th, candles, choice, model = _setup(data_dir, args, args.window + LOOKBACK - 1)
    drift = measure_drift(model.reference, feature_rows(candles), args.window)
    need = min(PSI_MIN_CANDLES, args.window)
    if drift.samples < need:
        raise SignalError(
            f"only {drift.samples} {model.interval} candles with features (need {need}): run "
            f"`cockpit data backfill --interval {model.interval}`"
        )
    over = drift.psi > th.psi_block
    if args.json:
        print(json.dumps({
            "model_id": model.model_id, "model_source": choice.source,
            "model_note": choice.note, "interval": model.interval, "window": args.window,
            "samples": drift.samples, "per_feature": drift.per_feature, "psi": drift.psi,
            "feature": drift.feature, "psi_block": th.psi_block, "psi_halve": th.psi_halve,
            "drift": over,
        }, sort_keys=True))  # fmt: skip
        return 1 if over else 0
    print(shown(f"{choice.note}: PSI per feature over the last {drift.samples} "
                f"{model.interval} candles (all symbols)"))  # fmt: skip
    for name, value in drift.per_feature.items():
        print(f"  {name:<14} {value:.3f}")
    where = f"PSI {drift.psi:.2f}"
    if over:
        print(f"drift: {where} > {th.psi_block:g} (feature {drift.feature}): {RETRAIN}")
        return 1
    if drift.psi > th.psi_halve:
        print(f"drift warning: {where} > {th.psi_halve:g} (feature {drift.feature}): "
              "the live gate halves sizes")  # fmt: skip
    else:
        print(f"no drift: {where} <= {th.psi_block:g} (feature {drift.feature})")
    return 0
