"""Go-live views: why decisions do not trade, the last preflight, the alert rules, the stops.

- ``DecisionsPanel``: per symbol, the latest decision (model, action, prob, expected return,
  regime) and — for a NO_TRADE — which threshold stopped it: PROB_MIN, MIN_EXPECTED_RETURN,
  RISK_MAX, the regime, or drift (seed 001 incident D).
- ``PreflightPanel``: the latest preflight run, one line per check (ok / warn / fail), and whether
  a green one is in force (and until when) and whether this process went live.
- ``AlertRulesPanel``: the engine's alert rules that fire (since, value) and the recently resolved.
- ``StopsPanel``: kill-switch scopes, reduce-only mode and tripped breakers (empty = "none").

Every text is literal (``widgets._fmt.lit``); states are words, so they read with NO_COLOR.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.snapshot import EngineSnapshot
from widgets._base import SnapshotMixin
from widgets._fmt import FLAG_STYLE, age, lit, second_bucket

_STATUS_STYLE = {"ok": "", "warn": "bold", "fail": FLAG_STYLE}


class DecisionsPanel(SnapshotMixin, Static):
    """The latest decision per symbol and why it did not trade."""

    DEFAULT_CSS = "DecisionsPanel { border: round $panel; height: auto; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("no decision yet", markup=False, **kwargs)
        self.border_title = "Decisions (why NO_TRADE)"

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.decisions

    def apply(self, part: Any) -> None:
        if not part:
            self.update("no decision yet")
            return
        lines = []
        for d in part:
            t = Text(end="")
            t.append_text(lit(f"{d.symbol:<9}", "bold"))
            t.append_text(lit(f" {d.action:<8}", "bold" if d.action != "NO_TRADE" else ""))
            t.append_text(lit(f" {d.model_id}/{d.routed}"))
            t.append(f" p={d.prob:.2f} er={d.expected_return * 1e4:+.1f}bps ")
            t.append_text(lit(d.regime))
            if d.why:
                t.append("\n  why: ")
                t.append_text(lit(d.why, FLAG_STYLE if "drift" in d.why else ""))
            lines.append(t)
        self.update(Text("\n", end="").join(lines))


class PreflightPanel(SnapshotMixin, Static):
    """The latest preflight: each check, the verdict in force, and the live guard."""

    DEFAULT_CSS = """
    PreflightPanel { border: round $panel; height: auto; }
    PreflightPanel.-red { border: round $error; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("preflight: never run (press F)", markup=False, **kwargs)
        self.border_title = "Preflight"

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.stops, second_bucket(snap.ts_us)

    def apply(self, part: Any) -> None:
        st, now_s = part
        t = Text(end="")
        now_us = now_s * 1_000_000
        if st.preflight_id and now_us <= st.preflight_valid_until_us:
            t.append_text(lit(f"GREEN {st.preflight_id}", "bold"))
            t.append(f" valid {age(st.preflight_valid_until_us, now_us)} more")
        else:
            t.append_text(lit("NO GREEN PREFLIGHT", FLAG_STYLE))
        if st.live_required:
            t.append("  live: ")
            live = st.live_since_us
            t.append_text(lit(f"open {age(now_us, live)}") if live else lit("CLOSED", FLAG_STYLE))
        for name, status, why in st.preflight_checks:
            t.append("\n")
            t.append_text(lit(f"{status.upper():>4} {name:<15}", _STATUS_STYLE.get(status, "")))
            t.append_text(lit(why))
        if not st.preflight_checks:
            t.append("\nnever run: press F (or `cockpit preflight`)")
        self.update(t)
        red = any(s == "fail" for _, s, _ in st.preflight_checks)
        self.set_class(red or not st.preflight_checks, "-red")


class AlertRulesPanel(SnapshotMixin, Static):
    """Firing alerts (since, value), then the recently resolved."""

    DEFAULT_CSS = """
    AlertRulesPanel { border: round $panel; height: auto; }
    AlertRulesPanel.-firing { border: round $error; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("alerts: none firing", markup=False, **kwargs)
        self.border_title = "Alert rules"

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.alert_states, second_bucket(snap.ts_us)

    def apply(self, part: Any) -> None:
        alerts, now_s = part
        firing = [a for a in alerts if a.state == "firing"]
        if not alerts:
            self.update("none firing")
            self.set_class(False, "-firing")
            return
        lines = []
        for a in alerts:
            t = Text(end="")
            style = FLAG_STYLE if a.state == "firing" else ""
            t.append_text(lit(f"{a.state.upper():<8} {a.rule}", style))
            if a.labels:
                t.append_text(lit(f"{{{a.labels}}}"))
            t.append(f" {a.severity} since {age(now_s * 1_000_000, a.since_us)} value {a.value:g}")
            lines.append(t)
        self.update(Text("\n", end="").join(lines))
        self.set_class(bool(firing), "-firing")


class StopsPanel(SnapshotMixin, Static):
    """Kill-switch scopes, reduce-only mode, tripped breakers."""

    DEFAULT_CSS = """
    StopsPanel { border: round $panel; height: auto; }
    StopsPanel.-active { border: round $error; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("stops: none", markup=False, **kwargs)
        self.border_title = "Kill scopes · reduce-only · breakers"

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.stops.kill_scopes, snap.stops.reduce_only, snap.stops.breakers

    def apply(self, part: Any) -> None:
        scopes, reduce_only, breakers = part
        lines = []
        for scope, why in scopes:
            lines.append(lit(f"KILL {scope}: {why}", FLAG_STYLE))
        if reduce_only:
            lines.append(lit(f"REDUCE-ONLY: {reduce_only}", FLAG_STYLE))
        for name, why in breakers:
            lines.append(lit(f"BREAKER {name} {why}", FLAG_STYLE))
        self.update(Text("\n", end="").join(lines) if lines else "none")
        self.set_class(bool(lines), "-active")
