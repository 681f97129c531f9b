"""The exposure book: per symbol, the filled position plus every open and in-flight order.

Role: the one owner of "how much could this account hold". Every sizing and limit gate reads it;
nothing else keeps a second copy.

Definitions (signed quantities in e8 base units, per symbol):
- ``filled``: the position from fills;
- ``open_buy`` / ``open_sell``: the unfilled remainder of every open order on that side — pending,
  submitted, unknown, accepted and partially filled (only its remainder);
- long bound ``hi = filled + open_buy``: the position if every open buy fills and no sell does;
- short bound ``lo = filled - open_sell``: the position if every open sell fills and no buy does;
- ``net = filled + open_buy - open_sell``: the position once everything fills (what a strategy
  aims at);
- ``worst = max(hi, -lo, 0)``: the largest absolute position any outcome of the open orders can
  leave.

Caps use the bounds, never ``net``: an opposite order in flight may still be rejected, expire or
be cancelled, so it cannot be counted on to offset a new one. For the same reason only the part of
an order that reduces the bound on its own side is "reducing" (``reducing_part``).

Invariants:
- Incremental, O(1) per event: ``sync(order)`` after anything that can change an order's status
  or filled quantity; ``set_filled`` after each fill. No event scans the orders.
- ``sync`` is idempotent: it remembers the remainder it counted for each client id and applies
  only the difference, so a repeated call, or an order it never saw (adopted by reconciliation,
  recovered from the intent journal), is counted exactly once; a terminal order counts nothing.
- ``rebuild`` restores the book from the open orders and positions loaded at start.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from engine.trading.oms import OPEN


class OrderLike(Protocol):
    client_order_id: str
    symbol: str
    side: str
    qty_e8: int
    filled_qty_e8: int
    status: str


class ExposureBook:
    """Per symbol: filled position plus every open, unknown and partially filled remainder, by side.

    The one figure every cap reads, so an order in flight counts as if it had filled."""

    __slots__ = ("_counted", "filled", "known", "last_px_e8", "open_buy", "open_sell")

    def __init__(self) -> None:
        self.filled: dict[str, int] = {}
        self.open_buy: dict[str, int] = {}
        self.open_sell: dict[str, int] = {}
        self.known: set[str] = set()  # every symbol ever counted (a handful)
        self.last_px_e8: dict[str, int] = {}  # last fill / entry price: values a symbol w/o quote
        self._counted: dict[str, int] = {}  # client id -> remainder counted in open_buy/sell

    # --- events ------------------------------------------------------------------------------

    def sync(self, o: OrderLike) -> None:
        """Count ``o``'s current open remainder (0 once terminal) instead of what was counted."""
        cid = o.client_order_id
        rem = o.qty_e8 - o.filled_qty_e8 if o.status in OPEN else 0
        rem = max(rem, 0)
        prev = self._counted.get(cid, 0)
        if rem == prev:
            return
        if rem:
            self._counted[cid] = rem
        else:
            del self._counted[cid]
        side = self.open_buy if o.side == "buy" else self.open_sell
        side[o.symbol] = side.get(o.symbol, 0) + rem - prev
        if o.symbol not in self.known:
            self.known.add(o.symbol)

    def set_filled(self, symbol: str, qty_e8: int, price_e8: int = 0) -> None:
        self.filled[symbol] = qty_e8
        self.known.add(symbol)
        if price_e8 > 0:
            self.last_px_e8[symbol] = price_e8

    def rebuild(self, orders: Iterable[OrderLike], positions: dict[str, tuple[int, int]]) -> None:
        """Start-up: ``positions`` is symbol -> (filled qty, entry price)."""
        self.filled.clear()
        self.open_buy.clear()
        self.open_sell.clear()
        self.known.clear()
        self._counted.clear()
        for sym, (qty, px) in positions.items():
            self.set_filled(sym, qty, px)
        for o in orders:
            self.sync(o)

    # --- reads -------------------------------------------------------------------------------

    def hi(self, symbol: str) -> int:
        return self.filled.get(symbol, 0) + self.open_buy.get(symbol, 0)

    def lo(self, symbol: str) -> int:
        return self.filled.get(symbol, 0) - self.open_sell.get(symbol, 0)

    def net(self, symbol: str) -> int:
        return self.hi(symbol) - self.open_sell.get(symbol, 0)

    def worst(self, symbol: str) -> int:
        return max(self.hi(symbol), -self.lo(symbol), 0)

    def reducing_part(self, symbol: str, side: str, qty_e8: int) -> int:
        """How much of an order of ``qty_e8`` only shrinks the worst case on its own side: a buy
        reduces the short that remains even if every open buy fills, a sell the long that
        remains even if every open sell fills. The rest of the order opens (or adds) exposure."""
        room = -self.hi(symbol) if side == "buy" else self.lo(symbol)
        return min(max(qty_e8, 0), max(room, 0))

    def exposed(self, symbol: str) -> bool:
        """A position or any open order on the symbol."""
        return bool(
            self.filled.get(symbol) or self.open_buy.get(symbol) or self.open_sell.get(symbol)
        )

    def exposed_count(self) -> int:
        return sum(1 for s in self.known if self.exposed(s))

    def open_positions(self) -> int:
        return sum(1 for q in self.filled.values() if q)

    def counted(self) -> int:
        """Orders currently counted (for checks and tests)."""
        return len(self._counted)
