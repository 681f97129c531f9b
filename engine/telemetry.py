"""Export the engine's state to its Prometheus registry (called from ``Engine.refresh``).

Kept apart from the hot path: counters that change per tick (ticks) are accumulated as plain ints
and exported here in one step; percentiles are computed over bounded recent windows.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from engine.units import SCALE

if TYPE_CHECKING:
    from engine.engine import Engine

_IN_FLIGHT = ("pending", "submitted", "unknown")


def p95(values: deque[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def export_metrics(e: Engine, now: int, unreal: int) -> None:
    m = e.metrics
    m.ticks.inc(e.ticks - e._ticks_exported)
    e._ticks_exported = e.ticks
    for s in e.symbols:
        last = e.last_quote_us.get(s, 0)
        m.stale_by[s].set((now - last) / 1e6 if last else 0.0)
        m.stale_worst.labels(s).set(max(e.worst_gap_us.get(s, 0), now - last if last else 0) / 1e6)
        m.position_by[s].set(e.positions[s].qty_e8 / SCALE)
    m.pnl_realized.set((e.realized_e8 - e.fees_e8) / SCALE)
    m.pnl_unrealized.set(unreal / SCALE)
    m.equity.set(e.risk.equity_e8 / SCALE)
    m.positions_open.set(e.risk.open_positions())
    m.skew.set(e.clock.skew_ms() / 1000.0)
    m.kill_switch.set(1 if e.risk.kill_switch else 0)
    m.safe_mode.set(1 if e.risk.safe_mode else 0)
    m.budget_left.labels("account", "all").set(e.budget_gate.left())
    for s in e.symbols:
        used = e.risk.orders_by_symbol.get(s, 0)
        m.budget_left.labels("symbol", s).set(e.budget_gate.per_symbol - used)
    for st in e.gates.states.values():
        g = m.gate_active.get(st.name)
        if g is not None:
            g.set(1 if st.active else 0)
    m.outbox_pending.set(sum(1 for o in e.open_orders.values() if o.status in _IN_FLIGHT))
    m.audit_seq.set(e.audit.last_seq)
    if e.recent_slippage:
        m.slippage_p95.set(p95(e.recent_slippage))
    if e.recent_latency_ms:
        m.place_p95.set(p95(e.recent_latency_ms) / 1000.0)
    if e.recent_outcomes:
        m.error_rate.set(sum(e.recent_outcomes) / len(e.recent_outcomes))
    for model_id, psi in e.risk.psi.items():
        m.psi.labels(model_id).set(psi)
