"""Engine state out: Prometheus gauges (``Engine.refresh``), DB rows (``Engine.flush``) and the
snapshot for screens.

Kept apart from the hot path: counters that change per tick (ticks) are accumulated as plain ints
and exported here in one step; percentiles are computed over bounded recent windows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.core.units import SCALE

if TYPE_CHECKING:
    from engine.trading.engine import Engine

_IN_FLIGHT = ("pending", "submitted", "unknown")
# outbox status by order status; anything else means the venue acknowledged it
OUTBOX_STATUS = {
    "pending": "pending",
    "submitted": "sent",
    "unknown": "unknown",
    "never_sent": "never_sent",
    "rejected": "rejected",
}


def export_metrics(e: Engine, now: int, unreal: int) -> None:
    m = e.metrics
    m.ticks.inc(e.market.ticks - e.market.ticks_exported)
    e.market.ticks_exported = e.market.ticks
    gross = 0
    for s in e.symbols:
        worst = e.exposure.worst(s) * e.market.mid_e8(s) // SCALE
        gross += worst
        m.exposure_worst.labels(s).set(worst / SCALE)
        last = e.market.last_quote_us.get(s, 0)
        m.stale_by[s].set((now - last) / 1e6 if last else 0.0)
        m.stale_worst.labels(s).set(
            max(e.market.worst_gap_us.get(s, 0), now - last if last else 0) / 1e6
        )
        m.position_by[s].set(e.portfolio.positions[s].qty_e8 / SCALE)
    m.exposure_gross.set(gross / SCALE)
    m.pnl_realized.set((e.portfolio.realized_e8 - e.portfolio.fees_e8) / SCALE)
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
    m.outbox_pending.set(
        sum(1 for o in e.order_cache.open_orders.values() if o.status in _IN_FLIGHT)
    )
    m.audit_seq.set(e.recorder.chain.last_seq)
    _export_execution(e)
    for model_id, psi in e.risk.psi.items():
        m.psi.labels(model_id).set(psi)
    now_s = e.clock.monotonic_ns() / 1e9
    for name, (ok, expires_s, _why) in e.market.readiness.items():
        m.readiness.labels(name).set(1 if ok and expires_s >= now_s else 0)


def _export_execution(e: Engine) -> None:
    """Error rate, slippage, place latency (global and per symbol) and the fill ratio."""
    m, k = e.metrics, e.kpis
    m.error_rate.set(k.error_rate()[0])
    m.slippage_p95.set(k.slippage_p95()[0])
    m.place_p95.set(k.place_p95_ms()[0] / 1000.0)
    for s in e.symbols:
        m.error_rate_by.labels(s).set(k.error_rate(s)[0])
        m.slippage_p95_by.labels(s).set(k.slippage_p95(s)[0])
        m.place_p95_by.labels(s).set(k.place_p95_ms(s)[0] / 1000.0)
    m.fill_ratio.set(e.order_cache.fill_ratio_all())


def flush_rows(e: Engine) -> int:
    """Hand the accumulated rows to the writer (one transaction). Returns rows handed."""
    rec = e.recorder
    b = rec.batch
    if e.order_cache.dirty_orders:
        orders_up = b.upsert["orders"]
        outbox_up = b.upsert["order_outbox"]
        for cid, o in e.order_cache.dirty_orders.items():
            orders_up[cid] = o.row()
            outbox_up[cid] = (
                cid,
                o.decision_id,
                o.symbol,
                o.side,
                o.order_type,
                o.qty_e8,
                o.limit_price_e8,
                OUTBOX_STATUS.get(o.status, "acked"),
                o.created_us,
                o.submitted_us,
                o.updated_us if o.status not in OUTBOX_STATUS else 0,
                1,
            )
        b.rows += 2 * len(e.order_cache.dirty_orders)
        e.order_cache.flushed()
    if e.portfolio.dirty_positions:
        pos_up = b.upsert["positions"]
        for s in e.portfolio.dirty_positions:
            pos_up[s] = e.portfolio.positions[s].row()
        e.portfolio.dirty_positions.clear()
    drain = getattr(e.venue, "drain_dirty", None)
    if drain is not None:
        for row in drain():
            b.upsert["paper_orders"][row[0]] = row
    if b.empty():
        return 0
    if b.append["audit_log"]:
        b.audit_head = (rec.chain.last_seq, rec.chain.last_hash)
    rec.take()
    if e.on_batch is not None:
        e.on_batch(b)
    return b.rows


def status(e: Engine) -> dict[str, Any]:
    """A plain summary: the headless status line and `cockpit status`."""
    return {
        "ticks": e.market.ticks,
        "orders": len(e.order_cache.orders),
        "open_orders": len(e.order_cache.open_orders),
        "denials": e.kpis.denials,
        "positions": {s: p.qty_e8 / SCALE for s, p in e.portfolio.positions.items() if p.qty_e8},
        "pnl": (e.portfolio.realized_e8 - e.portfolio.fees_e8) / SCALE,
        "equity": e.risk.equity_e8 / SCALE,
        "kill_switch": e.risk.kill_switch,
        "safe_mode": e.risk.safe_mode,
        "active_gates": [s.name for s in e.gates.states.values() if s.active],
        "kill_scopes": dict(e.risk.kill_scopes),
        "reduce_only": e.risk.reduce_only or False,
        "breakers_tripped": e.breakers.tripped(),
        "preflight": e.preflight.green_id or None,
        "live_since_us": e.preflight.live_since_us or None,
    }
