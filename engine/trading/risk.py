"""The concrete risk gates of step 1 and the counters they read.

Invariants:
- ``RiskState`` is mutated only by the engine loop: ``note_sent`` after an order passed every gate,
  ``roll`` at each UTC day boundary. Gates only read it (sizing gates shrink ``ctx.qty_e8``).
- Every per-day counter (orders per account / strategy / symbol, notional per router, the
  drawdown baseline) is rebuilt from the DB at start (``engine.trading.day_counters``): a restart never
  hands out a day's limits twice.
- Kill switch and safe mode default to *blocking* when their state cannot be read (they are plain
  booleans here, loaded from the DB at start with "armed" winning over config).
- Every size and limit is measured against the exposure book (``RiskState.exposure``, see
  ``engine/trading/exposure.py``): filled position plus every open and in-flight order, never the filled
  position alone (with slow fills that let every new order pass as "reducing" at full size).
- Only the part of an order that reduces the worst case on its own side is exempt
  (``ctx.reducing_e8``): it passes max-open-positions, daily drawdown, the per-trade risk cap and
  drift halving, so an operator can always get flat through the normal path. The opening rest of
  the same order (a flip through zero) is sized like any new order. MAX_ORDER_NOTIONAL_USD binds the
  whole order, reducing or not (a fat-finger limit: getting flat takes several orders, never none).
  Kill switch, safe mode, skew and staleness block every order — except an operator's flatten
  order (``SubmitOrder.reduce_only`` and wholly reducing), which passes the kill switch in every
  scope, reduce-only mode and safe mode, so "close everything" works while trading is stopped.
- Kill-switch scopes (FIA 2015 §1.11): global (``kill_switch``), per symbol and per model
  (``kill_scope``), and an account-wide reduce-only mode (``reduce_only``) that lets only orders
  wholly reducing exposure through. Each is persisted and restored at start.
- Caps shrink an order to fit (whole lots) and deny it only when less than one lot fits.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.core.clock import Clock
from engine.trading.breakers import (
    Breakers,
    CanaryCapGate,
    PreflightGate,
    PreflightState,
    SloGate,
)
from engine.trading.caps import GrossExposureGate, PositionCapGate, RiskPerTradeGate, fit
from engine.trading.exposure import ExposureBook
from engine.trading.gates import Gate, GateContext
from engine.trading.kpis import Kpis
from engine.trading.stop_gates import KillScopeGate, KillSwitchGate, ReduceOnlyGate, SafeModeGate
from engine.trading.venue_gates import DecisionTtlGate, VenueLimitsGate, VenueThrottleGate
from engine.trading.venue_port import VenueLimits, VenuePort

US_PER_DAY = 86_400_000_000
DEFAULT_DECISION_TTL_MS = 1500.0


class RiskState:
    """The account's risk flags and today's counters: kill switch, safe mode, orders per strategy /
    symbol / router, equity and its day-start baseline, recent intents, model drift (PSI)."""

    def __init__(self, equity_e8: int) -> None:
        self.kill_switch = False
        self.kill_reason = ""
        self.kill_scopes: dict[str, str] = {}  # "symbol:BTC/USDT" | "model:trend_v1" -> reason
        self.reduce_only = ""  # why the account is in reduce-only mode ("" = off)
        self.safe_mode = False
        self.day = -1
        self.orders_today = 0
        self.orders_by_strategy: dict[str, int] = {}
        self.orders_by_symbol: dict[str, int] = {}
        # notional sent today per router (champion / challenger ...), at the order's reference
        # price: the canary cap compares the challenger's with the champion's
        self.notional_by_router_e8: dict[str, int] = {}
        self.equity_e8 = equity_e8
        self.equity_day_start_e8 = equity_e8
        self.last_intent_us: dict[tuple[str, str, str], int] = {}
        self.last_order_by_router: dict[str, int] = {}
        self.psi: dict[str, float] = {}
        self.exposure = ExposureBook()

    def roll(self, now_us: int) -> bool:
        """Start a new UTC day when ``now_us`` crosses midnight; returns True when it did."""
        day = now_us // US_PER_DAY
        if day == self.day:
            return False
        self.day = day
        self.orders_today = 0
        self.orders_by_strategy.clear()
        self.orders_by_symbol.clear()
        self.notional_by_router_e8.clear()
        self.equity_day_start_e8 = self.equity_e8
        return True

    def note_sent(self, ctx: GateContext) -> None:
        self.orders_today += 1
        self.orders_by_strategy[ctx.strategy] = self.orders_by_strategy.get(ctx.strategy, 0) + 1
        self.orders_by_symbol[ctx.symbol] = self.orders_by_symbol.get(ctx.symbol, 0) + 1
        by_router = self.notional_by_router_e8
        by_router[ctx.routed] = by_router.get(ctx.routed, 0) + ctx.notional_e8
        self.last_intent_us[(ctx.symbol, ctx.side, ctx.strategy)] = ctx.now_us
        self.last_order_by_router[ctx.routed] = ctx.now_us

    @property
    def canary_notional_e8(self) -> int:
        """Notional routed to the challenger today (the canary)."""
        return self.notional_by_router_e8.get("challenger", 0)

    def open_positions(self) -> int:
        return self.exposure.open_positions()

    def drawdown_pct(self) -> float:
        start = self.equity_day_start_e8
        return (start - self.equity_e8) * 100.0 / start if start > 0 else 0.0


class ReadinessGate:
    """READINESS_REQUIRED: every required signal must be ok and not expired (TTL)."""

    name = "readiness"

    def __init__(
        self, signals: dict[str, tuple[bool, float, str]], required: tuple[str, ...], clock: Clock
    ) -> None:
        self.signals = signals
        self.required = required
        self.clock = clock

    def probe(self, now_us: int) -> str | None:
        now_s = self.clock.monotonic_ns() / 1e9
        bad = []
        for name in self.required:
            sig = self.signals.get(name)
            if sig is None:
                bad.append(f"{name}: no signal yet")
            elif not sig[0]:
                bad.append(f"{name}: {sig[2]}")
            elif sig[1] < now_s:
                bad.append(f"{name}: stale ({now_s - sig[1]:.0f}s past its TTL)")
        return "not ready: " + "; ".join(bad) if bad else None

    def check(self, ctx: GateContext) -> str | None:
        return self.probe(ctx.now_us) if self.required else None


class ClockSkewGate:
    name = "clock_skew"

    def __init__(self, clock: Clock, max_ms: float) -> None:
        self.clock = clock
        self.max_ms = max_ms

    def probe(self, now_us: int) -> str | None:
        skew = self.clock.skew_ms()
        if abs(skew) > self.max_ms:
            return f"clock skew {skew:+.0f} ms exceeds MAX_TIME_SKEW_MS={self.max_ms:g}"
        return None

    def check(self, ctx: GateContext) -> str | None:
        return self.probe(ctx.now_us)


class StaleDataGate:
    """Denies a symbol whose last quote is older than the limit, or that a cause blocks (book gap,
    orphan order)."""

    name = "stale_data"

    def __init__(
        self, last_quote_us: dict[str, int], max_ms: float, blocked: dict[str, str] | None = None
    ) -> None:
        self.last_quote_us = last_quote_us
        self.max_us = int(max_ms * 1000)
        self.blocked = {} if blocked is None else blocked  # symbol -> why (e.g. book gap)

    def _reason(self, symbol: str, now_us: int) -> str | None:
        why = self.blocked.get(symbol)
        if why is not None:
            return why
        last = self.last_quote_us.get(symbol, 0)
        if not last:
            return f"{symbol}: no market data yet"
        age = now_us - last
        if age > self.max_us:
            return f"{symbol}: market data {age / 1000:.0f} ms old > {self.max_us / 1000:.0f} ms"
        return None

    def probe(self, now_us: int) -> str | None:
        stale = [r for s in self.last_quote_us if (r := self._reason(s, now_us))]
        return "; ".join(stale) if stale else None

    def check(self, ctx: GateContext) -> str | None:
        return self._reason(ctx.symbol, ctx.now_us)


class DupeIntentGate:
    name = "dupe_intent"

    def __init__(self, risk: RiskState, window_ms: float) -> None:
        self.risk = risk
        self.window_us = int(window_ms * 1000)

    def check(self, ctx: GateContext) -> str | None:
        last = self.risk.last_intent_us.get((ctx.symbol, ctx.side, ctx.strategy))
        if last is not None and ctx.now_us - last < self.window_us:
            return (
                f"duplicate intent {ctx.symbol} {ctx.side} ({ctx.strategy}) within "
                f"{self.window_us // 1000} ms"
            )
        return None


class CooldownGate:
    name = "cooldown"

    def __init__(self, risk: RiskState, cooldown_ms: float) -> None:
        self.risk = risk
        self.cooldown_us = int(cooldown_ms * 1000)

    def check(self, ctx: GateContext) -> str | None:
        if not self.cooldown_us:
            return None
        last = self.risk.last_order_by_router.get(ctx.routed)
        if last is not None and ctx.now_us - last < self.cooldown_us:
            left = (self.cooldown_us - (ctx.now_us - last)) / 1000
            return f"router {ctx.routed or 'default'} cooling down ({left:.0f} ms left)"
        return None


class BudgetGate:
    """Today's order budgets: per strategy, per symbol and for the account."""

    name = "budget"

    def __init__(self, risk: RiskState, per_strategy: int, per_symbol: int, account: int) -> None:
        self.risk = risk
        self.per_strategy = per_strategy
        self.per_symbol = per_symbol
        self.account = account

    def left(self) -> int:
        return self.account - self.risk.orders_today

    def probe(self, now_us: int) -> str | None:
        if self.risk.orders_today >= self.account:
            return f"account daily order budget spent ({self.risk.orders_today}/{self.account})"
        return None

    def check(self, ctx: GateContext) -> str | None:
        r = self.risk
        if r.orders_today >= self.account:
            return f"account daily order budget spent ({r.orders_today}/{self.account})"
        n = r.orders_by_symbol.get(ctx.symbol, 0)
        if n >= self.per_symbol:
            return f"{ctx.symbol} daily order budget spent ({n}/{self.per_symbol})"
        n = r.orders_by_strategy.get(ctx.strategy, 0)
        if n >= self.per_strategy:
            return f"strategy {ctx.strategy} daily order budget spent ({n}/{self.per_strategy})"
        return None


class MaxTradesGate:
    name = "max_trades_per_day"

    def __init__(self, risk: RiskState, max_trades: int) -> None:
        self.risk = risk
        self.max_trades = max_trades

    def probe(self, now_us: int) -> str | None:
        if self.risk.orders_today >= self.max_trades:
            return f"MAX_TRADES_PER_DAY={self.max_trades} reached"
        return None

    def check(self, ctx: GateContext) -> str | None:
        return self.probe(ctx.now_us)


class MaxOpenPositionsGate:
    """MAX_OPEN_POSITIONS: symbols with a position or any open order (an unresolved intent is open
    exposure until settled). An order on an already exposed symbol, or a fully reducing one,
    passes."""

    name = "max_open_positions"

    def __init__(self, risk: RiskState, max_open: int) -> None:
        self.book = risk.exposure
        self.max_open = max_open

    def check(self, ctx: GateContext) -> str | None:
        if ctx.reduces or self.book.exposed(ctx.symbol):
            return None
        n = self.book.exposed_count()
        if n >= self.max_open:
            return f"MAX_OPEN_POSITIONS={self.max_open} reached ({n} open or pending)"
        return None


class DrawdownGate:
    """MAX_DAILY_DRAWDOWN_PCT: once breached, only the reducing part of an order goes out."""

    name = "daily_drawdown"

    def __init__(self, risk: RiskState, max_pct: float, lot_e8: Callable[[str], int]) -> None:
        self.risk = risk
        self.max_pct = max_pct
        self.lot_e8 = lot_e8

    def probe(self, now_us: int) -> str | None:
        dd = self.risk.drawdown_pct()
        if dd >= self.max_pct:
            return f"daily drawdown {dd:.2f}% >= MAX_DAILY_DRAWDOWN_PCT={self.max_pct:g}"
        return None

    def check(self, ctx: GateContext) -> str | None:
        if ctx.reduces:
            return None
        reason = self.probe(ctx.now_us)
        if reason is None:
            return None
        if ctx.reducing_e8 < self.lot_e8(ctx.symbol):
            return reason  # nothing of it reduces: new risk, denied
        return fit(ctx, ctx.reducing_e8, self.lot_e8(ctx.symbol), self.name, reason)


class DriftGate:
    """Model drift: halves a drifting model's size above one PSI level and denies it above another."""

    name = "drift"

    def __init__(self, risk: RiskState, halve: float, block: float, lot_e8: Callable[[str], int]):
        self.risk = risk
        self.halve = halve
        self.block = block
        self.lot_e8 = lot_e8

    def probe(self, now_us: int) -> str | None:
        worst = max(self.risk.psi.values(), default=0.0)
        return f"PSI {worst:.2f} > {self.block:g}" if worst > self.block else None

    def check(self, ctx: GateContext) -> str | None:
        psi = self.risk.psi.get(ctx.model_id, 0.0)
        if psi > self.block:
            return f"model {ctx.model_id} drift PSI {psi:.3f} > {self.block:g}: no trade"
        if psi > self.halve and not ctx.reduces:
            # only the opening part is halved: reducing exposure is never held back by drift
            lot = self.lot_e8(ctx.symbol)
            reducing = ctx.reducing_e8
            qty = (reducing + (ctx.qty_e8 - reducing) // 2) // lot * lot
            if qty <= 0:
                return f"model {ctx.model_id} drift PSI {psi:.3f}: halved size is below one lot"
            ctx.notes.append((self.name, f"PSI {psi:.3f} > {self.halve:g}: size halved"))
            ctx.qty_e8 = qty
        return None


GATE_NAMES = (
    "kill_switch",
    "kill_scope",
    "reduce_only",
    "safe_mode",
    "preflight",
    "readiness",
    "clock_skew",
    "stale_data",
    "venue_throttle",
    "error_rate",
    "slippage",
    "slo",
    "decision_ttl",
    "dupe_intent",
    "cooldown",
    "budget",
    "max_trades_per_day",
    "max_open_positions",
    "daily_drawdown",
    "risk_per_trade",
    "max_position_notional",
    "max_gross_exposure",
    "drift",
    "canary_cap",  # after every gate that sizes an order: it caps the notional actually sent
    "venue_limits",  # last: after every gate that shrinks an order
)


def standard_gates(
    *,
    risk: RiskState,
    clock: Clock,
    last_quote_us: dict[str, int],
    lot_e8: Callable[[str], int],
    market_blocked: dict[str, str] | None = None,
    readiness: dict[str, tuple[bool, float, str]] | None = None,
    required: tuple[str, ...] = (),
    mark_e8: Callable[[str], int] = lambda _s: 0,
    venue: VenuePort | None = None,
    kpis: Kpis | None = None,
    breakers: Breakers | None = None,
    preflight: PreflightState | None = None,
    preflight_required: bool = False,
    go_live_required: bool = False,
    r: object,
    m: object,
    o: object = None,
) -> list[Gate]:
    """The pipeline in evaluation order. ``r``/``m``/``o``: the risk, models and oms config;
    ``venue``: the venue port (its throttle state and trading rules); ``kpis``/``breakers``: the
    execution figures and the breakers over them; ``preflight``: the latest green preflight."""
    g = getattr
    kpis = Kpis() if kpis is None else kpis
    breakers = Breakers(kpis, r) if breakers is None else breakers
    return [
        KillSwitchGate(risk),
        KillScopeGate(risk),
        ReduceOnlyGate(risk),
        SafeModeGate(risk),
        PreflightGate(
            PreflightState() if preflight is None else preflight,
            preflight_required,
            go_live=go_live_required,
        ),
        ReadinessGate({} if readiness is None else readiness, required, clock),
        ClockSkewGate(clock, g(r, "max_time_skew_ms")),
        StaleDataGate(last_quote_us, g(r, "max_data_staleness_ms"), market_blocked),
        VenueThrottleGate(venue.throttle if venue is not None else lambda: None),
        breakers.by_name["error_rate"],
        breakers.by_name["slippage"],
        SloGate(kpis, g(r, "max_p95_place_ms"), g(r, "slo_window_s"), g(r, "slo_stale_ms")),
        DecisionTtlGate(g(o, "decision_ttl_ms", DEFAULT_DECISION_TTL_MS)),
        DupeIntentGate(risk, g(r, "dupe_intent_window_ms")),
        CooldownGate(risk, g(r, "cooldown_ms")),
        BudgetGate(
            risk,
            g(r, "budget_orders_per_day_strategy"),
            g(r, "budget_orders_per_day_symbol"),
            g(r, "budget_orders_per_day_account"),
        ),
        MaxTradesGate(risk, g(r, "max_trades_per_day")),
        MaxOpenPositionsGate(risk, g(r, "max_open_positions")),
        DrawdownGate(risk, g(r, "max_daily_drawdown_pct"), lot_e8),
        RiskPerTradeGate(
            risk, g(r, "risk_per_trade_pct"), g(r, "max_order_notional_usd"), lot_e8, mark_e8
        ),
        PositionCapGate(risk, g(r, "max_position_notional_usd"), lot_e8, mark_e8),
        GrossExposureGate(risk, g(r, "max_gross_exposure_usd"), lot_e8, mark_e8),
        DriftGate(risk, g(m, "psi_halve"), g(m, "psi_block"), lot_e8),
        CanaryCapGate(risk.notional_by_router_e8, g(r, "canary_notional_cap_pct")),
        VenueLimitsGate(venue.limits if venue is not None else _lot_only(lot_e8)),
    ]


def _lot_only(lot_e8: Callable[[str], int]) -> Callable[[str], VenueLimits]:
    return lambda s: VenueLimits(step_e8=lot_e8(s), min_qty_e8=lot_e8(s), min_notional_e8=0)
