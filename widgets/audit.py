"""AuditPanel: the last audit records (newest first) keyed by sequence number.

Actor and kind are shown literally (they can carry operator-typed or venue text).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from engine.snapshot import AuditView, EngineSnapshot
from widgets._fmt import clock, lit
from widgets.table import KeyedTable


class AuditPanel(KeyedTable):
    """The latest audit records (actor, kind), venue text shown literally."""

    DEFAULT_CSS = """
    AuditPanel { border: round $panel; height: 1fr; min-height: 5; }
    """
    TITLE = "Audit"
    COLUMNS = (("seq", "seq"), ("time", "time"), ("actor", "actor"), ("kind", "kind"))

    def __init__(self, *, max_rows: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_rows = max_rows

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.audit

    def apply(self, part: Any) -> None:
        audit: tuple[AuditView, ...] = part
        newest = sorted(audit, key=lambda a: a.seq, reverse=True)[: self.max_rows]
        self.show(newest)

    def key(self, view: Any) -> str:
        a: AuditView = view
        return str(a.seq)

    def cells(self, view: Any) -> tuple[Text, ...]:
        a: AuditView = view
        return (lit(a.seq), lit(clock(a.ts_us)), lit(a.actor), lit(a.kind))
