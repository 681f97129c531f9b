"""Gates that keep orders inside what the venue will take, and only while it takes them.

- ``VenueThrottleGate`` (``venue_throttle``): no new order while the venue adapter is backing off
  after a rate limit (HTTP 429 / -1003) or the IP is banned (HTTP 418); the standing reason says
  which, and until when. It reads only the venue port's public ``throttle()``.
- ``DecisionTtlGate`` (``decision_ttl``): a decision older than ``oms.decision_ttl_ms`` is never
  sent. The venue adapter checks the same deadline again at the moment it really sends (an order
  can wait there through a back-off); see ``engine.venues.ccxt_venue``.
- ``VenueLimitsGate`` (``venue_limits``): the last sizing gate, after every gate that shrinks an
  order: it rounds the size down to the venue's amount step and denies an order below the venue's
  minimum quantity or minimum notional, so a "Filter failure" never happens at the venue.

Invariants: gates only read; they fail closed (a raising ``throttle``/``limits`` is a denial,
see ``engine.trading.gates``); sizing only ever shrinks ``ctx.qty_e8``.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.core.units import SCALE
from engine.trading.gates import GateContext
from engine.trading.venue_port import VenueLimits, VenueThrottle

# A market order's notional is checked by the venue at its own (average) price, not at our touch
# price: keep this much headroom above the minimum so a borderline order is not refused there.
MARKET_NOTIONAL_HEADROOM = 1.01


class VenueThrottleGate:
    name = "venue_throttle"

    def __init__(self, throttle: Callable[[], VenueThrottle | None]) -> None:
        self.throttle = throttle

    def probe(self, now_us: int) -> str | None:
        t = self.throttle()
        return t.reason if t is not None else None

    def check(self, ctx: GateContext) -> str | None:
        return self.probe(ctx.now_us)


class DecisionTtlGate:
    name = "decision_ttl"

    def __init__(self, ttl_ms: float) -> None:
        self.ttl_us = int(ttl_ms * 1000)

    def check(self, ctx: GateContext) -> str | None:
        age = ctx.now_us - ctx.decision_us
        if ctx.decision_us and age > self.ttl_us:
            return expired_reason(age, self.ttl_us)
        return None


def expired_reason(age_us: int, ttl_us: int, detail: str = "") -> str:
    """The one wording used by the gate and the venue adapter (operators grep for it)."""
    tail = f"; {detail}" if detail else ""
    return (
        f"decision expired before send (age {age_us / 1000:.0f} ms > TTL "
        f"{ttl_us / 1000:.0f} ms){tail}"
    )


class VenueLimitsGate:
    """Rounds the quantity down to the venue's step and denies what the venue would reject (below
    its minimum quantity or notional), before the order leaves."""

    name = "venue_limits"

    def __init__(self, limits: Callable[[str], VenueLimits]) -> None:
        self.limits = limits

    def check(self, ctx: GateContext) -> str | None:
        lim = self.limits(ctx.symbol)
        step = max(lim.step_e8, 1)
        qty = ctx.qty_e8 // step * step
        if qty != ctx.qty_e8:
            ctx.notes.append(
                (
                    self.name,
                    f"rounded {ctx.qty_e8 / SCALE:g} -> {qty / SCALE:g} (step {step / SCALE:g})",
                )
            )
            ctx.qty_e8 = qty
        if qty <= 0 or qty < lim.min_qty_e8:
            return (
                f"{ctx.symbol}: size {qty / SCALE:g} below the venue minimum quantity "
                f"{max(lim.min_qty_e8, step) / SCALE:g} (LOT_SIZE)"
            )
        if ctx.price_e8 <= 0:
            return f"{ctx.symbol}: no reference price to check the venue minimum notional"
        need = lim.min_notional_e8
        if need and ctx.order_type == "market":  # the venue prices a market order, not us
            need = int(need * MARKET_NOTIONAL_HEADROOM)
        if ctx.notional_e8 < need:
            margin = (
                f" + {(MARKET_NOTIONAL_HEADROOM - 1) * 100:g} % headroom for a market order"
                if need != lim.min_notional_e8
                else ""
            )
            return (
                f"{ctx.symbol}: notional {ctx.notional_e8 / SCALE:.2f} below the venue minimum "
                f"notional {lim.min_notional_e8 / SCALE:g}{margin} (NOTIONAL)"
            )
        return None
