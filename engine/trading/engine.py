"""The trading engine: market state, the one order path, venue reports, operator commands.

Order path (the only one): ``submit`` → risk gates → OMS (order + outbox) → venue port.

Invariants:
- Cache, then publish: in-memory state (orders, positions, risk counters) is updated before the
  batch rows, audit records and events describing it are emitted.
- Everything here runs on the engine's event-loop thread; nothing blocks on I/O except the
  fsynced intent journal for venues outside the process (durable before send).
- Rows for DuckDB accumulate in the ``Recorder`` and leave via ``flush`` to the single writer.
- An invariant violation (overfill, a DB write failure) arms the kill switch loudly and keeps the
  process alive. A fill for an order not in memory waits for the reconciler (checked vs the DB).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from engine.core import crashpoints
from engine.core.clock import Clock
from engine.core.events import (
    CommandResult,
    Decision,
    SubmitOrder,
    VenueFill,
    VenueOrderUpdate,
)
from engine.core.units import SCALE
from engine.obs.metrics import EngineMetrics
from engine.security.audit import AuditChain
from engine.store.writer import Batch
from engine.trading import day_counters, oms, telemetry
from engine.trading.breakers import Breaker, Breakers, PreflightState, preflight_required
from engine.trading.gates import GateContext, GatePipeline, GateState
from engine.trading.kpis import Kpis
from engine.trading.market import MarketState
from engine.trading.oms import Order
from engine.trading.order_cache import OrderCache
from engine.trading.portfolio import Portfolio
from engine.trading.positions import slippage_bps
from engine.trading.recon_state import ReconState
from engine.trading.recorder import Recorder
from engine.trading.risk import BudgetGate, RiskState, standard_gates
from engine.trading.telemetry import export_metrics
from engine.trading.venue_port import VenuePort

log = logging.getLogger("engine")

MAX_ORDERS_IN_MEMORY = 5_000


class Strategy(Protocol):
    def on_quote(self, symbol: str, bid_e8: int, ask_e8: int, ts_ns: int) -> None: ...


class IntentJournal(Protocol):
    def append_durable(self, record: tuple[Any, ...]) -> None: ...


class Engine:
    """The trading engine of one session: market data in, the one order path, venue reports.

    Owns the order path (``submit``) and the venue reports (``on_venue_update``,
    ``on_venue_fill``); its state lives in the owners it holds (``market``, ``order_cache``,
    ``portfolio``, ``exposure``, ``risk``, ``kpis``, ``recon``, ``recorder``). Loop thread only."""

    def __init__(
        self,
        *,
        cfg: Any,
        clock: Clock,
        venue: VenuePort,
        audit: AuditChain,
        metrics: EngineMetrics,
        session: int,
        lot_e8: dict[str, int],
        journal: IntentJournal | None = None,
        on_batch: Callable[[Batch], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self._clock_set: Callable[[int], None] | None = getattr(clock, "set_ns", None)
        self.venue = venue
        self.recorder = Recorder(audit, clock)  # DB rows, audit chain, persisted state
        self.metrics = metrics
        self.session = session
        self.symbols: tuple[str, ...] = tuple(cfg.symbols)
        self._lot = lot_e8
        self.journal = journal
        self.on_batch = on_batch
        self.ids = oms.DecisionIds(cfg.oms.client_id_prefix, session)

        # the state, each part with its owner
        self.market = MarketState(self.symbols)  # quotes, staleness, blocks, readiness
        self.order_cache = OrderCache()  # orders, open orders, recent windows
        start_equity_e8 = int(cfg.paper.starting_balance_usd * SCALE)
        self.portfolio = Portfolio(self.symbols, start_equity_e8)  # positions, PnL, fees
        self.kpis = Kpis()  # latency, outcomes, denials, trade counts
        self.risk = RiskState(start_equity_e8)
        self.exposure = self.risk.exposure  # the one exposure book (engine/trading/exposure.py)
        self.risk.safe_mode = bool(cfg.risk.safe_mode)
        self.breakers = Breakers(self.kpis, cfg.risk)  # error rate, slippage: latched
        for b in self.breakers.by_name.values():
            b.on_trip = self._breaker_tripped
        self.preflight = PreflightState()  # the latest green preflight (boot restores it)
        if cfg.risk.kill_switch_armed_at_start:
            self.risk.kill_switch, self.risk.kill_reason = True, "armed at start by profile"
        gates = standard_gates(
            risk=self.risk,
            clock=clock,
            last_quote_us=self.market.last_quote_us,
            lot_e8=self.lot,
            market_blocked=self.market.blocked,
            readiness=self.market.readiness,
            required=tuple(cfg.live.readiness_required),
            mark_e8=self.market.mid_e8,
            venue=venue,
            kpis=self.kpis,
            breakers=self.breakers,
            preflight=self.preflight,
            preflight_required=preflight_required(cfg),
            go_live_required=cfg.kind == "live",
            r=cfg.risk,
            m=cfg.models,
            o=cfg.oms,
        )
        self.decision_ttl_us = int(cfg.oms.decision_ttl_ms * 1000)
        self.budget_gate = next(g for g in gates if isinstance(g, BudgetGate))
        self.gates = GatePipeline(gates, on_change=self._gate_changed)
        self._ctx = GateContext()

        self.halted_reason = ""
        self.log_orders = True
        self.recon = ReconState()  # orphans, acknowledgements, unmatched fills, baseline
        self.metrics_recovered = metrics.outbox_recovered
        self.metrics_dupes = metrics.outbox_dupes

        venue.bind(self)

    # --- helpers -----------------------------------------------------------------------------

    def lot(self, symbol: str) -> int:
        return self._lot.get(symbol, 1)

    # --- market data (hot path) ------------------------------------------------------------

    def on_quote(
        self, symbol: str, bid_e8: int, ask_e8: int, bid_sz_e8: int, ask_sz_e8: int, ts_ns: int
    ) -> None:
        if self._clock_set is not None:
            self._clock_set(ts_ns)
        if bid_e8 <= 0 or ask_e8 < bid_e8:
            return  # malformed quote: never let it reach prices or the venue
        mk = self.market  # written inline, not through a method: this runs for every tick
        mk.quotes[symbol] = (bid_e8, ask_e8, bid_sz_e8, ask_sz_e8)
        ts_us = ts_ns // 1000
        last = mk.last_quote_us.get(symbol, 0)
        if last and ts_us - last > mk.worst_gap_us.get(symbol, 0):
            mk.worst_gap_us[symbol] = ts_us - last  # worst staleness actually experienced
        mk.last_quote_us[symbol] = ts_us
        mk.ticks += 1
        self.venue.on_quote(symbol, bid_e8, ask_e8, bid_sz_e8, ask_sz_e8, ts_ns)
        strategy = self.strategy
        if strategy is not None:
            strategy.on_quote(symbol, bid_e8, ask_e8, ts_ns)

    strategy: Strategy | None = None

    def on_trade(self, symbol: str, price_e8: int, qty_e8: int, ts_ns: int) -> None:
        """A public trade print: kept as last price / volume in the market-state cache."""
        if self._clock_set is not None:
            self._clock_set(ts_ns)
        self.market.on_trade(symbol, price_e8, qty_e8, ts_ns)

    # --- decisions ---------------------------------------------------------------------------

    def record_decision(self, d: Decision) -> None:
        self.recorder.add(
            "decisions",
            (
                d.decision_id,
                d.ts_us,
                d.symbol,
                d.model_id,
                d.action,
                d.prob,
                d.expected_return,
                d.regime,
                d.regime_reason,
                d.risk_allowed,
                d.position_size,
                d.routed,
                d.psi,
            ),
        )
        self.recorder.audit("engine", "decision", d)
        self.metrics.decisions.labels(d.model_id, d.action).inc()

    # --- the order path ----------------------------------------------------------------------

    def submit(self, cmd: SubmitOrder, routed: str = "") -> CommandResult:
        """Risk gates → OMS → venue. Never raises for a refusal: returns a CommandResult."""
        now = self.clock.now_us()
        risk = self.risk
        if risk.roll(now):
            day_counters.rolled(self)
        q = self.market.quotes.get(cmd.symbol)
        ctx = self._ctx
        ctx.symbol = cmd.symbol
        ctx.side = cmd.side
        ctx.qty_e8 = cmd.qty_e8
        ctx.price_e8 = (q[1] if cmd.side == "buy" else q[0]) if q else 0
        if cmd.order_type == "limit" and cmd.limit_price_e8 > 0:
            ctx.price_e8 = cmd.limit_price_e8
        ctx.strategy = cmd.strategy
        ctx.model_id = cmd.model_id
        ctx.routed = routed
        ctx.decision_id = cmd.decision_id
        ctx.decision_us = cmd.ts_us or now  # an operator's order is decided when it arrives
        ctx.order_type = cmd.order_type
        ctx.now_us = now
        # against filled + every open and in-flight order, never the filled position alone
        ctx.reduce_qty_e8 = self.exposure.reducing_part(cmd.symbol, cmd.side, cmd.qty_e8)
        ctx.reduce_only = cmd.reduce_only
        if ctx.notes:
            ctx.notes.clear()
        if cmd.qty_e8 <= 0 or cmd.symbol not in self.portfolio.positions:
            return self._deny(cmd, "input", f"bad order: {cmd.symbol} qty_e8={cmd.qty_e8}", now)
        denied = self.gates.evaluate(ctx)
        for gate, reason in ctx.notes:
            self.recorder.gate_event(now, gate, "scale", cmd.symbol, cmd.decision_id, reason)
            log.info("gate %s scaled %s: %s", gate, cmd.decision_id, reason)
        if denied is not None:
            return self._deny(cmd, denied[0], denied[1], now)
        cid = oms.client_order_id(cmd.decision_id)
        oc = self.order_cache
        if cid in oc.orders:
            self.metrics_dupes.inc()
            return self._deny(cmd, "idempotency", f"client order id {cid} already used", now)
        order = Order(
            cid,
            cmd.decision_id,
            cmd.symbol,
            cmd.side,
            ctx.qty_e8,
            order_type=cmd.order_type,
            limit_price_e8=cmd.limit_price_e8,
            strategy=cmd.strategy,
            model_id=cmd.model_id,
            routed=routed,
            arrival_mid_e8=(q[0] + q[1]) // 2 if q else 0,
            created_us=now,
            decided_us=ctx.decision_us,
            send_by_us=ctx.decision_us + self.decision_ttl_us,  # the venue re-checks at send
        )
        oc.add(order)
        self.exposure.sync(order)  # counted before it can leave (a venue may answer inline)
        risk.note_sent(ctx)
        if self.journal is not None and not self.venue.in_process:
            # durable before it leaves: an intent for an outside venue survives any crash
            intent = (cid, cmd.decision_id, cmd.symbol, cmd.side, cmd.order_type, ctx.qty_e8,
                      cmd.limit_price_e8, now)  # fmt: skip
            try:
                self.journal.append_durable(intent)
            except OSError as exc:
                return self._not_durable(order, exc, now)
            if crashpoints.ENABLED:
                crashpoints.hit("after_intent_durable")
        order.transition(oms.SUBMITTED, now)
        order.submitted_us = now
        self.kpis.note_sent(now)
        oc.dirty_orders[cid] = order
        self.recorder.audit(
            cmd.actor,
            "order_submitted",
            {
                "client_order_id": cid,
                "decision_id": cmd.decision_id,
                "symbol": cmd.symbol,
                "side": cmd.side,
                "qty_e8": ctx.qty_e8,
                "type": cmd.order_type,
                "limit_price_e8": cmd.limit_price_e8,
                "model_id": cmd.model_id,
                "routed": routed,
            },
        )
        m = self.metrics
        sub = m.orders_submitted_by.get(cmd.symbol)
        (sub or m.orders_submitted.labels(cmd.symbol)).inc()
        m.status_by["submitted"].inc()
        m.trades.inc()
        k = self.kpis
        k.trades_placed += 1
        if routed == "challenger":
            m.canary_trades.inc()
            k.canary_placed += 1
        m.router_latency.observe(max(now - ctx.decision_us, 0) / 1e6)  # decision -> send
        self.venue.submit(order)
        if k.tick_due_ns:
            k.tick_to_submit_us.append((time.monotonic_ns() - k.tick_due_ns) // 1000)
        if self.log_orders:  # after the submit: formatting and I/O stay off the order path
            log.info("order submitted %s %s %s %s", cid, cmd.symbol, cmd.side, ctx.qty_e8 / SCALE)
        return CommandResult(ok=True, message="submitted", ref=cid)

    def _not_durable(self, order: Order, exc: OSError, now: int) -> CommandResult:
        """The intent is not durable (a full disk...): the order never leaves (``never_sent``,
        certain) and trading halts, failing closed: every next intent would fail alike."""
        why = f"intent journal write failed: {exc.strerror or exc}"
        was = order.status
        order.transition(oms.NEVER_SENT, now, f"not sent: {why}")
        self.order_changed(order, was)
        self.halt(why)
        return CommandResult(ok=False, message=f"not sent: {why}", ref=order.client_order_id)

    def _deny(self, cmd: SubmitOrder, gate: str, reason: str, now: int) -> CommandResult:
        self.kpis.denials += 1
        self.recorder.gate_event(now, gate, "deny", cmd.symbol, cmd.decision_id, reason)
        self.metrics.orders_denied.labels(gate).inc()
        if self.log_orders:
            log.info("order denied %s by %s: %s", cmd.decision_id, gate, reason)
        return CommandResult(ok=False, message=f"denied by {gate}: {reason}", ref=gate)

    def _breaker_tripped(self, b: Breaker) -> None:
        """A breaker latched: persisted (a restart keeps it tripped), alerted, audited."""
        self.recorder.set_state(f"breaker_{b.name}", b.reason)
        self.recorder.alerts.append(f"BREAKER {b.name} {b.reason}")
        self.recorder.audit("engine", "breaker_tripped", {"breaker": b.name, "reason": b.reason})
        log.critical("breaker %s %s", b.name, b.reason)

    def _gate_changed(self, st: GateState) -> None:
        now = self.clock.now_us()
        action = "active" if st.active else "clear"
        self.recorder.gate_event(now, st.name, action, "", "", st.reason or "cleared")
        self.recorder.audit(
            "engine", "gate_changed", {"gate": st.name, "active": st.active, "reason": st.reason}
        )
        g = self.metrics.gate_active.get(st.name)
        if g is not None:
            g.set(1 if st.active else 0)
        log.warning("gate %s %s: %s", st.name, action, st.reason or "-")

    # --- venue reports (VenueSink) -----------------------------------------------------------

    def on_venue_update(self, u: VenueOrderUpdate) -> None:
        o = self.order_cache.orders.get(u.client_order_id)
        if o is None:
            self.metrics.orders_error.labels("unknown_order").inc()
            log.error("venue update for unknown order %s (%s)", u.client_order_id, u.status)
            return
        self.exposure.sync(o)  # an order adopted by reconciliation is counted from here on
        if u.venue_order_id and not o.venue_order_id:
            o.venue_order_id = u.venue_order_id
            self.order_cache.dirty_orders[o.client_order_id] = o
        was = o.status
        if was in (oms.SUBMITTED, oms.UNKNOWN) and u.status != oms.REJECTED:
            lat_ms = (u.ts_us - o.submitted_us) / 1000.0
            if not o.acked_us:
                o.acked_us = u.ts_us
                self.order_cache.dirty_orders[o.client_order_id] = o
            self.kpis.note_ack(o.symbol, u.ts_us, lat_ms)
            self.metrics.place_latency.observe(max(lat_ms, 0.0) / 1000.0)
        if u.status in (oms.PARTIALLY_FILLED, oms.FILLED) and u.filled_qty_e8 > o.filled_qty_e8:
            return  # fills carry the quantity; the status follows when they arrive
        if not o.transition(u.status, u.ts_us, u.reason):
            return  # late, duplicate or out-of-order report: never move backward
        self.order_changed(o, was)

    def order_changed(self, o: Order, was: str) -> None:
        self.order_cache.dirty_orders[o.client_order_id] = o
        self.exposure.sync(o)  # a fill shrinks the remainder; a terminal state releases it
        st = self.metrics.status_by.get(o.status)
        if st is not None:
            st.inc()
        if o.status == oms.REJECTED:
            self.kpis.note_outcome(o.symbol, o.updated_us, True)
            self.metrics.orders_error.labels(oms.reason_class(o.reason)).inc()
            log.warning("order rejected %s: %s", o.client_order_id, o.reason)
            self.recorder.alerts.append(f"order {o.client_order_id} rejected: {o.reason}")
        if o.status in oms.TERMINAL:
            self.order_cache.closed(o)
            if o.status != oms.REJECTED:
                self.kpis.note_outcome(o.symbol, o.updated_us, False)
            self.recorder.audit(
                "venue",
                "order_final",
                {
                    "client_order_id": o.client_order_id,
                    "status": o.status,
                    "filled_qty_e8": o.filled_qty_e8,
                    "avg_price_e8": o.avg_price_e8,
                    "reason": o.reason,
                },
            )

    def on_venue_fill(self, f: VenueFill) -> None:
        o = self.order_cache.orders.get(f.client_order_id)
        if o is None:
            # an order of an earlier session (only open orders are loaded at start), or a
            # foreign one: the reconciler settles it against the DB; never applied blind
            self.recon.unmatched_fills[f.trade_id] = f
            return
        if f.trade_id in o.trade_ids:
            return  # duplicate delivery (reconnect backlog, REST catch-up)
        was = o.status
        if not o.apply_fill(f.trade_id, f.qty_e8, f.price_e8, f.ts_us):
            self.halt(f"overfill on {o.client_order_id}: trade {f.trade_id} qty {f.qty_e8}")
            return
        pf = self.portfolio
        pos = pf.apply_fill(f)
        self.exposure.set_filled(f.symbol, pos.qty_e8, f.price_e8)
        slip = slippage_bps(f.side, f.price_e8, o.arrival_mid_e8)
        lat_ms = (f.ts_us - o.submitted_us) / 1000.0 if o.submitted_us else 0.0
        self.recorder.add(
            "fills",
            (
                f.trade_id,
                f.client_order_id,
                f.venue_order_id,
                f.symbol,
                f.side,
                f.qty_e8,
                f.price_e8,
                f.fee_e8,
                f.liquidity,
                f.ts_us,
                slip,
                lat_ms,
                f.fee_base_e8,
            ),
        )
        pf.note_fill(f, slip)
        self.kpis.note_slippage(f.symbol, f.ts_us, slip)
        self.recorder.audit("venue", "fill", f)
        fb = self.metrics.fills_by.get(f.symbol)
        (fb or self.metrics.fills.labels(f.symbol)).inc()
        self.order_changed(o, was)

    # --- periodic work -----------------------------------------------------------------------

    def unrealized_e8(self) -> int:
        """Open positions marked at the current mids (reads only)."""
        return self.portfolio.unrealized_e8(self.market.mid_e8)

    def mark_to_market(self) -> int:
        """Re-mark equity (the drawdown gate reads it); returns the unrealised PnL. Done by
        ``refresh`` once a second, headless and under the cockpit alike."""
        unreal = self.unrealized_e8()
        self.risk.equity_e8 = self.portfolio.equity_e8(unreal)
        return unreal

    def refresh(self) -> None:
        """Once a second or so: day roll, equity, standing gate states, exported gauges."""
        now = self.clock.now_us()
        if self.risk.roll(now):
            day_counters.rolled(self)
        unreal = self.mark_to_market()
        self.gates.refresh(now)
        export_metrics(self, now, unreal)

    def flush(self) -> int:
        """Hand the accumulated rows to the writer (one transaction). Returns rows handed."""
        n = telemetry.flush_rows(self)
        self.order_cache.prune(MAX_ORDERS_IN_MEMORY)
        return n

    # --- the engine's own safety reactions (operator commands: engine/trading/commands.py) ----

    def arm_kill_switch(self, actor: str, reason: str) -> CommandResult:
        """Stop new orders and cancel resting ones; used by a halt and by the operator."""
        r = self.risk
        r.kill_switch, r.kill_reason = True, reason or f"armed by {actor}"
        self.recorder.set_state("kill_switch", "1")
        self.recorder.set_state("kill_reason", r.kill_reason)
        self.recorder.audit(actor, "kill_switch_armed", {"reason": r.kill_reason})
        self.gates.refresh(self.clock.now_us())
        self.metrics.kill_switch.set(1)
        for o in list(self.order_cache.open_orders.values()):  # stop resting exposure too
            if o.status in (oms.ACCEPTED, oms.PARTIALLY_FILLED):
                self.venue.cancel(o.client_order_id, o.symbol)
        log.warning("kill switch armed by %s: %s", actor, r.kill_reason)
        return CommandResult(ok=True, message=f"kill switch armed: {r.kill_reason}")

    def halt(self, reason: str) -> None:
        """Invariant violation: stop trading loudly, keep running for the operator."""
        if not self.halted_reason:
            self.halted_reason = reason
            log.critical("HALT: %s", reason)
            self.recorder.alerts.append(f"HALT: {reason}")
            self.arm_kill_switch("engine", f"halted: {reason}")

    def status(self) -> dict[str, Any]:
        """A plain summary for `cockpit status` and the headless status line."""
        return telemetry.status(self)
