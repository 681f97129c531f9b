"""FillsPanel: the last fills (newest first) keyed by trade id (``KeyedTable.show``).

A fill without a trade id (paper venues may omit it) is keyed by its order and time.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from engine.snapshot import EngineSnapshot, FillView
from widgets._fmt import clock, lit, qty
from widgets.table import KeyedTable


class FillsPanel(KeyedTable):
    """The latest fills, newest first, with slippage."""

    DEFAULT_CSS = """
    FillsPanel { border: round $panel; height: 1fr; min-height: 5; }
    """
    TITLE = "Fills"
    COLUMNS = (
        ("time", "time"),
        ("symbol", "symbol"),
        ("side", "side"),
        ("qty", "qty"),
        ("price", "price"),
        ("slip", "slip bps"),
        ("order", "client id"),
        ("trade", "trade id"),
    )

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.fills

    def apply(self, part: Any) -> None:
        fills: tuple[FillView, ...] = part
        self.show(sorted(fills, key=lambda f: f.ts_us, reverse=True))

    def key(self, view: Any) -> str:
        f: FillView = view
        return f.trade_id or f"{f.client_order_id}@{f.ts_us}"

    def cells(self, view: Any) -> tuple[Text, ...]:
        f: FillView = view
        return (
            lit(clock(f.ts_us)),
            lit(f.symbol),
            lit(f.side),
            lit(qty(f.qty)),
            lit(f"{f.price:.8g}"),
            lit(f"{f.slippage_bps:+.1f}"),
            lit(f.client_order_id),
            lit(f.trade_id),
        )
