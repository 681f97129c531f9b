"""PriceSparklines: one line per symbol, the symbol and a sparkline of its recent mid prices.

Lines are keyed by symbol: new symbols mount a line, gone symbols remove theirs, others only get
new data. Symbols are shown literally and never used as DOM ids (they may hold '/' or ':').
"""

from __future__ import annotations

from typing import Any

from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, Sparkline

from engine.snapshot import EngineSnapshot
from widgets._base import SnapshotMixin
from widgets._fmt import lit


class _PriceLine(Horizontal):
    def __init__(self, symbol: str) -> None:
        self.label = Label(lit(symbol), markup=False)
        self.last = Label("-", markup=False)
        self.sparkline = Sparkline([])
        super().__init__(self.label, self.sparkline, self.last)

    def show(self, prices: tuple[float, ...]) -> None:
        self.sparkline.data = list(prices)
        self.last.update(lit(f"{prices[-1]:.8g}" if prices else "-"))


class PriceSparklines(SnapshotMixin, Widget):
    """One line per symbol: a sparkline of its recent mid prices."""

    DEFAULT_CSS = """
    PriceSparklines { border: round $panel; height: auto; }
    PriceSparklines _PriceLine { height: 1; }
    PriceSparklines _PriceLine > Label { width: 12; }
    PriceSparklines _PriceLine > Sparkline { width: 1fr; height: 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Prices"
        self.lines: dict[str, _PriceLine] = {}
        self._data: dict[str, tuple[float, ...]] = {}

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.price_history

    def apply(self, part: Any) -> None:
        history: dict[str, tuple[float, ...]] = dict(part)
        for symbol in [s for s in self.lines if s not in history]:
            self.lines.pop(symbol).remove()
            self._data.pop(symbol, None)
        for symbol, prices in history.items():
            line = self.lines.get(symbol)
            if line is None:
                line = self.lines[symbol] = _PriceLine(symbol)
                self.mount(line)
            if self._data.get(symbol) != prices:
                line.show(prices)
                self._data[symbol] = prices
