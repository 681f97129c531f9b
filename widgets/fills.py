"""FillsPanel: the last fills (newest first) keyed by trade id."""

from __future__ import annotations

from typing import Any

from engine.snapshot import EngineSnapshot, FillView
from widgets._base import KeyedTable, Row
from widgets._fmt import clock, lit, qty


class FillsPanel(KeyedTable):
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
        ordered = sorted(fills, key=lambda f: f.ts_us, reverse=True)
        rows: dict[str, Row] = {}
        for f in ordered:
            key = f.trade_id or f"{f.client_order_id}@{f.ts_us}"
            rows.setdefault(key, self._row(key, f))
        self.sync(list(rows.values()))

    @staticmethod
    def _row(key: str, f: FillView) -> Row:
        return key, (
            lit(clock(f.ts_us)),
            lit(f.symbol),
            lit(f.side),
            lit(qty(f.qty)),
            lit(f"{f.price:.8g}"),
            lit(f"{f.slippage_bps:+.1f}"),
            lit(f.client_order_id),
            lit(f.trade_id),
        )
