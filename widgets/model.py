"""ModelPanel: champion, challenger, pinned model, canary share, PSI per model, canary balance,
and the canary ramp plan of the go-live runbook (seed 002): 0.05 at T0 (go-live) → 0.10 at T+8h →
0.20 at T+24h, with the KPIs that allow the next step (error rate < 1 %, p95 place < 300 ms,
slippage within MAX_SLIPPAGE_BPS on every symbol, canary balanced). Stepping is the canary-share
action (C, or `cockpit model canary-share`); the panel only says whether the next step is due.

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

RAMP = ((0.05, 0), (0.10, 8), (0.20, 24))  # (share, hours after T0)


def ramp_line(share: float, t0_us: int, now_us: int, kpis_ok: bool, why: str) -> str:
    """The ramp plan and where we are on it."""
    plan = " → ".join(f"{s:.2f}" + (f" (T+{h}h)" if h else " (T0)") for s, h in RAMP)
    if not t0_us:
        return f"ramp {plan}: T0 = go-live (not yet)"
    nxt = next(((s, h) for s, h in RAMP if s > share + 1e-9), None)
    if nxt is None:
        return f"ramp {plan}: at {share:.2f}, ramp done"
    due_us = t0_us + nxt[1] * 3_600_000_000
    if now_us < due_us:
        left_min = (due_us - now_us) // 60_000_000
        when = f"in {left_min // 60}h{left_min % 60:02d}m"
    else:
        when = "due now"
    verdict = "KPIs OK" if kpis_ok else f"KPIs NOT OK ({why})"
    return f"ramp {plan}: next {nxt[0]:.2f} {when}; {verdict}"


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
        max_slippage_bps: float = 25.0,
        **kwargs: Any,
    ) -> None:
        super().__init__("model -", markup=False, **kwargs)
        self.max_imbalance = max_imbalance
        self.min_trades = min_trades
        self.psi_alert = psi_alert
        self.max_slippage_bps = max_slippage_bps
        self.border_title = "Model"

    def select(self, snap: EngineSnapshot) -> Any:
        bad = [
            f"{s.symbol}: " + ", ".join(why)
            for s in snap.symbols
            if (
                why := [
                    *(["error rate"] if s.error_rate >= 0.01 else []),
                    *(["p95"] if s.p95_place_ms >= 300 else []),
                    *(["slippage"] if s.slippage_p95_bps > self.max_slippage_bps else []),
                ]
            )
        ]
        return snap.model, snap.stops.live_since_us, snap.ts_us // 60_000_000, tuple(bad)

    def apply(self, part: Any) -> None:
        m: ModelView
        m, t0_us, now_min, bad = part
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
        if imbalanced:
            bad = (*bad, "canary imbalance")
        text.append("\n")
        text.append_text(
            lit(ramp_line(m.canary_share, t0_us, now_min * 60_000_000, not bad, "; ".join(bad)))
        )
        self.update(text)
        self.set_class(imbalanced, "-imbalance")
        self.set_class(drift, "-drift")
