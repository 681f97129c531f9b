"""IncidentsPanel: the incident journal, newest first — what operators wrote, with the context the
engine attached when they wrote it (UTC time, active gates, kill switch / safe mode / halt flags).

The full context (profile, venue, equity, skew, open orders) is in the DB's ``incidents`` table;
the panel shows what tells one incident from another at a glance. The engine keeps the last 20
entries and reloads them at start-up, so the journal survives a restart on screen too. Notes are
operator-typed and shown literally.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from engine.snapshot import EngineSnapshot, IncidentView
from widgets._fmt import FLAG_STYLE, lit, utc
from widgets.table import KeyedTable


class IncidentsPanel(KeyedTable):
    """The incident journal's latest notes with the gates and flags active at the time."""

    DEFAULT_CSS = """
    IncidentsPanel { border: round $panel; height: 1fr; min-height: 5; }
    """
    TITLE = "Incident journal (n: new note)"
    COLUMNS = (
        ("time", "time (UTC)"),
        ("actor", "actor"),
        ("note", "note"),
        ("gates", "active gates"),
        ("flags", "flags"),
    )

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.incidents

    def apply(self, part: Any) -> None:
        incidents: tuple[IncidentView, ...] = part
        self.show(incidents[::-1])

    def key(self, view: Any) -> str:
        i: IncidentView = view
        return f"{i.ts_us}/{i.actor}/{i.note}"

    def cells(self, view: Any) -> tuple[Text, ...]:
        i: IncidentView = view
        return (
            lit(utc(i.ts_us)),
            lit(i.actor),
            lit(i.note),
            lit(i.gates),
            lit(i.flags, FLAG_STYLE if i.flags != "-" else ""),
        )
