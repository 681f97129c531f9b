"""GatesPanel: each risk gate, its state, reason, age of the state and denial count.

Active gates are flagged in the text ("ACTIVE", bold reverse) so the state reads without colour;
the panel gets the ``-active`` class while any gate is active. Tall enough (22 lines) for every
gate of the pipeline without scrolling where the screen allows, so an active cap near the end of
the pipeline is not below the fold.
"""

from __future__ import annotations

from typing import Any

from engine.snapshot import EngineSnapshot, GateView
from widgets._fmt import FLAG_STYLE, age, lit, second_bucket
from widgets.table import KeyedTable, Row


class GatesPanel(KeyedTable):
    """Every gate: state, reason, since when, denials."""

    DEFAULT_CSS = """
    GatesPanel { border: round $panel; height: auto; max-height: 22; }
    GatesPanel.-active { border: round $error; }
    """
    TITLE = "Gates"
    COLUMNS = (
        ("gate", "gate"),
        ("state", "state"),
        ("reason", "reason"),
        ("since", "since"),
        ("denials", "denials"),
    )

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.gates, second_bucket(snap.ts_us)

    def apply(self, part: Any) -> None:
        gates, now_s = part
        now_us = now_s * 1_000_000
        self.sync([self._row(g, now_us) for g in gates])
        self.set_class(any(g.active for g in gates), "-active")

    @staticmethod
    def _row(g: GateView, now_us: int) -> Row:
        style = FLAG_STYLE if g.active else ""
        return g.name, (
            lit(g.name, style),
            lit("ACTIVE" if g.active else "ok", style),
            lit(g.reason or "-"),
            lit(age(now_us, g.since_us)),
            lit(g.denials),
        )
