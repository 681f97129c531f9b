"""ReconPanel: the last reconciliation: age, source, duration, OK/ALERT, mismatches by class.

Standing findings (an orphan still blocking its symbol) stay listed, one line each, until resolved.

Classes: ``-alert`` when the last run found mismatches (text says "ALERT"), ``-stale`` when the
last run is older than ``stale_s`` or there was none (text says "never run" / "STALE").
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.snapshot import EngineSnapshot, ReconView
from widgets._base import SnapshotMixin
from widgets._fmt import FLAG_STYLE, age, lit, second_bucket


class ReconPanel(SnapshotMixin, Static):
    """The last reconciliation: when, result, mismatches and orphans; stale after `stale_s`."""

    DEFAULT_CSS = """
    ReconPanel { border: round $panel; height: auto; }
    ReconPanel.-stale { border: round $warning; }
    ReconPanel.-alert { border: round $error; }
    """

    def __init__(self, *, stale_s: float = 900.0, **kwargs: Any) -> None:
        super().__init__("reconciliation: never run", markup=False, **kwargs)
        self.stale_s = stale_s
        self.border_title = "Reconciliation"

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.recon, second_bucket(snap.ts_us)

    def apply(self, part: Any) -> None:
        recon: ReconView | None
        recon, now_s = part
        if recon is None:
            self.update(lit("never run", FLAG_STYLE))
            self.set_class(True, "-stale")
            self.set_class(False, "-alert")
            return
        stale = now_s - recon.ts_us // 1_000_000 > self.stale_s
        text = Text(end="")
        text.append_text(lit("OK", "bold") if recon.ok else lit("ALERT", FLAG_STYLE))
        text.append(f" {age(now_s * 1_000_000, recon.ts_us)} ago")
        if stale:
            text.append_text(lit(" STALE", FLAG_STYLE))
        text.append(" · ")
        text.append_text(lit(recon.source))
        text.append(f" · {recon.duration_ms:.0f}ms\n")
        bad = [(k, n) for k, n in recon.mismatches if n]
        text.append("mismatches: " if bad else "mismatches: none")
        for i, (kind, n) in enumerate(bad):
            text.append(", " if i else "")
            text.append_text(lit(f"{kind} {n}", "bold"))
        for finding in recon.standing:
            text.append("\n")
            text.append_text(lit("standing: ", FLAG_STYLE))
            text.append_text(lit(finding))
        self.update(text)
        self.set_class(stale, "-stale")
        self.set_class(not recon.ok, "-alert")
