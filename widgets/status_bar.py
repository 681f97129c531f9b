"""StatusBar: the two-line header every screen shows: who / where / is it safe / what runs.

Line 1 is the safety state (profile, venue, trading ARMED/DISARMED, kill switch, safe mode, halt,
budget left, role); line 2 is model (id used, pinned, canary share), clock skew and money; a third
line appears only while a finer stop holds (kill-switch scopes, REDUCE-ONLY, a tripped breaker) or
a live profile is not open yet. A long kill or halt reason is cut to the width (the full text is
in the gates panel), so lines 2 and 3 never scroll away at 80×24. Every state is a word, so it reads with NO_COLOR; colour comes
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
            snap.stops.kill_scopes,
            snap.stops.reduce_only,
            snap.stops.breakers,
            snap.stops.live_required and not snap.stops.live_since_us,
            self.size.width,
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
            scopes,
            reduce_only,
            breakers,
            not_live,
            width,
        ) = part
        width = max(width or 80, 40)
        head = Text(end="")
        head.append_text(lit(profile.upper(), "bold"))
        head.append(" ")
        head.append_text(lit(venue))
        head.append(SEP)
        head.append_text(lit("TRADING ARMED", "bold") if armed else lit("DISARMED", FLAG_STYLE))
        head.append(SEP)
        head.append_text(lit("KILL ARMED", FLAG_STYLE) if kill else lit("kill off"))
        tail = Text(end="")
        tail.append(SEP)
        tail.append_text(lit("SAFE ON", FLAG_STYLE) if safe else lit("safe off"))
        if halted:
            tail.append(SEP)
            tail.append_text(lit("HALTED", FLAG_STYLE))
        tail.append(f"{SEP}budget {budget}{SEP}")
        tail.append_text(lit(role))
        why = halted or (kill_reason if kill else "")
        room = width - head.cell_len - tail.cell_len - 4
        line1 = head
        if why and room > 6:  # the reason, cut to the line (full text: gates panel)
            line1.append(": ")
            line1.append_text(lit(why if len(why) <= room else why[: room - 1] + "…"))
        line1.append_text(tail)

        line2 = Text(end="")
        line2.append("model ")
        line2.append_text(lit(model))
        line2.append(" pin ")
        line2.append_text(lit(pinned or "-", "bold" if pinned else ""))
        line2.append(f" canary {share * 100:.0f}%{SEP}skew {skew:+.1f}ms")
        line2.append(f"{SEP}eq {money(equity)} pnl {signed(pnl)}")
        lines = [line1, line2]
        stops = [f"KILL {k}" for k, _ in scopes]
        stops += ["REDUCE-ONLY"] if reduce_only else []
        stops += [f"BREAKER {n}" for n, _ in breakers]
        stops += ["LIVE NOT OPEN (go-live)"] if not_live else []
        if stops:
            lines.append(lit(SEP.join(stops), FLAG_STYLE))
        shown = Text("\n", end="").join(lines)
        shown.no_wrap, shown.overflow = True, "ellipsis"  # one screen line per line, always
        self.update(shown)
        self.set_class(bool(kill or halted or safe or stops), "-halted")
        self.set_class(bool(armed), "-armed")
        self.set_class(profile.lower() == "live", "-live")

    @property
    def text(self) -> str:
        """The plain text shown (for tests and screen readers)."""
        return str(self.content)
