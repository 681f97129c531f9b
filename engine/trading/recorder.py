"""What the engine records: DB rows for the single writer, the audit chain, and persisted state.

Role: the one owner of the pending `Batch` (rows handed to the DuckDB writer at each flush), the
HMAC audit chain and its recent tail (for screens), the `engine_state` key/value rows (read
once at boot, upserted on change), and the bounded alert and incident-journal tails the screens
show. Every module records through these public methods — no one
appends to the batch or the chain by hand.

Invariants: an audit record is appended to the chain and to the batch in the same call, so the
DB and the chain never disagree about what happened; `take()` hands the batch over whole and
starts a new one (the writer owns what it was given).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from engine.core.clock import Clock
from engine.security.audit import AuditChain
from engine.store.writer import Batch


class Recorder:
    """Rows, audit records and persisted state of one engine session (engine thread only)."""

    __slots__ = ("alerts", "audit_tail", "batch", "chain", "clock", "incidents", "persisted")

    def __init__(self, chain: AuditChain, clock: Clock) -> None:
        self.chain = chain
        self.clock = clock
        self.batch = Batch()
        self.audit_tail: deque[Any] = deque(maxlen=30)  # newest last, for the audit panel
        self.persisted: dict[str, str] = {}  # engine_state rows read at boot
        self.alerts: deque[str] = deque(maxlen=50)  # newest last: halts, rejections, recon alerts
        # incident journal, newest last: (ts_us, actor, note, active gates, flags) for screens;
        # the full context is in the DB's incidents table
        self.incidents: deque[tuple[int, str, str, str, str]] = deque(maxlen=20)

    def audit(self, actor: str, kind: str, payload: object) -> None:
        """Append one record to the chain and to the batch (an AuditRecord is a NamedTuple in
        audit_log column order: no copy)."""
        rec = self.chain.append(self.clock.now_us(), actor, kind, payload)
        b = self.batch
        b.append["audit_log"].append(rec)
        b.rows += 1
        self.audit_tail.append(rec)

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        """Append a row to an append-only table."""
        b = self.batch
        b.append[table].append(row)
        b.rows += 1

    def upsert(self, table: str, key: str, row: tuple[Any, ...]) -> None:
        """Replace the row with this key in a keyed table (last write in a batch wins)."""
        self.batch.upsert[table][key] = row

    def set_state(self, key: str, value: str) -> None:
        """Persist an `engine_state` value (survives restarts) and remember it."""
        self.persisted[key] = value
        self.batch.upsert["engine_state"][key] = (key, value, self.clock.now_us())

    def state(self, key: str, default: str = "") -> str:
        """A persisted `engine_state` value (as read at boot or set since)."""
        return self.persisted.get(key, default)

    def gate_event(
        self, now: int, gate: str, action: str, symbol: str, decision_id: str, reason: str
    ) -> None:
        """A `gate_events` row: a denial, or a gate turning active / clear."""
        b = self.batch
        b.append["gate_events"].append((now, gate, action, symbol, decision_id, reason))
        b.rows += 1

    def take(self) -> Batch:
        """Hand over the pending rows and start a new batch."""
        b, self.batch = self.batch, Batch()
        return b
