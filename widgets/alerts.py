"""AlertsPanel: a log of alerts, appended as new ones arrive in the snapshot's bounded tail.

The snapshot carries the last N alerts; new ones are found by overlapping the previous tail with
the new one, so a refresh writes only the alerts not yet shown (never rewrites the log). Alerts
are written literally. The panel gets ``-active`` while the snapshot carries any alert.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import RichLog

from engine.snapshot import EngineSnapshot
from widgets._base import SnapshotMixin
from widgets._fmt import lit


def new_items(prev: tuple[str, ...], cur: tuple[str, ...]) -> tuple[str, ...]:
    """Items of ``cur`` after the longest suffix of ``prev`` that is a prefix of ``cur``."""
    for k in range(min(len(prev), len(cur)), 0, -1):
        if prev[-k:] == cur[:k]:
            return cur[k:]
    return cur


class AlertsPanel(SnapshotMixin, RichLog):
    DEFAULT_CSS = """
    AlertsPanel { border: round $panel; height: 1fr; min-height: 4; }
    AlertsPanel.-active { border: round $warning; }
    """

    def __init__(self, *, max_lines: int = 200, **kwargs: Any) -> None:
        super().__init__(max_lines=max_lines, wrap=True, markup=False, highlight=False, **kwargs)
        self.border_title = "Alerts"
        self._shown: tuple[str, ...] = ()
        self.written: int = 0

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.alerts

    def apply(self, part: Any) -> None:
        alerts: tuple[str, ...] = part
        for alert in new_items(self._shown, alerts):
            self.write(lit(alert))
            self.written += 1
        self._shown = alerts
        self.set_class(bool(alerts), "-active")
