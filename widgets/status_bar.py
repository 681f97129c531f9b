"""StatusBar: the two-line header every screen shows: who / where / is it safe / what runs.

Line 1 is the safety state (profile, venue, trading ARMED/DISARMED, kill switch, safe mode, halt,
budget left, role); line 2 is model (id used, pinned, canary share), clock skew and money. Both
fit 76 columns with typical values; long reasons wrap (height is auto). Every state is a word, so it reads with NO_COLOR; colour comes
from CSS classes: ``-halted`` (kill switch armed, halted or safe mode), ``-armed`` (trading armed)
and ``-live`` (live profile).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.snapshot import EngineSnapshot
from widgets._base import SnapshotMixin
from widgets._fmt import FLAG_STYLE, lit, money, signed

SEP = " │ "


class StatusBar(SnapshotMixin, Static):
    """Top line: profile, venue, armed / kill switch, safe mode, halt reason, clock and equity."""

    DEFAULT_CSS = """
    StatusBar { height: auto; min-height: 2; background: $boost; }
    StatusBar.-armed { background: $success 20%; }
    StatusBar.-live { text-style: bold; }
    StatusBar.-halted { background: $error 30%; }
    """

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__("waiting for engine…", markup=False, name=name, id=id, classes=classes)

    def select(self, snap: EngineSnapshot) -> Any:
        return (
            snap.profile,
            snap.venue,
            snap.role,
            snap.safe_mode,
            snap.kill_switch,
            snap.kill_reason,
            snap.halted,
            snap.armed,
            snap.model_id_used,
            snap.model.pinned,
            snap.model.canary_share,
            snap.budget_left,
            round(snap.skew_ms, 1),
            round(snap.equity, 2),
            round(snap.pnl, 2),
        )

    def apply(self, part: Any) -> None:
        (
            profile,
            venue,
            role,
            safe,
            kill,
            kill_reason,
            halted,
            armed,
            model,
            pinned,
            share,
            budget,
            skew,
            equity,
            pnl,
        ) = part
        line1 = Text(end="")
        line1.append_text(lit(profile.upper(), "bold"))
        line1.append(" ")
        line1.append_text(lit(venue))
        line1.append(SEP)
        line1.append_text(lit("TRADING ARMED", "bold") if armed else lit("DISARMED", FLAG_STYLE))
        line1.append(SEP)
        if kill:
            line1.append_text(lit("KILL ARMED", FLAG_STYLE))
            if kill_reason:
                line1.append(": ")
                line1.append_text(lit(kill_reason))
        else:
            line1.append("kill off")
        line1.append(SEP)
        line1.append_text(lit("SAFE ON", FLAG_STYLE) if safe else lit("safe off"))
        if halted:
            line1.append(SEP)
            line1.append_text(lit("HALTED", FLAG_STYLE))
            line1.append(": ")
            line1.append_text(lit(halted))
        line1.append(f"{SEP}budget {budget}{SEP}")
        line1.append_text(lit(role))

        line2 = Text(end="")
        line2.append("model ")
        line2.append_text(lit(model))
        line2.append(" pin ")
        line2.append_text(lit(pinned or "-", "bold" if pinned else ""))
        line2.append(f" canary {share * 100:.0f}%{SEP}skew {skew:+.1f}ms")
        line2.append(f"{SEP}eq {money(equity)} pnl {signed(pnl)}")
        self.update(Text("\n", end="").join([line1, line2]))
        self.set_class(bool(kill or halted or safe), "-halted")
        self.set_class(bool(armed), "-armed")
        self.set_class(profile.lower() == "live", "-live")

    @property
    def text(self) -> str:
        """The plain text shown (for tests and screen readers)."""
        return str(self.content)
