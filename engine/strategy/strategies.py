"""Strategies: turn market data into decisions and decisions into orders on the one order path.

- ``ModelStrategy``: incremental features per symbol, champion/challenger models behind the canary
  router (a pin overrides it), PSI drift monitors, and target-position sizing. Also owns the model
  registry commands (pin, promote, rollback, canary share), each audited and persisted.
- ``AlternatingStrategy``: the benchmark workload (a market order every N ticks, alternating side).

Invariants: every decision is recorded (decisions table + audit) before any order it causes;
orders go only through ``Engine.submit`` (gates → OMS → venue).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from engine.core.events import CommandResult, Decision, OrderType, Side, SubmitOrder
from engine.core.units import SCALE
from engine.snapshot import DecisionView
from engine.strategy.candle_model import (
    CandleStrategyModel,
    build_trained,
    is_trained_id,
    seed_from_market,
)
from engine.strategy.drift import PsiMonitor
from engine.strategy.features import FeatureState
from engine.strategy.registry import ModelRegistry
from engine.strategy.signal_models import CanaryRouter, Model, ModelParams, build_model
from engine.trading.engine import Engine
from engine.trading.venue_gates import MARKET_NOTIONAL_HEADROOM

log = logging.getLogger("engine.strategy")
PSI_WINDOW = 20_000  # ticks: spans several regimes (measured: median PSI ~0.1 without drift)
PSI_MIN = 5_000
REFERENCE_TICKS = 80_000  # a longer reference is less noisy (~0.05 -> ~0.01 PSI floor)


def why_no_trade(d: Decision, p: ModelParams, psi_block: float) -> str:
    """Which threshold stopped a NO_TRADE (seed 001 incident D), in the runbook's names."""
    if d.action != "NO_TRADE":
        return ""
    why = []
    if d.psi > psi_block:
        why.append(f"drift (PSI {d.psi:.2f} > {psi_block:g})")
    if not d.risk_allowed:
        why.append(f"RISK_MAX ({d.regime_reason})")
    if d.prob <= 0.5 and d.expected_return == 0.0:
        why.append(f"regime {d.regime}: no signal ({d.regime_reason})")
    else:
        if d.prob < p.prob_min:
            why.append(f"PROB_MIN ({d.prob:.2f} < {p.prob_min:g})")
        if d.expected_return < p.min_expected_return:
            why.append(
                f"MIN_EXPECTED_RETURN ({d.expected_return * 1e4:.2f} bps < "
                f"{p.min_expected_return * 1e4:g} bps)"
            )
    return "; ".join(why) or d.regime_reason


def decision_view(d: Decision, p: ModelParams, psi_block: float) -> DecisionView:
    return DecisionView(
        symbol=d.symbol,
        model_id=d.model_id,
        routed=d.routed,
        action=d.action,
        prob=d.prob,
        expected_return=d.expected_return,
        regime=d.regime,
        regime_reason=d.regime_reason,
        risk_allowed=d.risk_allowed,
        psi=d.psi,
        why=why_no_trade(d, p, psi_block),
    )


class ModelStrategy:
    """Champion/challenger trading: features per symbol, a decision every interval, routed to the
    challenger at the canary share, sized by the risk per trade, sent through ``Engine.submit``."""

    def __init__(self, engine: Engine, registry: ModelRegistry) -> None:
        cfg = engine.cfg
        self.engine = engine
        self.registry = registry
        self.params = ModelParams(0.0, 0.0, 0.0)
        self.risk_pct = 0.0
        self.psi_block = 0.0
        self.apply_config(cfg)
        self.interval_ns = int(cfg.models.decision_interval_ms * 1_000_000)
        self.order_type = cfg.oms.order_type
        self.features = {s: FeatureState() for s in engine.symbols}
        self.next_ns = {s: 0 for s in engine.symbols}
        self.models: dict[str, Model] = {}
        # PSI is observed on every tick over a long window: regimes last tens of seconds, so a
        # short or decision-cadence sample differs from the reference even without drift.
        # Models sharing one reference share one monitor (same input, same answer).
        self.psi: dict[str, PsiMonitor] = {}
        self.models_dir = registry.models_dir or Path("models")
        self.candle_models: list[CandleStrategyModel] = []  # fed every quote (own candles)
        by_ref: dict[str, PsiMonitor] = {}
        for e in registry.entries():
            model = self._build(e.model_id)
            self.models[e.model_id] = model
            if isinstance(model, CandleStrategyModel):
                self.psi[e.model_id] = model.monitor  # candle features, per closed candle
                continue
            ref_key = e.reference.to_json()
            if ref_key not in by_ref:
                by_ref[ref_key] = PsiMonitor(e.reference, window=PSI_WINDOW, min_samples=PSI_MIN)
            self.psi[e.model_id] = by_ref[ref_key]
        self._monitors = list(by_ref.values())
        self.router = CanaryRouter(registry.canary_share)
        self.decisions = 0
        self.not_ready = 0  # decisions during a symbol's warm-up (NO_TRADE by design)
        # the last 200 post-warm-up decisions, 1 = a feature was not a finite number: the
        # runbook's features_missing_ratio (data quality; warm-up is not missing data)
        self.missing: deque[int] = deque(maxlen=200)
        self.last: dict[str, DecisionView] = {}  # the latest decision per symbol (screens)

    def apply_config(self, cfg: Any) -> None:
        """The thresholds read per decision, from ``cfg``: at start, and when a running engine
        takes a hot key (``engine.trading.hot_config.STRATEGY_KEYS``)."""
        m = cfg.models
        self.params = ModelParams(
            prob_min=m.prob_min, min_expected_return=m.min_expected_return, risk_max=m.risk_max
        )
        self.risk_pct = cfg.risk.risk_per_trade_pct
        self.psi_block = m.psi_block

    def _build(self, model_id: str) -> Model:
        if is_trained_id(model_id):
            model = build_trained(self.models_dir, model_id)
            if isinstance(model, CandleStrategyModel):
                self._warm(model)
                self.candle_models.append(model)
            return model
        return build_model(model_id)

    def _warm(self, model: CandleStrategyModel) -> None:
        """Seed a trained model with the market DB's candles when the quotes are the venue's
        (the embedded simulator's prices are not those candles: it warms up live)."""
        e = self.engine
        if e.cfg.feed == "sim":
            return
        seeded = seed_from_market(model, self.models_dir.parent, e.symbols, e.clock.now_us())
        log.info("model %s seeded from the market DB: %s", model.model_id, seeded or "nothing")

    def on_quote(self, symbol: str, bid_e8: int, ask_e8: int, ts_ns: int) -> None:
        if self.candle_models:
            volume = self.engine.market.trade_volume_e8.get(symbol, 0) * 1e-8
            for m in self.candle_models:
                m.observe(symbol, (bid_e8 + ask_e8) * 0.5e-8, ts_ns // 1000, volume)
        f = self.features[symbol]
        f.update((bid_e8 + ask_e8) * 0.5e-8, ts_ns)
        if f.ready:
            values = f.values()
            for mon in self._monitors:
                mon.observe(values)
        if ts_ns >= self.next_ns[symbol]:
            self.next_ns[symbol] = ts_ns + self.interval_ns
            self.decide(symbol, ts_ns)

    def decide(self, symbol: str, ts_ns: int) -> None:
        e = self.engine
        did = e.ids.next()
        f = self.features[symbol]
        self.decisions += 1
        bad = False
        if not f.ready:
            self.not_ready += 1
        else:
            bad = not all(math.isfinite(v) for v in f.values())
            self.missing.append(1 if bad else 0)
        d = self._routed_decision(symbol, f, ts_ns // 1000, did)
        if bad:  # never trade on a NaN: every threshold comparison with it is False
            d = msgspec.structs.replace(
                d, action="NO_TRADE", position_size=0.0, regime_reason="features missing (NaN)"
            )
        e.record_decision(d)
        self.last[symbol] = decision_view(d, self.params, self.psi_block)
        if d.action != "NO_TRADE":
            submit_target(e, d, did, self.risk_pct, self.order_type)

    def _routed_decision(self, symbol: str, f: FeatureState, ts_us: int, did: str) -> Decision:
        """The pinned model's decision; else the challenger's when it has a signal and is due its
        share of trades (``CanaryRouter``); else the champion's."""
        reg, k = self.registry, self.engine.kpis
        model_id, routed = reg.resolve("champion")  # the pin, or the champion
        due = self.router.challenger_due(k.canary_placed, k.trades_placed)
        if routed == "champion" and reg.challenger_id and due:
            d = self.models[reg.challenger_id].decide(symbol, f, ts_us, did, self.params)
            if d.action != "NO_TRADE":
                return self._stamped(d, "challenger")
        d = self.models[model_id].decide(symbol, f, ts_us, did, self.params)
        return self._stamped(d, routed)

    def _stamped(self, d: Decision, routed: str) -> Decision:
        psi = self.engine.risk.psi.get(d.model_id, 0.0)
        return msgspec.structs.replace(d, routed=routed, psi=psi)

    def update_psi(self) -> None:
        for model_id, mon in self.psi.items():
            self.engine.risk.psi[model_id] = mon.psi()
        m = self.engine.metrics
        m.canary_share.set(self.registry.canary_share)
        m.features_missing.set(sum(self.missing) / len(self.missing) if self.missing else 0.0)

    # --- operator commands on models (critical actions; the UI confirms before calling) ------

    def _changed(self, actor: str, kind: str, detail: dict[str, object]) -> CommandResult:
        e = self.engine
        reg = self.registry
        self.router.share = reg.canary_share
        for row in reg.to_rows():
            e.recorder.upsert("models", row[0], row)
        e.recorder.set_state("models", msgspec.json.encode(reg.state_dict()).decode())
        e.recorder.audit(
            actor,
            kind,
            {
                **detail,
                "champion": reg.champion_id,
                "challenger": reg.challenger_id,
                "pinned": reg.pinned,
                "canary_share": reg.canary_share,
            },
        )
        return CommandResult(
            ok=True,
            message=f"{kind}: champion={reg.champion_id} "
            f"challenger={reg.challenger_id} pinned={reg.pinned} "
            f"canary={reg.canary_share:g}",
        )

    def _guard(self, fn: object, *args: object) -> str | None:
        try:
            fn(*args)  # type: ignore[operator]
        except ValueError as exc:
            return str(exc)
        return None

    def pin(self, model_id: str | None, actor: str) -> CommandResult:
        err = self._guard(self.registry.pin, model_id)
        if err:
            return CommandResult(ok=False, message=err)
        return self._changed(actor, "model_pinned", {"model_id": model_id})

    def set_challenger(self, model_id: str, actor: str) -> CommandResult:
        """``model_id`` becomes the challenger; a trained bundle not yet registered is loaded
        from the models folder first (a damaged or missing file is a denial, nothing changes)."""
        reg, now = self.registry, self.engine.clock.now_us()
        if model_id not in self.models:
            if not is_trained_id(model_id):
                return CommandResult(ok=False, message=self._guard(reg.entry, model_id) or "")
            model = build_trained(self.models_dir, model_id)
            if not isinstance(model, CandleStrategyModel):
                return CommandResult(ok=False, message=model.reason)
            self._warm(model)
            self.models[model_id] = model
            self.candle_models.append(model)
            self.psi[model_id] = model.monitor
            reg.register(model, "challenger", model.bundle.reference, now)
        elif model_id == reg.champion_id:
            return CommandResult(ok=False, message=f"{model_id} is the champion")
        else:
            reg.register(self.models[model_id], "challenger", reg.entry(model_id).reference, now)
        return self._changed(actor, "challenger_set", {"model_id": model_id})

    def promote(self, actor: str) -> CommandResult:
        err = self._guard(self.registry.promote, self.engine.clock.now_us())
        return CommandResult(ok=False, message=err) if err else self._changed(actor, "promoted", {})

    def rollback(self, actor: str) -> CommandResult:
        err = self._guard(self.registry.rollback, self.engine.clock.now_us())
        if err:
            return CommandResult(ok=False, message=err)
        return self._changed(actor, "rolled_back", {})

    def set_canary_share(self, share: float, actor: str) -> CommandResult:
        err = self._guard(self.registry.set_canary_share, share)
        if err:
            return CommandResult(ok=False, message=err)
        return self._changed(actor, "canary_share_set", {"share": share})


def submit_target(e: Engine, d: Decision, did: str, risk_pct: float, order_type: str) -> None:
    """Order the difference between the decision's target position (``position_size`` of the
    risk budget, in the decision's direction) and the exposure, through ``Engine.submit``.
    Shared by the live strategy and walk-forward campaigns: one sizing, one order path."""
    if not 0.0 <= d.position_size <= 1.0:  # NaN too: a model bug is never an order
        log.error("decision %s: position_size %r is not in [0, 1]; not ordered", did,
                  d.position_size)  # fmt: skip
        return
    symbol = d.symbol
    kind: OrderType = "limit" if order_type == "limit" else "market"
    mid = e.market.mid_e8(symbol)
    lot = e.lot(symbol)
    if mid <= 0:
        return
    target_notional = e.risk.equity_e8 * risk_pct / 100.0 * d.position_size
    target = int(target_notional * SCALE / mid) // lot * lot
    if d.action == "SHORT":
        target = -target
    # aim from where every open order leaves us, not the filled position: with slow fills
    # the filled one is stale and each decision would order the same delta again
    delta = target - e.exposure.net(symbol)
    need = e.venue.limits(symbol).min_notional_e8
    if kind == "market":  # the venue-limits gate keeps this headroom for a market order's price
        need = int(need * MARKET_NOTIONAL_HEADROOM)
    if abs(delta) < lot or abs(delta) * mid // SCALE < need:
        return  # below what the venue accepts: not worth a denial at every decision
    side: Side = "buy" if delta > 0 else "sell"
    q = e.market.quotes[symbol]
    e.submit(
        SubmitOrder(
            decision_id=did,
            symbol=symbol,
            side=side,
            qty_e8=abs(delta),
            order_type=kind,
            limit_price_e8=(q[0] if side == "buy" else q[1]) if order_type == "limit" else 0,
            strategy=d.model_id,
            model_id=d.model_id,
            actor="engine",
            ts_us=e.clock.now_us(),  # when decided (its TTL runs from here)
        ),
        d.routed,
    )


class AlternatingStrategy:
    """Benchmark workload: a market order of ``qty`` every ``every`` ticks, alternating sides
    (raised to the venue's minimum notional when ``qty`` is worth less: a valid order path)."""

    def __init__(self, engine: Engine, symbol: str, every: int, qty_e8: int) -> None:
        self.engine = engine
        self.symbol = symbol
        self.every = every
        self.qty_e8 = qty_e8
        self.n = 0
        self.buy = True

    def on_quote(self, symbol: str, bid_e8: int, ask_e8: int, ts_ns: int) -> None:
        self.n += 1
        if self.n % self.every:
            return
        e = self.engine
        did = e.ids.next()
        qty = _at_least_min_notional(e, symbol, self.qty_e8, (bid_e8 + ask_e8) // 2)
        side: Side = "buy" if self.buy else "sell"
        self.buy = not self.buy
        ts_us = ts_ns // 1000
        e.record_decision(
            Decision(
                decision_id=did,
                ts_us=ts_us,
                symbol=symbol,
                model_id="bench_v1",
                action="LONG" if side == "buy" else "SHORT",
                prob=1.0,
                expected_return=0.0,
                regime="RANGE",
                regime_reason="benchmark",
                risk_allowed=True,
                position_size=1.0,
                routed="bench",
            )
        )
        e.submit(
            SubmitOrder(
                decision_id=did,
                symbol=symbol,
                side=side,
                qty_e8=qty,
                strategy="bench",
                model_id="bench_v1",
                ts_us=e.clock.now_us(),  # when decided (its TTL runs from here)
            ),
            "bench",
        )


def _at_least_min_notional(e: Engine, symbol: str, qty_e8: int, mid_e8: int) -> int:
    """``qty_e8``, or the fewest whole steps worth the venue's minimum notional (+2 %) at mid."""
    lim = e.venue.limits(symbol)
    if mid_e8 <= 0 or qty_e8 * mid_e8 // SCALE >= lim.min_notional_e8 * 102 // 100:
        return qty_e8
    step = max(lim.step_e8, 1)
    need = lim.min_notional_e8 * 102 // 100 * SCALE // mid_e8 + step
    return max(need // step * step, lim.min_qty_e8)
