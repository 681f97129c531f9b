"""Built-in signal models (champion / challenger), regime classification and the canary router.

Role: turn a symbol's ``FeatureState`` into a ``Decision`` (LONG / SHORT / NO_TRADE with prob,
expected return, regime, reason, risk flag and size). The engine runs a champion and a challenger
side by side; ``CanaryRouter`` gives the challenger its share of trades.

Invariants:
- Pure and deterministic: a decision depends only on the features, the params and the ids passed
  in. No clock, no I/O, no randomness.
- ``prob`` is within 0.5..0.99, ``position_size`` within 0..1 and 0 whenever the action is
  NO_TRADE; ``expected_return`` is a fraction (0.0002 = 2 bps), never negative.
- NO_TRADE when features are not ready, ``prob < prob_min``, ``expected_return <
  min_expected_return`` or risk is not allowed (``vol_bps > risk_max``).
- Routing is a pure function of the decision id, so a replay routes every decision the same way.

Scale note: thresholds are in per-tick bps. With the embedded simulator at 20 ticks/s a calm
market shows vol ~0.2 bps and HIGH_VOL ~0.75 bps; a real feed with another tick rate needs its own
thresholds (and its own drift reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from engine.config.structs import BUILTIN_MODEL_IDS
from engine.core.events import Action, Decision, Regime
from engine.strategy.features import FeatureState

VOL_HIGH_BPS = 0.45  # per-tick vol above this is HIGH_VOL (sim: calm ~0.2, high ~0.75)
TREND_MIN_BPS = 1.5  # |EMA fast - EMA slow| above this is a trend (sim: ~3.3 in trends)
MEANREV_Z = 4.0  # |zscore| at which the mean-reversion model fades the move
HORIZON_TICKS = 100  # holding horizon used to turn a drift estimate into an expected return


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Decision thresholds (``PROB_MIN``, ``MIN_EXPECTED_RETURN``, ``RISK_MAX``)."""

    prob_min: float
    min_expected_return: float  # fraction: 0.0002 = 2 bps
    risk_max: float  # max vol_bps at which trading is allowed


def classify_regime(
    f: FeatureState, vol_high_bps: float = VOL_HIGH_BPS, trend_min_bps: float = TREND_MIN_BPS
) -> tuple[Regime, str]:
    """Regime from the features, with the human reason shown to operators."""
    if not f.ready:
        return "RANGE", f"warming up {f.n}/{f.min_ticks} ticks"
    vol = f.vol_bps
    if vol > vol_high_bps:
        return "HIGH_VOL", f"vol {vol:.2f}bps > {vol_high_bps:.2f}bps"
    trend = f.trend_bps
    if trend > trend_min_bps:
        return "TREND_UP", f"trend {trend:+.2f}bps > {trend_min_bps:.2f}bps"
    if trend < -trend_min_bps:
        return "TREND_DOWN", f"trend {trend:+.2f}bps < -{trend_min_bps:.2f}bps"
    return "RANGE", f"|trend {trend:+.2f}bps| <= {trend_min_bps:.2f}bps"


class Model(Protocol):
    model_id: str
    name: str
    version: int

    def decide(
        self, symbol: str, f: FeatureState, ts_us: int, decision_id: str, params: ModelParams
    ) -> Decision: ...


def _prob(strength: float) -> float:
    """Logistic of a strength measured in thresholds: 1.0 -> 0.60, 2.0 -> 0.83, 3.0 -> 0.94."""
    p = 1.0 / (1.0 + math.exp(0.8 - 1.2 * strength))
    return 0.5 if p < 0.5 else min(p, 0.99)


def _verdict(
    model_id: str,
    symbol: str,
    f: FeatureState,
    ts_us: int,
    decision_id: str,
    params: ModelParams,
    direction: Action,
    prob: float,
    expected_return: float,
    regime: Regime,
    reason: str,
) -> Decision:
    """Shared gatekeeping: every model applies the same thresholds the same way."""
    risk_allowed = f.vol_bps <= params.risk_max
    action = direction
    if (
        direction == "NO_TRADE"
        or not f.ready
        or prob < params.prob_min
        or expected_return < params.min_expected_return
        or not risk_allowed
    ):
        action = "NO_TRADE"
    size = 0.0 if action == "NO_TRADE" else min(1.0, (prob - 0.5) / 0.49)
    return Decision(
        decision_id=decision_id,
        ts_us=ts_us,
        symbol=symbol,
        model_id=model_id,
        action=action,
        prob=prob,
        expected_return=expected_return,
        regime=regime,
        regime_reason=reason,
        risk_allowed=risk_allowed,
        position_size=size,
    )


class TrendModel:
    """Follows the EMA crossover: LONG in TREND_UP, SHORT in TREND_DOWN, otherwise NO_TRADE."""

    model_id = "trend_v1"
    name = "EMA trend follower"
    version = 1

    __slots__ = ("trend_min_bps", "vol_high_bps")

    def __init__(
        self, trend_min_bps: float = TREND_MIN_BPS, vol_high_bps: float = VOL_HIGH_BPS
    ) -> None:
        self.trend_min_bps = trend_min_bps
        self.vol_high_bps = vol_high_bps

    def decide(
        self, symbol: str, f: FeatureState, ts_us: int, decision_id: str, params: ModelParams
    ) -> Decision:
        regime, reason = classify_regime(f, self.vol_high_bps, self.trend_min_bps)
        direction: Action = "NO_TRADE"
        prob = 0.5
        expected = 0.0
        if regime == "TREND_UP" or regime == "TREND_DOWN":
            direction = "LONG" if regime == "TREND_UP" else "SHORT"
            trend = abs(f.trend_bps)
            prob = _prob(trend / self.trend_min_bps)
            # The EMA gap is drift x (lag difference of the two EMAs); project it over the horizon.
            lag_gap = 1.0 / f.alpha_slow - 1.0 / f.alpha_fast
            expected = (2.0 * prob - 1.0) * trend / lag_gap * HORIZON_TICKS * 1e-4
        return _verdict(
            self.model_id,
            symbol,
            f,
            ts_us,
            decision_id,
            params,
            direction,
            prob,
            expected,
            regime,
            reason,
        )


class FastTrendModel(TrendModel):
    """The built-in challenger: the same EMA trend rule with a lower trend threshold (1.0 bps) and
    a little more volatility tolerated, so it enters trends earlier. It trades about as often as
    the champion, so the canary router's share of decisions becomes the same share of trades —
    which the canary panel, the CanaryImbalance alert and the canary notional cap all measure."""

    model_id = "trend_fast_v1"
    name = "Fast EMA trend follower"
    version = 1

    __slots__ = ()

    def __init__(self, trend_min_bps: float = 1.0, vol_high_bps: float = 0.5) -> None:
        super().__init__(trend_min_bps, vol_high_bps)


class MeanReversionModel:
    """Fades stretched moves in RANGE: zscore <= -k -> LONG, zscore >= k -> SHORT."""

    model_id = "meanrev_v1"
    name = "Range mean reversion"
    version = 1

    __slots__ = ("k", "trend_min_bps", "vol_high_bps")

    def __init__(
        self,
        k: float = MEANREV_Z,
        trend_min_bps: float = TREND_MIN_BPS,
        vol_high_bps: float = VOL_HIGH_BPS,
    ) -> None:
        self.k = k
        self.trend_min_bps = trend_min_bps
        self.vol_high_bps = vol_high_bps

    def decide(
        self, symbol: str, f: FeatureState, ts_us: int, decision_id: str, params: ModelParams
    ) -> Decision:
        regime, reason = classify_regime(f, self.vol_high_bps, self.trend_min_bps)
        direction: Action = "NO_TRADE"
        prob = 0.5
        expected = 0.0
        if regime == "RANGE" and f.ready:
            z = f.zscore
            if z <= -self.k or z >= self.k:
                direction = "LONG" if z < 0 else "SHORT"
                prob = _prob(abs(z) / self.k)
                # Expected move: a full reversion of the gap to the slow EMA, weighted by the edge.
                gap = abs(f.last_mid - f.ema_slow) / f.last_mid
                expected = (2.0 * prob - 1.0) * gap
        return _verdict(
            self.model_id,
            symbol,
            f,
            ts_us,
            decision_id,
            params,
            direction,
            prob,
            expected,
            regime,
            reason,
        )


_MODELS: dict[str, type[TrendModel | MeanReversionModel]] = {
    TrendModel.model_id: TrendModel,
    MeanReversionModel.model_id: MeanReversionModel,
    FastTrendModel.model_id: FastTrendModel,
}
MODEL_IDS: tuple[str, ...] = tuple(_MODELS)
if MODEL_IDS != BUILTIN_MODEL_IDS:
    raise ImportError("config.structs.BUILTIN_MODEL_IDS must list the built-in signal models")


def build_model(model_id: str) -> Model:
    """A fresh built-in model by id; ValueError (one line) naming the known ids otherwise."""
    cls = _MODELS.get(model_id)
    if cls is None:
        raise ValueError(f"unknown model id {model_id!r}; known: {', '.join(MODEL_IDS)}")
    return cls()


class CanaryRouter:
    """Gives the challenger its ``share`` of *trades* (the canary share the runbook, the canary
    panel, the CanaryImbalance alert and the notional cap all measure).

    Routing decisions by a hash gave the challenger its share of *decisions*, not of trades: a
    challenger that rarely has a signal traded almost never, and one that disagrees with the
    champion's position traded far above its share (each of its orders was undone by the
    champion's next). So the challenger takes a decision only when it has a signal and taking it
    keeps its trades within the share: ``canary + 1 <= share * (total + 1)``; every other decision
    is the champion's. Deterministic: the same sequence of decisions routes the same way.
    """

    __slots__ = ("_share",)

    def __init__(self, share: float) -> None:
        self._share = 0.0
        self.share = share

    @property
    def share(self) -> float:
        return self._share

    @share.setter
    def share(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise ValueError(f"canary share must be within 0..1, got {value}")
        self._share = value

    def challenger_due(self, canary_trades: int, total_trades: int) -> bool:
        """Would one more challenger trade stay within the share of trades?"""
        return canary_trades + 1 <= self._share * (total_trades + 1) + 1e-9
