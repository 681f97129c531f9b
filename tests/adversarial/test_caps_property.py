"""Property: no order, no position and no exposure above its cap, whatever the venue does.

Issue 12 item 1. The real ``Engine`` (gates, OMS, positions) is driven with hostile order sizes on
both sides while a scripted venue double — it speaks the ``VenuePort`` — answers each order after a
random delay with a fill, partial fills, a reject, an expiry of the remainder or nothing for a long
time. Prices stay fixed within an example so every cap is exact (a cap is enforced when an order is
sent; a later price move is not a breach). After every order and every venue event:

- no order above ``MAX_ORDER_NOTIONAL_USD``, and no order whose *opening* part (what it adds beyond
  the worst-case exposure it reduces) is above equity × ``RISK_PER_TRADE_PCT``;
- no filled position and no worst-case exposure (filled + every open order on one side) above
  ``MAX_POSITION_NOTIONAL_USD`` per symbol;
- gross worst-case exposure over all symbols never above ``MAX_GROSS_EXPOSURE_USD``.

The oracle recomputes exposure by scanning the engine's open orders and positions (independent of
the engine's own exposure book).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.config.loader import load_config
from engine.core.clock import SimClock
from engine.core.events import SubmitOrder, VenueFill, VenueOrderUpdate
from engine.core.units import SCALE, to_e8
from engine.obs.metrics import EngineMetrics
from engine.security.audit import AuditChain
from engine.sim.marketsim import symbol_spec
from engine.trading.engine import Engine
from engine.trading.risk import GATE_NAMES
from engine.trading.venue_port import VenueLimits

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
PRICES = {"BTC/USDT": 65000.0, "ETH/USDT": 3200.0, "SOL/USDT": 150.0}
RISK_PCT = 2.0  # 2,000 USD on the 100k paper account
ORDER_CAP = 5000.0
POSITION_CAP = 6000.0
GROSS_CAP = 10000.0
OUTCOMES = ("fill", "partial_fill", "partial_expire", "reject", "expire", "hang")


@dataclass
class Script:
    outcome: str
    delay: int  # steps until the venue answers (0 = inside submit)
    later: int  # further steps until the rest (second fill / expiry)
    frac: float


@dataclass
class ScriptedVenue:
    """A venue double: each order plays the script queued for it, on the test's step clock."""

    name: str = "scripted"
    in_process: bool = True
    step: int = 0
    next_script: Script | None = None
    due: list[tuple[int, int, Callable[[], None]]] = field(default_factory=list)
    sink: Any = None
    on_sent: Callable[[Any], None] | None = None
    seq: int = 0

    def bind(self, sink: Any) -> None:
        self.sink = sink

    def submit(self, order: Any) -> None:
        if self.on_sent is not None:
            self.on_sent(order)
        s, self.next_script = self.next_script, None
        assert s is not None
        self.seq += 1
        vid, cid, qty = str(self.seq), order.client_order_id, order.qty_e8
        lot = symbol_spec(order.symbol).lot_size_e8
        px = to_e8(PRICES[order.symbol])
        state = {"filled": 0}

        def update(status: str, reason: str = "") -> None:
            self.sink.on_venue_update(
                VenueOrderUpdate(
                    client_order_id=cid,
                    venue_order_id=vid,
                    status=status,
                    filled_qty_e8=state["filled"],
                    ts_us=self.sink.clock.now_us(),
                    reason=reason,
                )
            )

        def fill(q: int) -> None:
            if q <= 0:
                return
            state["filled"] += q
            self.sink.on_venue_fill(
                VenueFill(
                    client_order_id=cid,
                    venue_order_id=vid,
                    trade_id=f"T{vid}-{state['filled']}",
                    symbol=order.symbol,
                    side=order.side,
                    qty_e8=q,
                    price_e8=px,
                    fee_e8=0,
                    liquidity="taker",
                    ts_us=self.sink.clock.now_us(),
                )
            )

        part = int(qty * s.frac) // lot * lot

        def first() -> None:
            if s.outcome == "hang":
                return  # no answer at all: the order stays in flight
            if s.outcome == "reject":
                update("rejected", "-2010 Account has insufficient balance")
                return
            update("accepted")
            if s.outcome == "fill":
                fill(qty)
            elif s.outcome in ("partial_fill", "partial_expire"):
                fill(part)
            elif s.outcome == "expire":
                update("expired", "IOC")

        def second() -> None:
            if s.outcome == "partial_fill":
                fill(qty - part)
            elif s.outcome == "partial_expire":
                update("expired", "remainder expired")
            elif s.outcome == "hang":  # no answer for a long time, then filled at once
                update("accepted")
                fill(qty)

        self._at(s.delay, first)
        self._at(s.delay + s.later + (20 if s.outcome == "hang" else 0), second)

    def _at(self, steps: int, fn: Callable[[], None]) -> None:
        if steps == 0:
            fn()
        else:
            self.seq += 1  # tie-break: answers due at the same step keep their order
            self.due.append((self.step + steps, self.seq, fn))

    def advance(self, check: Callable[[], None]) -> None:
        self.step += 1
        ready = sorted(d for d in self.due if d[0] <= self.step)
        self.due = [d for d in self.due if d[0] > self.step]
        for _, _, fn in ready:
            fn()
            check()

    def cancel(self, client_order_id: str, symbol: str) -> None:
        pass

    def throttle(self) -> None:
        return None

    def limits(self, symbol: str) -> VenueLimits:
        lot = symbol_spec(symbol).lot_size_e8
        return VenueLimits(step_e8=lot, min_qty_e8=lot, min_notional_e8=to_e8(5))

    async def query_order(self, client_order_id: str, symbol: str) -> None:
        return None

    def on_quote(self, *a: Any) -> None:
        pass

    async def fetch_open(self, symbol: str) -> list[Any]:
        return []

    async def fetch_fills(self, symbol: str, since_ms: int | None) -> list[Any]:
        return []

    async def fetch_balances(self) -> None:
        return None


def make_engine(venue: ScriptedVenue) -> Engine:
    cfg = load_config(
        "paper",
        env={},
        overrides={
            "risk.risk_per_trade_pct": RISK_PCT,
            "risk.max_order_notional_usd": ORDER_CAP,
            "risk.max_position_notional_usd": POSITION_CAP,
            "risk.max_gross_exposure_usd": GROSS_CAP,
            "risk.dupe_intent_window_ms": 0.0,
            "risk.max_open_positions": 3,
            "risk.max_daily_drawdown_pct": 100.0,
            "live.readiness_required": [],
            "risk.budget_orders_per_day_account": 10**6,
            "risk.budget_orders_per_day_symbol": 10**6,
            "risk.budget_orders_per_day_strategy": 10**6,
            "risk.max_trades_per_day": 10**6,
        },
    )
    lots = {s: symbol_spec(s).lot_size_e8 for s in SYMBOLS}
    return Engine(
        cfg=cfg,
        clock=SimClock(),
        venue=venue,
        audit=AuditChain(b"k" * 32),
        metrics=EngineMetrics(SYMBOLS, list(GATE_NAMES)),
        session=1,
        lot_e8=lots,
    )


def quotes(e: Engine) -> None:
    for sym, mid in PRICES.items():
        half = mid / 20_000  # 1 bp spread
        e.clock.advance_ms(1.0)  # type: ignore[attr-defined]
        e.on_quote(
            sym,
            to_e8(round(mid - half, 2)),
            to_e8(round(mid + half, 2)),
            SCALE,
            SCALE,
            e.clock.now_ns(),
        )


def bounds(e: Engine, skip: str = "") -> dict[str, tuple[int, int]]:
    """Oracle: per symbol (long bound, short bound) = filled ± every open order's remainder."""
    out = {s: (e.portfolio.positions[s].qty_e8, e.portfolio.positions[s].qty_e8) for s in SYMBOLS}
    for o in e.order_cache.open_orders.values():
        if o.client_order_id == skip:
            continue
        hi, lo = out[o.symbol]
        rem = o.qty_e8 - o.filled_qty_e8
        out[o.symbol] = (hi + rem, lo) if o.side == "buy" else (hi, lo - rem)
    return out


def usd(e: Engine, qty_e8: int, symbol: str) -> float:
    return abs(qty_e8) * e.market.mid_e8(symbol) / SCALE / SCALE


class Breach(AssertionError):
    pass


def check_order(e: Engine, order: Any) -> None:
    """At the moment an order leaves: its size and its opening part against the caps."""
    bid, ask = e.market.quotes[order.symbol][:2]
    px = ask if order.side == "buy" else bid
    notional = order.qty_e8 * px / SCALE / SCALE
    if notional > ORDER_CAP:
        raise Breach(
            f"order {order.client_order_id} {order.side} {order.symbol} notional "
            f"{notional:.2f} > MAX_ORDER_NOTIONAL_USD {ORDER_CAP}"
        )
    hi, lo = bounds(e, skip=order.client_order_id)[order.symbol]
    reducing = min(order.qty_e8, max(0, -hi if order.side == "buy" else lo))
    opening = (order.qty_e8 - reducing) * px / SCALE / SCALE
    risk_cap = e.risk.equity_e8 / SCALE * RISK_PCT / 100
    if opening > risk_cap + 1e-6:
        raise Breach(f"order {order.client_order_id} opens {opening:.2f} > risk cap {risk_cap:.2f}")


def check_books(e: Engine) -> None:
    gross = 0.0
    for sym, (hi, lo) in bounds(e).items():
        filled = usd(e, e.portfolio.positions[sym].qty_e8, sym)
        worst = max(usd(e, hi, sym) if hi > 0 else 0.0, usd(e, lo, sym) if lo < 0 else 0.0)
        if filled > POSITION_CAP + 1e-6:
            raise Breach(f"{sym} position {filled:.2f} > cap {POSITION_CAP}")
        if worst > POSITION_CAP + 1e-6:
            raise Breach(f"{sym} exposure {worst:.2f} > cap {POSITION_CAP}")
        gross += worst
    if gross > GROSS_CAP + 1e-6:
        raise Breach(f"gross exposure {gross:.2f} > cap {GROSS_CAP}")


scripts = st.builds(
    Script, st.sampled_from(OUTCOMES), st.integers(0, 6), st.integers(0, 6), st.floats(0.0, 1.0)
)
steps = st.one_of(
    st.tuples(
        st.just("order"),
        st.sampled_from(SYMBOLS),
        st.sampled_from(("buy", "sell")),
        st.floats(0.05, 3.0),
        scripts,
    ),  # size as a multiple of the order cap
    st.tuples(st.just("wait"), st.integers(1, 8)),
)


FILLED_AT_ONCE = Script("fill", 0, 0, 0.0)
HANGS = Script("hang", 0, 0, 0.0)
BUILD_LONG = [("order", "BTC/USDT", "buy", 1.0, FILLED_AT_ONCE)] * 3  # 3 x 2,000 USD: 6,000 long


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=1, max_size=60))
# the repro in small: sells that never fill all pass as "reducing" the stale filled long
# (before the fix: short bound -7,500 USD on a 6,000 cap, each order at full size)
@example(plan=BUILD_LONG + [("order", "BTC/USDT", "sell", 0.9, HANGS)] * 3)
# a reducing order is still bounded by MAX_ORDER_NOTIONAL_USD (before: 5,500 USD sent in one)
@example(plan=[*BUILD_LONG, ("order", "BTC/USDT", "sell", 1.1, FILLED_AT_ONCE)])
def test_orders_when_fills_slow_partial_or_rejected_then_no_cap_is_ever_exceeded(plan):
    venue = ScriptedVenue()
    e = make_engine(venue)
    venue.on_sent = lambda o: check_order(e, o)
    quotes(e)
    n = 0
    for step in plan:
        if step[0] == "wait":
            for _ in range(step[1]):
                quotes(e)
                venue.advance(lambda: check_books(e))
            e.refresh()
            continue
        _, sym, side, mult, script = step
        n += 1
        qty = int(ORDER_CAP * mult / PRICES[sym] * SCALE)
        venue.next_script = script
        e.submit(
            SubmitOrder(
                decision_id=f"ck-1-{n}",
                symbol=sym,
                side=side,
                qty_e8=qty,
                actor="engine",
                ts_us=e.clock.now_us(),
            )
        )
        venue.next_script = None
        check_books(e)
    for _ in range(40):  # let every scripted answer arrive
        quotes(e)
        venue.advance(lambda: check_books(e))
    assert not e.halted_reason, e.halted_reason
