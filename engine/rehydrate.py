"""Start-up rehydrate: load open orders and positions, then settle every open order with the venue.

Invariants: an intent the venue has no trace of becomes ``never_sent`` and is never re-sent
automatically (a new decision gets a new client id); a venue answer is applied through the same
``on_venue_update`` path as live reports, so start-up and runtime share one state machine.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from engine import oms
from engine.oms import Order
from engine.positions import Position

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger("engine.rehydrate")


def adopt(e: Engine, orders: list[Order], positions: list[tuple[Any, ...]]) -> None:
    """Load open orders and positions from the DB at start (before any tick)."""
    for o in orders:
        e.orders[o.client_order_id] = o
        if o.is_open:
            e.open_orders[o.client_order_id] = o
    for row in positions:
        sym = str(row[0])
        p = e.positions.get(sym) or Position(sym)
        p.qty_e8, p.avg_price_e8, p.realized_pnl_e8, p.fees_e8, p.updated_us = (
            int(row[1]), int(row[2]), int(row[3]), int(row[4]), int(row[5])
        )  # fmt: skip
        e.positions[sym] = p
        e.risk.position_qty[sym] = p.qty_e8
        e.realized_e8 += p.realized_pnl_e8
        e.fees_e8 += p.fees_e8


async def resolve_open_orders(e: Engine) -> dict[str, int]:
    """Ask the venue about every open order; adopt its answer, or mark never-sent.

    An intent the venue has no trace of is never re-sent automatically: a new decision
    gets a new client id.
    """
    counts = {"adopted": 0, "never_sent": 0, "unchanged": 0}
    for o in list(e.open_orders.values()):
        u = await e.venue.query_order(o.client_order_id, o.symbol)
        if u is None:
            was = o.status
            if o.transition(oms.NEVER_SENT, e.clock.now_us(), "venue has no such order"):
                e._order_changed(o, was)
                counts["never_sent"] += 1
            else:
                log.error("open order %s unknown to the venue", o.client_order_id)
                counts["unchanged"] += 1
            continue
        before = (o.status, o.venue_order_id)
        e.on_venue_update(u)
        counts["adopted" if (o.status, o.venue_order_id) != before else "unchanged"] += 1
    return counts
