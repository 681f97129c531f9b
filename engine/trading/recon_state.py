"""What reconciliation tracks between runs: foreign orders, acknowledgements, unmatched fills.

Role: the state the reconciler (``engine.runtime.reconcile``) and the operator's orphan
acknowledgement (``Commands.ack_orphans``) share with the engine's fill handler. The engine only
parks here a fill for an order it does not hold in memory; the reconciler settles it against the
DB, never applying it blind.

Invariants: an orphan key blocks its symbol until an operator acknowledges it (then it is in
``acked_orphans``, persisted in ``engine_state``, and never blocks again); ``venue_baseline`` is the
venue's balances at the first reconciliation of the day (persisted too), ``None`` until then.
"""

from __future__ import annotations

from engine.core.events import VenueFill


class ReconState:
    """Orphans, acknowledgements, unmatched fills and the day's balance baseline (loop thread)."""

    __slots__ = (
        "acked_orphans",
        "last_fill_ms",
        "orphan_keys",
        "unmatched_fills",
        "venue_baseline",
    )

    def __init__(self) -> None:
        self.orphan_keys: dict[str, set[str]] = {}  # symbol -> foreign venue orders blocking it
        self.acked_orphans: set[str] = set()  # acknowledged by an operator
        self.unmatched_fills: dict[str, VenueFill] = {}  # trade id -> fill of an unknown order
        self.venue_baseline: dict[str, int] | None = None
        self.last_fill_ms: dict[str, int] = {}  # per symbol, from the DB at boot: catch-up start
