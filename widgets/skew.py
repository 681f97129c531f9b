"""SkewPanel: local clock vs venue clock skew in ms, with a sparkline of its recent history.

The panel gets ``-warn`` when |skew| exceeds ``warn_ms`` (the value line also says "HIGH").
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from engine.snapshot import EngineSnapshot
from widgets._base import SnapshotMixin
from widgets._fmt import lit


class SkewPanel(SnapshotMixin, Widget):
    """Local vs venue clock skew (ms) with a sparkline of its recent history."""

    DEFAULT_CSS = """
    SkewPanel { border: round $panel; height: auto; }
    SkewPanel.-warn { border: round $warning; }
    SkewPanel > Static { height: 1; }
    SkewPanel > Sparkline { height: 1; }
    """

    def __init__(self, *, warn_ms: float = 250.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.warn_ms = warn_ms
        self.border_title = "Clock skew"
        self.value = Static("skew -", markup=False)
        self.sparkline = Sparkline([])

    def compose(self) -> ComposeResult:
        yield self.value
        yield self.sparkline

    def select(self, snap: EngineSnapshot) -> Any:
        return round(snap.skew_ms, 1), snap.skew_history

    def apply(self, part: Any) -> None:
        skew, history = part
        high = abs(skew) > self.warn_ms
        self.value.update(lit(f"skew {skew:+.1f}ms" + (" HIGH" if high else " ok")))
        self.sparkline.data = [abs(v) for v in history]
        self.set_class(high, "-warn")
