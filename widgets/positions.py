"""PositionsPanel: per symbol position, average price, realized and unrealized PnL, bid/ask.

Price history pictures are a separate widget (``PriceSparklines``) so the table stays compact.
"""

from __future__ import annotations

from typing import Any

from engine.snapshot import EngineSnapshot
from widgets._fmt import lit, qty, signed
from widgets.table import KeyedTable, Row

PosPart = tuple[str, float, float, float, float, float, float]


class PositionsPanel(KeyedTable):
    """Per symbol: position, average price, realised and unrealised PnL, bid/ask."""

    DEFAULT_CSS = """
    PositionsPanel { border: round $panel; height: auto; max-height: 12; }
    """
    TITLE = "Positions"
    COLUMNS = (
        ("symbol", "symbol"),
        ("position", "position"),
        ("avg", "avg"),
        ("realized", "realized"),
        ("unrealized", "unrealized"),
        ("bid", "bid"),
        ("ask", "ask"),
    )

    def select(self, snap: EngineSnapshot) -> Any:
        return tuple(
            (s.symbol, s.position, s.avg_price, s.realized, s.unrealized, s.bid, s.ask)
            for s in snap.symbols
        )

    def apply(self, part: Any) -> None:
        rows: tuple[PosPart, ...] = part
        self.sync([self._row(p) for p in rows])

    @staticmethod
    def _row(p: PosPart) -> Row:
        symbol, pos, avg, realized, unrealized, bid, ask = p
        return symbol, (
            lit(symbol),
            lit(qty(pos)),
            lit(f"{avg:.8g}" if pos else "-"),
            lit(signed(realized)),
            lit(signed(unrealized)),
            lit(f"{bid:.8g}" if bid else "-"),
            lit(f"{ask:.8g}" if ask else "-"),
        )
