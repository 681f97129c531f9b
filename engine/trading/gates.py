"""Ordered risk-gate pipeline: every new order passes every gate, in order.

Invariants:
- A gate returns ``None`` (pass) or a one-line reason (deny). A denial is data — the engine turns it
  into a ``CommandResult(ok=False)`` for the sender, a ``gate_events`` row and a counter — never
  an exception.
- Gates fail closed: a gate that raises is a denial naming the error.
- Sizing gates may only *reduce* ``ctx.qty_e8``; they record why in ``ctx.notes``.
- Each gate tracks its standing state (active, reason, since) for the panel; transitions are
  reported through ``on_change`` exactly once each way (the engine records a ``gate_events`` row
  and an audit record; the gates panel reads the states from the snapshot).
- Adding a gate = one small class with ``name`` and ``check`` (and optionally ``probe`` for a
  standing condition that holds without an order, e.g. the kill switch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from engine.core.units import SCALE


class GateContext:
    """Scratch object for one order evaluation (reused; owned by the engine loop)."""

    __slots__ = (
        "decision_id",
        "decision_us",
        "model_id",
        "notes",
        "now_us",
        "order_type",
        "price_e8",
        "qty_e8",
        "reduce_only",
        "reduce_qty_e8",
        "routed",
        "side",
        "strategy",
        "symbol",
    )

    def __init__(self) -> None:
        self.symbol = ""
        self.side = "buy"
        self.qty_e8 = 0
        self.price_e8 = 0
        self.strategy = ""
        self.model_id = ""
        self.routed = ""
        self.decision_id = ""
        self.decision_us = 0  # when the decision was taken (engine clock)
        self.order_type = "market"
        self.now_us = 0
        # of the order as asked, the part that reduces the worst-case exposure on its side
        # (``ExposureBook.reducing_part``); set by the engine before the gates run
        self.reduce_qty_e8 = 0
        self.reduce_only = False  # the sender asked for reduce-only (the operator's flatten)
        self.notes: list[tuple[str, str]] = []

    @property
    def notional_e8(self) -> int:
        return self.qty_e8 * self.price_e8 // SCALE

    @property
    def reducing_e8(self) -> int:
        """The reducing part of the order at its current (possibly shrunk) size."""
        return min(self.reduce_qty_e8, self.qty_e8)

    @property
    def reduces(self) -> bool:
        """The whole order only reduces exposure (nothing of it opens or adds)."""
        return 0 < self.qty_e8 <= self.reduce_qty_e8


class Gate(Protocol):
    name: str

    def check(self, ctx: GateContext) -> str | None: ...


class GateState:
    """``standing``: the gate probes a condition that holds without an order (kill switch,
    staleness ...); the others are "active" only in the sense that their last check denied."""

    __slots__ = ("active", "denials", "name", "reason", "since_us", "standing")

    def __init__(self, name: str, standing: bool = False) -> None:
        self.name = name
        self.standing = standing
        self.active = False
        self.reason = ""
        self.since_us = 0
        self.denials = 0


ChangeFn = Callable[[GateState], None]


class GatePipeline:
    """Runs the gates in order for each order (first denial wins, a broken gate denies) and keeps each
    gate's standing state, reporting every change through ``on_change``."""

    def __init__(self, gates: list[Gate], on_change: ChangeFn | None = None) -> None:
        self.gates = gates
        self.states = {g.name: GateState(g.name, hasattr(g, "probe")) for g in gates}
        self._on_change = on_change

    def evaluate(self, ctx: GateContext) -> tuple[str, str] | None:
        """Run every gate in order; the first denial wins: returns (gate, reason) or None."""
        for gate in self.gates:
            try:
                reason = gate.check(ctx)
            except Exception as exc:  # noqa: BLE001 - a broken gate denies (fail closed)
                reason = f"gate error: {type(exc).__name__}: {exc}"
            st = self.states[gate.name]
            if reason is not None:
                st.denials += 1
                self._set(st, True, reason, ctx.now_us)
                return gate.name, reason
            if st.active and not hasattr(gate, "probe"):
                # a standing condition is cleared by its probe (``refresh``) only: an order it
                # lets through (a reducing one, another symbol's) says nothing about the condition
                self._set(st, False, "", ctx.now_us)
        return None

    def refresh(self, now_us: int) -> None:
        """Re-evaluate standing conditions (gates with ``probe``) without an order."""
        for gate in self.gates:
            probe = getattr(gate, "probe", None)
            if probe is None:
                continue
            try:
                reason = probe(now_us)
            except Exception as exc:  # noqa: BLE001
                reason = f"gate error: {type(exc).__name__}: {exc}"
            self._set(self.states[gate.name], reason is not None, reason or "", now_us)

    def _set(self, st: GateState, active: bool, reason: str, now_us: int) -> None:
        if st.active == active and (not active or st.reason == reason):
            return
        changed_activity = st.active != active
        st.active = active
        st.reason = reason
        if changed_activity:
            st.since_us = now_us
        if self._on_change is not None and changed_activity:
            self._on_change(st)
