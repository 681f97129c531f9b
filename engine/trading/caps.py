"""Sizing gates: the per-trade risk cap and the exposure caps (per symbol and account gross).

Every figure is measured against the exposure book (``engine/trading/exposure.py``): filled position plus
every open and in-flight order. Invariants:
- A sizing gate only shrinks ``ctx.qty_e8``, in whole lots, and says why in ``ctx.notes`` (a
  ``scale`` gate event); when less than one lot fits, the order is denied (a ``deny`` event).
- The reducing part of an order (``ctx.reducing_e8``) is exempt from the per-trade *risk* cap (it
  adds no risk) and, by construction, always fits the exposure caps (it lowers the worst case);
  MAX_ORDER_NOTIONAL_USD binds the whole order (see ``engine/trading/risk.py``).
- Values are at the higher of the order's reference price and the mid, so a sell (valued at the
  bid) never understates a position; a symbol with exposure and no price denies (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.core.units import SCALE
from engine.trading.gates import GateContext

if TYPE_CHECKING:
    from engine.trading.risk import RiskState


def fit(ctx: GateContext, room_e8: int, lot: int, gate: str, why: str) -> str | None:
    """Shrink ``ctx.qty_e8`` to ``room_e8`` in whole lots (noting why); deny below one lot."""
    if ctx.qty_e8 <= room_e8:
        return None
    qty = room_e8 // lot * lot
    if qty <= 0:
        return f"{ctx.symbol}: {why}: less than one lot fits"
    ctx.notes.append((gate, f"sized {ctx.qty_e8 / SCALE:g} -> {qty / SCALE:g} ({why})"))
    ctx.qty_e8 = qty
    return None


class RiskPerTradeGate:
    """Sizing: the opening part ≤ equity × RISK_PER_TRADE_PCT, the whole order ≤
    MAX_ORDER_NOTIONAL_USD, in whole lots (the reducing part adds no risk; see the module doc)."""

    name = "risk_per_trade"

    def __init__(
        self,
        risk: RiskState,
        pct: float,
        max_notional_usd: float,
        lot_e8: Callable[[str], int],
        mark_e8: Callable[[str], int] = lambda _s: 0,
    ) -> None:
        self.risk = risk
        self.pct = pct
        self.max_notional_e8 = int(max_notional_usd * SCALE)
        self.lot_e8 = lot_e8
        self.mark_e8 = mark_e8

    def check(self, ctx: GateContext) -> str | None:
        if ctx.price_e8 <= 0:
            return f"{ctx.symbol}: no reference price for sizing"
        px = max(ctx.price_e8, self.mark_e8(ctx.symbol))  # a sell is never valued below mid
        risk_cap = int(self.risk.equity_e8 * self.pct / 100.0)
        lot = self.lot_e8(ctx.symbol)
        reducing = ctx.reducing_e8
        room = reducing + max(risk_cap, 0) * SCALE // px
        if ctx.qty_e8 > room:  # reasons are formatted only when used (hot path)
            why = f"risk cap {risk_cap / SCALE:.2f}" + (
                f" beyond {reducing / SCALE:g} reducing" if reducing else ""
            )
            denied = fit(ctx, room, lot, self.name, why)
            if denied is not None:
                return denied
        cap = self.max_notional_e8
        room = cap * SCALE // px
        if ctx.qty_e8 <= room:
            return None
        return fit(ctx, room, lot, self.name, f"order cap {cap / SCALE:.2f}")


class _ExposureCap:
    """What both exposure caps share: the book, the cap, lots and prices (mid, else last fill)."""

    def __init__(
        self,
        risk: RiskState,
        max_usd: float,
        lot_e8: Callable[[str], int],
        mark_e8: Callable[[str], int],
    ) -> None:
        self.book = risk.exposure
        self.cap_e8 = int(max_usd * SCALE)
        self.lot_e8 = lot_e8
        self.mark_e8 = mark_e8

    def _price(self, symbol: str) -> int:
        return self.mark_e8(symbol) or self.book.last_px_e8.get(symbol, 0)


class PositionCapGate(_ExposureCap):
    """MAX_POSITION_NOTIONAL_USD: per symbol, the worst-case position on the order's side (filled +
    every open order on that side + this one) stays within the cap, valued at the higher of the
    order's reference price and the mid. Shrinks to fit; denies when less than one lot fits."""

    name = "max_position_notional"

    def check(self, ctx: GateContext) -> str | None:
        px = max(ctx.price_e8, self._price(ctx.symbol))
        if px <= 0:
            return f"{ctx.symbol}: no reference price to value the position"
        cap_qty = self.cap_e8 * SCALE // px
        b = self.book
        room = cap_qty - b.hi(ctx.symbol) if ctx.side == "buy" else cap_qty + b.lo(ctx.symbol)
        if ctx.qty_e8 <= room:
            return None
        why = f"position cap {self.cap_e8 / SCALE:.2f}"
        return fit(ctx, room, self.lot_e8(ctx.symbol), self.name, why)


class GrossExposureGate(_ExposureCap):
    """MAX_GROSS_EXPOSURE_USD: the sum over symbols of each worst-case position, valued at mid
    (this order's symbol at the higher of its reference price and the mid), stays within the cap;
    an order that does not raise its symbol's worst case always fits. A symbol with exposure and
    no price at all denies (fail closed)."""

    name = "max_gross_exposure"

    def check(self, ctx: GateContext) -> str | None:
        sym, b = ctx.symbol, self.book
        others = 0
        for s in b.known:  # a handful of symbols: no order is scanned
            if s != sym:
                w = b.worst(s)
                if not w:
                    continue
                px_s = self._price(s)
                if px_s <= 0:
                    return f"{s}: exposure with no price to value it (gross cap fails closed)"
                others += w * px_s // SCALE
        px = max(ctx.price_e8, self._price(sym))
        if px <= 0:
            return f"{sym}: no reference price to value the exposure"
        limit = (self.cap_e8 - others) * SCALE // px  # worst case this symbol may reach
        hi, lo = b.hi(sym), b.lo(sym)
        room = max(limit, -lo) - hi if ctx.side == "buy" else max(limit, hi) + lo
        if ctx.qty_e8 <= room:
            return None
        why = f"gross cap {self.cap_e8 / SCALE:.2f}, {others / SCALE:.2f} elsewhere"
        return fit(ctx, room, self.lot_e8(sym), self.name, why)
