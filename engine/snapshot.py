"""Immutable engine snapshots for screens: built on the engine thread, read by the UI thread.

Invariants:
- A snapshot is frozen (msgspec Structs, tuples): the engine publishes it by reference swap and
  never touches it again, so the UI reads it without locks.
- Built at most a few times a second (default 4 Hz), never per tick; bounded sizes (last N orders,
  fills, alerts, audit rows) so building one costs well under a millisecond.
- Money and quantities are pre-formatted here as floats for display only; reports use e8 ints.
- Text that comes from outside (venue errors, symbols) is carried as plain str; widgets must
  render it literally (``rich.text.Text``), never as markup.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from engine.units import SCALE
from engine.windows import fill_ratio, latest_orders, p95


class _S(msgspec.Struct, frozen=True, kw_only=True):
    pass


class GateView(_S, frozen=True):
    name: str
    active: bool
    reason: str
    since_us: int
    denials: int


class BudgetView(_S, frozen=True):
    scope: str  # account | symbol | strategy
    key: str
    used: int
    limit: int


class FeedView(_S, frozen=True):
    name: str
    connected: bool
    uptime_s: float
    reconnects: int
    staleness_ms: float


class SymbolView(_S, frozen=True):
    symbol: str
    bid: float
    ask: float
    position: float
    avg_price: float
    realized: float
    unrealized: float
    staleness_ms: float
    error_rate: float
    p95_place_ms: float
    slippage_p95_bps: float
    fill_ratio: float


class OrderView(_S, frozen=True):
    client_order_id: str
    symbol: str
    side: str
    qty: float
    filled: float
    status: str
    reason: str
    updated_us: int


class FillView(_S, frozen=True):
    trade_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    slippage_bps: float
    ts_us: int


class ModelView(_S, frozen=True):
    champion: str
    challenger: str
    pinned: str | None
    canary_share: float
    psi: tuple[tuple[str, float], ...]
    canary_trades: int
    total_trades: int


class ReconView(_S, frozen=True):
    ts_us: int
    source: str
    duration_ms: float
    ok: bool
    mismatches: tuple[tuple[str, int], ...]
    standing: tuple[str, ...] = ()  # unresolved findings (orphans) listed by every run


class AuditView(_S, frozen=True):
    seq: int
    ts_us: int
    actor: str
    kind: str


class IncidentView(_S, frozen=True):
    ts_us: int
    actor: str
    note: str
    gates: str  # active gates when written, comma-separated, "-" when none
    flags: str  # kill_switch / safe_mode / halted when written, "-" when none


class EngineSnapshot(_S, frozen=True):
    seq: int
    ts_us: int
    profile: str
    venue: str
    role: str
    safe_mode: bool
    kill_switch: bool
    kill_reason: str
    halted: str
    armed: bool  # trading armed: neither kill switch nor safe mode nor halt
    model_id_used: str
    budget_left: int
    skew_ms: float
    skew_history: tuple[float, ...]
    equity: float
    pnl: float
    pnl_history: tuple[float, ...]
    latency_history_ms: tuple[float, ...]
    gates: tuple[GateView, ...]
    budgets: tuple[BudgetView, ...]
    feeds: tuple[FeedView, ...]
    symbols: tuple[SymbolView, ...]
    price_history: tuple[tuple[str, tuple[float, ...]], ...]
    orders: tuple[OrderView, ...]
    fills: tuple[FillView, ...]
    model: ModelView
    recon: ReconView | None
    alerts: tuple[str, ...]
    audit: tuple[AuditView, ...]
    ticks: int
    open_orders: int
    incidents: tuple[IncidentView, ...] = ()  # the journal's newest entries, oldest first


class SnapshotBuilder:
    """Keeps the short histories (sparklines) and builds snapshots from a live engine."""

    def __init__(self, history: int = 120) -> None:
        self.seq = 0
        self.skew: deque[float] = deque(maxlen=history)
        self.pnl: deque[float] = deque(maxlen=history)
        self.latency: deque[float] = deque(maxlen=history)
        self.prices: dict[str, deque[float]] = {}
        self.history = history

    def build(self, e: Any, *, role: str = "operator", strategy: Any = None, feeds: Any = None,
              reconciler: Any = None, audit_tail: tuple[AuditView, ...] = (),
              alerts: tuple[str, ...] = ()) -> EngineSnapshot:  # fmt: skip
        self.seq += 1
        now = e.clock.now_us()
        r = e.risk
        unreal = e.mark_to_market()
        pnl = (e.realized_e8 - e.fees_e8 + unreal) / SCALE
        skew = e.clock.skew_ms()
        self.skew.append(skew)
        self.pnl.append(pnl)
        if e.recent_latency_ms:
            self.latency.append(e.recent_latency_ms[-1])
        syms = []
        # KPIs over engine-wide recent windows: computed once, not once per symbol
        err = sum(e.recent_outcomes) / len(e.recent_outcomes) if e.recent_outcomes else 0.0
        place_p95, slip_p95 = p95(e.recent_latency_ms), p95(e.recent_slippage)
        for s in e.symbols:
            q = e.quotes.get(s)
            mid = (q[0] + q[1]) / 2 / SCALE if q else 0.0
            if mid:
                self.prices.setdefault(s, deque(maxlen=self.history)).append(mid)
            p = e.positions[s]
            last = e.last_quote_us.get(s, 0)
            syms.append(SymbolView(
                symbol=s, bid=q[0] / SCALE if q else 0.0, ask=q[1] / SCALE if q else 0.0,
                position=p.qty_e8 / SCALE, avg_price=p.avg_price_e8 / SCALE,
                realized=p.realized_pnl_e8 / SCALE, unrealized=p.unrealized_e8(e.mid_e8(s)) / SCALE,
                staleness_ms=(now - last) / 1000 if last else -1.0,
                error_rate=err, p95_place_ms=place_p95, slippage_p95_bps=slip_p95,
                fill_ratio=fill_ratio(e, s),
            ))  # fmt: skip
        bg = e.budget_gate
        budgets = [BudgetView(scope="account", key="all", used=r.orders_today, limit=bg.account)]
        budgets += [BudgetView(scope="symbol", key=s, used=r.orders_by_symbol.get(s, 0),
                               limit=bg.per_symbol) for s in e.symbols]  # fmt: skip
        budgets += [BudgetView(scope="strategy", key=k, used=v, limit=bg.per_strategy)
                    for k, v in sorted(r.orders_by_strategy.items())]  # fmt: skip
        orders = latest_orders(e, 50)
        reg = getattr(strategy, "registry", None)
        last_recon = getattr(reconciler, "last", None)
        return EngineSnapshot(
            seq=self.seq, ts_us=now, profile=e.cfg.name, venue=e.venue.name, role=role,
            safe_mode=r.safe_mode, kill_switch=r.kill_switch, kill_reason=r.kill_reason,
            halted=e.halted_reason,
            armed=not (r.safe_mode or r.kill_switch or e.halted_reason),
            model_id_used=(reg.pinned or reg.champion_id) if reg else "-",
            budget_left=bg.left(), skew_ms=skew, skew_history=tuple(self.skew),
            equity=r.equity_e8 / SCALE, pnl=pnl, pnl_history=tuple(self.pnl),
            latency_history_ms=tuple(self.latency),
            gates=tuple(GateView(name=g.name, active=g.active, reason=g.reason,
                                 since_us=g.since_us, denials=g.denials)
                        for g in e.gates.states.values()),
            budgets=tuple(budgets),
            feeds=tuple(_feeds(e, feeds, now)),
            symbols=tuple(syms),
            price_history=tuple((s, tuple(d)) for s, d in self.prices.items()),
            orders=tuple(OrderView(client_order_id=o.client_order_id, symbol=o.symbol,
                                   side=o.side, qty=o.qty_e8 / SCALE,
                                   filled=o.filled_qty_e8 / SCALE, status=o.status,
                                   reason=o.reason, updated_us=o.updated_us) for o in orders),
            fills=tuple(FillView(trade_id=t, client_order_id=c, symbol=sy, side=sd,
                                 qty=q / SCALE, price=px / SCALE, slippage_bps=sl, ts_us=ts)
                        for t, c, sy, sd, q, px, sl, ts in e.recent_fills),
            model=ModelView(
                champion=reg.champion_id if reg else "-",
                challenger=reg.challenger_id if reg else "-",
                pinned=reg.pinned if reg else None,
                canary_share=reg.canary_share if reg else 0.0,
                psi=tuple(sorted(r.psi.items())),
                canary_trades=int(e.metrics.canary_trades._value.get()),
                total_trades=int(e.metrics.trades._value.get()),
            ),
            recon=None if not last_recon else ReconView(
                ts_us=last_recon["ts_us"], source=last_recon["source"],
                duration_ms=last_recon["duration_ms"], ok=last_recon["ok"],
                mismatches=tuple(last_recon["mismatches"].items()),
                standing=tuple(last_recon.get("standing", ()))),
            alerts=alerts, audit=audit_tail, ticks=e.ticks, open_orders=len(e.open_orders),
            incidents=tuple(IncidentView(*i) for i in e.incidents),
        )  # fmt: skip


def _feeds(e: Any, feeds: Any, now: int) -> list[FeedView]:
    if feeds is None:  # paper: the embedded simulator is the feed
        last = max(e.last_quote_us.values(), default=0)
        return [FeedView(name="sim", connected=bool(last), uptime_s=0.0, reconnects=0,
                         staleness_ms=(now - last) / 1000 if last else -1.0)]  # fmt: skip
    return [FeedView(name=sl.name, connected=sl.connected, uptime_s=sl.uptime_s(),
                     reconnects=sl.reconnects, staleness_ms=0.0) for sl in feeds.loops]  # fmt: skip
