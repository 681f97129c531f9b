"""Start-up rehydrate, first half: load open orders and positions from the DB into the engine,
and rebuild the exposure book from them (every limit counts open orders from the first tick on).

The second half — settling every open order with the venue — is the reconciler's start-up run
(``engine.runtime.reconcile``), the same code path as periodic runs and ``cockpit reconcile``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from engine.trading.oms import Order
from engine.trading.positions import Position

if TYPE_CHECKING:
    from engine.trading.engine import Engine

log = logging.getLogger("engine.runtime.rehydrate")


def adopt(e: Engine, orders: list[Order], positions: list[tuple[Any, ...]]) -> None:
    """Load open orders and positions from the DB at start (before any tick)."""
    for o in orders:
        e.order_cache.orders[o.client_order_id] = o
        if o.is_open:
            e.order_cache.open_orders[o.client_order_id] = o
    for row in positions:
        sym = str(row[0])
        p = e.portfolio.positions.get(sym) or Position(sym)
        p.qty_e8, p.avg_price_e8, p.realized_pnl_e8, p.fees_e8, p.updated_us = (
            int(row[1]),
            int(row[2]),
            int(row[3]),
            int(row[4]),
            int(row[5]),
        )
        e.portfolio.positions[sym] = p
        e.portfolio.realized_e8 += p.realized_pnl_e8
        e.portfolio.fees_e8 += p.fees_e8
    # exposure = these positions + every open order loaded (including journal-recovered intents)
    e.exposure.rebuild(
        e.order_cache.open_orders.values(),
        {s: (p.qty_e8, p.avg_price_e8) for s, p in e.portfolio.positions.items()},
    )
