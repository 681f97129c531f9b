"""The order cache: every order of this session in memory, the open ones, and bounded windows.

Role: the one owner of the engine's orders. The order path adds (``add``), venue reports move them
(the engine calls ``changed`` / ``closed``), each flush hands the changed ones to the writer
(``dirty_orders``, then ``flushed``), and screens read bounded windows (``latest``,
``fill_ratio``) without scanning every order.

Invariants:
- ``open_orders`` is exactly the orders of ``orders`` that are not terminal.
- Every window has a fixed bound (``RECENT_ORDERS``, ``CLOSED_WINDOW``) whatever the history; an
  order enters its symbol's fill window once, when it closes (not rejected).
- ``prune`` forgets only closed orders already handed to the writer: the DB has every order, and a
  late fill for a forgotten one is settled against the DB by the reconciler, never applied blind.
Loop-thread only, like the rest of the engine state.
"""

from __future__ import annotations

from collections import deque

from engine.trading import oms
from engine.trading.oms import Order
from engine.trading.windows import forget_oldest

RECENT_ORDERS = 100  # the orders panel shows the 50 most recently updated
CLOSED_WINDOW = 200  # fill ratio per symbol: over its last 200 closed orders


class OrderCache:
    """Orders in memory, open orders, changed-since-flush and the screens' windows."""

    __slots__ = ("dirty_orders", "open_orders", "orders", "recent_closed", "recent_orders")

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.open_orders: dict[str, Order] = {}
        # changed since the last flush: handed to the writer as upserts
        self.dirty_orders: dict[str, Order] = {}
        self.recent_orders: dict[str, Order] = {}  # last updated, oldest first (bounded)
        self.recent_closed: dict[str, deque[tuple[int, int]]] = {}  # symbol -> (qty, filled)

    def add(self, o: Order) -> None:
        """A new order: known and open from now on."""
        self.orders[o.client_order_id] = o
        self.open_orders[o.client_order_id] = o

    def closed(self, o: Order) -> None:
        """An order reached a terminal state: no longer open; unless rejected it enters its
        symbol's fill window."""
        self.open_orders.pop(o.client_order_id, None)
        if o.status != oms.REJECTED:
            w = self.recent_closed.get(o.symbol)
            if w is None:
                w = self.recent_closed[o.symbol] = deque(maxlen=CLOSED_WINDOW)
            w.append((o.qty_e8, o.filled_qty_e8))

    def flushed(self) -> None:
        """The dirty orders were handed to the writer: they become the newest of the recent
        window (dict order = last update order) and are clean again."""
        recent = self.recent_orders
        for cid, o in self.dirty_orders.items():
            recent.pop(cid, None)
            recent[cid] = o
        while len(recent) > RECENT_ORDERS:
            del recent[next(iter(recent))]
        self.dirty_orders.clear()

    def prune(self, limit: int) -> None:
        """Bounded memory: above ``limit`` orders, forget the oldest closed ones already handed
        to the writer, down to 4/5 of it."""
        if len(self.orders) <= limit:
            return
        dirty = self.dirty_orders
        forget_oldest(
            self.orders,
            limit * 4 // 5,
            lambda cid, o: o.status in oms.TERMINAL and cid not in dirty,
        )

    def fill_ratio(self, symbol: str) -> float:
        """Filled / asked over the symbol's last closed orders (0.0 before any)."""
        w = self.recent_closed.get(symbol)
        asked = sum(q for q, _ in w) if w else 0
        return sum(f for _, f in w) / asked if w and asked else 0.0

    def fill_ratio_all(self) -> float:
        """Filled / asked over every symbol's last closed orders (0.0 before any)."""
        asked = filled = 0
        for w in self.recent_closed.values():
            for q, f in w:
                asked += q
                filled += f
        return filled / asked if asked else 0.0

    def latest(self, n: int = 50) -> list[Order]:
        """The ``n`` most recently updated orders, without scanning every order in memory."""
        dirty = self.dirty_orders  # updated since the last flush: the newest updates
        recent = self.recent_orders
        cands = [o for cid, o in recent.items() if cid not in dirty] + list(dirty.values())
        # newest update first; the stable sort keeps that order among equal timestamps
        return sorted(reversed(cands), key=lambda o: o.updated_us, reverse=True)[:n]
