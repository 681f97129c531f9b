"""PnlPanel: equity and PnL with a sparkline of PnL history, and a sparkline of order latency.

The panel gets ``-loss`` while PnL is negative (the figure carries its sign, so it reads without
colour).
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, Sparkline, Static

from engine.snapshot import EngineSnapshot
from widgets._base import SnapshotMixin
from widgets._fmt import lit, money, ms, signed


class PnlPanel(SnapshotMixin, Widget):
    """Equity and PnL, with sparklines of PnL history and order latency."""

    DEFAULT_CSS = """
    PnlPanel { border: round $panel; height: auto; }
    PnlPanel.-loss { border: round $error; }
    PnlPanel > Static { height: 1; }
    PnlPanel Horizontal { height: 1; }
    PnlPanel Horizontal > Label { width: 9; }
    PnlPanel Sparkline { width: 1fr; height: 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "PnL"
        self.figures = Static("equity -", markup=False)
        self.pnl_line = Sparkline([])
        self.latency_line = Sparkline([])
        self.latency_label = Label("lat -", markup=False)

    def compose(self) -> ComposeResult:
        yield self.figures
        with Horizontal():
            yield Label("pnl", markup=False)
            yield self.pnl_line
        with Horizontal():
            yield self.latency_label
            yield self.latency_line

    def select(self, snap: EngineSnapshot) -> Any:
        return (
            round(snap.equity, 2),
            round(snap.pnl, 2),
            snap.pnl_history,
            snap.latency_history_ms,
        )

    def apply(self, part: Any) -> None:
        equity, pnl, pnl_history, latency = part
        self.figures.update(lit(f"equity {money(equity)}  pnl {signed(pnl)}"))
        self.pnl_line.data = list(pnl_history)
        self.latency_line.data = list(latency)
        self.latency_label.update(lit(f"lat {ms(latency[-1])}" if latency else "lat -"))
        self.set_class(pnl < 0, "-loss")
