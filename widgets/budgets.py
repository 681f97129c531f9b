"""BudgetsPanel: order budgets per account / symbol / strategy, sent today vs limit.

A row whose budget is used up (left <= 0) is flagged: "OUT" in the left column and bold reverse;
the panel gets ``-exhausted`` while any budget is used up.
"""

from __future__ import annotations

from typing import Any

from engine.snapshot import BudgetView, EngineSnapshot
from widgets._fmt import FLAG_STYLE, lit
from widgets.table import KeyedTable, Row


class BudgetsPanel(KeyedTable):
    """Order budgets used and left, account and per symbol."""

    DEFAULT_CSS = """
    BudgetsPanel { border: round $panel; height: auto; max-height: 14; }
    BudgetsPanel.-exhausted { border: round $warning; }
    """
    TITLE = "Budgets"
    COLUMNS = (("scope", "scope"), ("key", "key"), ("used", "used/limit"), ("left", "left"))

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.budgets

    def apply(self, part: Any) -> None:
        budgets: tuple[BudgetView, ...] = part
        self.sync([self._row(b) for b in budgets])
        self.set_class(any(b.limit - b.used <= 0 for b in budgets), "-exhausted")

    @staticmethod
    def _row(b: BudgetView) -> Row:
        left = b.limit - b.used
        out = left <= 0
        style = FLAG_STYLE if out else ""
        return f"{b.scope}:{b.key}", (
            lit(b.scope, style),
            lit(b.key, style),
            lit(f"{b.used}/{b.limit}", style),
            lit(f"{left} OUT" if out else str(left), style),
        )
