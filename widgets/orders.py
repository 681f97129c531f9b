"""OrdersPanel: the last orders (newest first) keyed by client order id.

A row is rebuilt when its order's view changes (status, fill) and disappears when the order leaves
the snapshot's bounded list (``KeyedTable.show``). The venue's reason is shown literally. Rejected / errored orders are
flagged (bold reverse).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from engine.snapshot import EngineSnapshot, OrderView
from widgets._fmt import FLAG_STYLE, clock, lit, qty
from widgets.table import KeyedTable

BAD_STATUSES = frozenset({"rejected", "error", "unknown", "never_sent", "failed"})


class OrdersPanel(KeyedTable):
    """The most recently updated orders and their states."""

    DEFAULT_CSS = """
    OrdersPanel { border: round $panel; height: 1fr; min-height: 5; }
    """
    TITLE = "Orders"
    COLUMNS = (
        ("id", "client id"),
        ("symbol", "symbol"),
        ("side", "side"),
        ("qty", "qty"),
        ("filled", "filled"),
        ("status", "status"),
        ("reason", "reason"),
        ("time", "updated"),
    )

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.orders

    def apply(self, part: Any) -> None:
        orders: tuple[OrderView, ...] = part
        self.show(sorted(orders, key=lambda o: o.updated_us, reverse=True))

    def key(self, view: Any) -> str:
        o: OrderView = view
        return o.client_order_id

    def cells(self, view: Any) -> tuple[Text, ...]:
        o: OrderView = view
        style = FLAG_STYLE if o.status in BAD_STATUSES else ""
        return (
            lit(o.client_order_id),
            lit(o.symbol),
            lit(o.side),
            lit(qty(o.qty)),
            lit(qty(o.filled)),
            lit(o.status, style),
            lit(o.reason or "-"),
            lit(clock(o.updated_us)),
        )
