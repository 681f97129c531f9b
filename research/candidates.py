"""Campaign candidates: the decision rules a walk-forward campaign compares.

Role: ``build_candidate(name, interval, train, params, fold)`` returns ``decide(symbol, x, ts_us,
decision_id) -> Decision`` over the candle features ``x`` (None during warm-up):
- ``ml``: the trained bundle (trend + return + risk) fitted on this fold's training window with
  ``training.fit_doc`` and decided by the live inference code (``CandleModel``);
- ``momentum``: follow the 24-candle return (no fitting) — the baseline any model must beat;
- ``reversal``: fade the distance from the 24-candle mean (no fitting).

Invariants: every candidate passes the same thresholds (PROB_MIN, MIN_EXPECTED_RETURN) the same
way, and features that are missing or not finite give NO_TRADE.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import polars as pl

from engine.core.events import Action, Decision, Regime
from engine.strategy.candle_model import CandleModel, candle_regime, linear_from_doc
from engine.strategy.registry import Reference
from engine.strategy.signal_models import ModelParams
from research.training import KINDS, fit_doc

CANDIDATES = ("ml", "momentum", "reversal")
Decide = Callable[[str, "tuple[float, ...] | None", int, str], Decision]


class CandidateError(Exception):
    """An unknown candidate name (one line listing the known ones)."""


def _fit_bundle(interval: str, train: pl.DataFrame, fold: int) -> CandleModel:
    docs = {}
    for kind in KINDS:
        doc = fit_doc(kind, train, train.head(0))
        doc["model_id"] = f"{kind}_{interval}_fold{fold}"
        docs[kind] = doc
    return CandleModel(
        model_id=f"ml_{interval}_fold{fold}",
        interval=interval,
        version=0,
        trend=linear_from_doc(docs["trend"], f"fold {fold} trend"),
        ret=linear_from_doc(docs["return"], f"fold {fold} return"),
        risk=linear_from_doc(docs["risk"], f"fold {fold} risk"),
        risk_max=float(docs["risk"]["risk_max"]),
        reference=Reference.from_json(json.dumps(docs["trend"]["reference"])),
    )


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _rule(name: str, x: tuple[float, ...]) -> tuple[Action, float, float]:
    """(direction, prob, expected return per candle) of a fitting-free rule."""
    vol = max(x[3], 1e-12)
    if name == "momentum":
        z = x[2] / (vol * math.sqrt(24))
        return ("LONG" if z > 0 else "SHORT"), _phi(abs(z)), abs(x[2]) / 24
    z = x[5] / vol
    return ("SHORT" if z > 0 else "LONG"), _phi(abs(z)), abs(x[5]) / 4


def _rule_decide(name: str, interval: str, params: ModelParams) -> Decide:
    model_id = f"{name}_{interval}"

    def decide(symbol: str, x: tuple[float, ...] | None, ts_us: int, did: str) -> Decision:
        ok = x is not None and all(math.isfinite(v) for v in x)
        direction: Action = "NO_TRADE"
        regime: Regime = "RANGE"
        prob, expected, reason = 0.5, 0.0, "warming up"
        if ok and x is not None:
            regime, reason = candle_regime(x, math.inf)
            direction, prob, expected = _rule(name, x)
            prob = min(prob, 0.99)
        trade = ok and prob >= params.prob_min and expected >= params.min_expected_return
        action: Action = direction if trade else "NO_TRADE"
        return Decision(
            decision_id=did, ts_us=ts_us, symbol=symbol, model_id=model_id, action=action,
            prob=prob, expected_return=expected, regime=regime, regime_reason=reason,
            risk_allowed=True,
            position_size=0.0 if action == "NO_TRADE" else min(1.0, (prob - 0.5) / 0.49),
        )  # fmt: skip

    return decide


def build_candidate(
    name: str, interval: str, train: pl.DataFrame, params: ModelParams, fold: int
) -> tuple[Decide, CandleModel | None]:
    if name == "ml":
        model = _fit_bundle(interval, train, fold)
        p = model.params(params)

        def decide(symbol: str, x: tuple[float, ...] | None, ts_us: int, did: str) -> Decision:
            return model.decide_features(symbol, x, ts_us, did, p, "warming up")

        return decide, model
    if name in CANDIDATES:
        return _rule_decide(name, interval, params), None
    raise CandidateError(f"--models: unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")
