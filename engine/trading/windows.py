"""Bounded recent windows over orders, for screens and KPIs: no scan of every order in memory.

Role: the snapshot (read by widgets) and the telemetry (metrics, DB rows) both read these; this
module imports nothing from the engine, so the widgets' read-only import contract holds.
Invariants: every window has a fixed bound (``RECENT_ORDERS``, ``CLOSED_WINDOW``) whatever the
session's history; an order enters its symbol's fill window once, when it closes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

RECENT_ORDERS = 100  # the orders panel shows the 50 most recently updated
CLOSED_WINDOW = 200  # fill ratio per symbol: over its last 200 closed orders


def note_closed(e: Any, o: Any) -> None:
    """An order reached a terminal state (not rejected): it enters its symbol's fill window."""
    w = e.recent_closed.get(o.symbol)
    if w is None:
        w = e.recent_closed[o.symbol] = deque(maxlen=CLOSED_WINDOW)
    w.append((o.qty_e8, o.filled_qty_e8))


def fill_ratio(e: Any, symbol: str) -> float:
    w = e.recent_closed.get(symbol)
    asked = sum(q for q, _ in w) if w else 0
    return sum(f for _, f in w) / asked if w and asked else 0.0


def latest_orders(e: Any, n: int = 50) -> list[Any]:
    """The ``n`` most recently updated orders, without scanning every order in memory."""
    dirty = e.dirty_orders  # updated since the last flush: the newest updates
    cands = [o for cid, o in e.recent_orders.items() if cid not in dirty] + list(dirty.values())
    # newest update first; the stable sort keeps that order among equal timestamps
    return sorted(reversed(cands), key=lambda o: o.updated_us, reverse=True)[:n]


def p95(values: Any) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] if ordered else 0.0


def forget_oldest(
    orders: dict[str, Any], target: int, removable: Callable[[str, Any], bool]
) -> None:
    """Bounded memory: drop the oldest (insertion order) removable orders until ``target`` remain
    or none is removable; open orders are never removable."""
    for cid in list(orders):
        if len(orders) <= target:
            break
        if removable(cid, orders[cid]):
            del orders[cid]
