"""ModelPanel: champion, challenger, pinned model, canary share, PSI per model, canary balance.

Canary balance compares the observed canary_trades / total_trades with canary_share; when the
difference is over ``max_imbalance`` with at least ``min_trades`` trades it is flagged
("IMBALANCE", class ``-imbalance``). A PSI above ``psi_alert`` is flagged "DRIFT" (``-drift``).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.snapshot import EngineSnapshot, ModelView
from widgets._base import SnapshotMixin
from widgets._fmt import FLAG_STYLE, lit, pct


def canary_imbalance(m: ModelView, max_imbalance: float = 0.05, min_trades: int = 20) -> bool:
    if m.total_trades < min_trades or m.total_trades <= 0:
        return False
    return abs(m.canary_trades / m.total_trades - m.canary_share) > max_imbalance


class ModelPanel(SnapshotMixin, Static):
    """Champion and challenger: ids, canary share and its realised balance, drift (PSI) per model."""

    DEFAULT_CSS = """
    ModelPanel { border: round $panel; height: auto; }
    ModelPanel.-drift { border: round $warning; }
    ModelPanel.-imbalance { border: round $error; }
    """

    def __init__(
        self,
        *,
        max_imbalance: float = 0.05,
        min_trades: int = 20,
        psi_alert: float = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__("model -", markup=False, **kwargs)
        self.max_imbalance = max_imbalance
        self.min_trades = min_trades
        self.psi_alert = psi_alert
        self.border_title = "Model"

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.model

    def apply(self, part: Any) -> None:
        m: ModelView = part
        text = Text(end="")
        text.append("champion ")
        text.append_text(lit(m.champion, "bold"))
        text.append("  challenger ")
        text.append_text(lit(m.challenger or "-"))
        text.append("  pinned ")
        text.append_text(lit(m.pinned or "-", FLAG_STYLE if m.pinned else ""))
        text.append(f"\ncanary share {pct(m.canary_share)}  observed ")
        observed = m.canary_trades / m.total_trades if m.total_trades else 0.0
        text.append(f"{m.canary_trades}/{m.total_trades} = {pct(observed)} ")
        imbalanced = canary_imbalance(m, self.max_imbalance, self.min_trades)
        text.append_text(lit("IMBALANCE", FLAG_STYLE) if imbalanced else lit("balanced"))
        text.append("\nPSI")
        drift = False
        for model_id, psi in m.psi:
            text.append(" ")
            text.append_text(lit(model_id))
            high = psi > self.psi_alert
            drift = drift or high
            text.append_text(
                lit(f" {psi:.3f}" + (" DRIFT" if high else ""), FLAG_STYLE if high else "")
            )
        if not m.psi:
            text.append(" -")
        self.update(text)
        self.set_class(imbalanced, "-imbalance")
        self.set_class(drift, "-drift")
