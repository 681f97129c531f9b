"""Builds the cockpit's immutable `EngineSnapshot` from the live engine (engine thread only).

Role: read the engine's state and produce the view types of `engine.snapshot`; it lives in the
trading layer because it reads trading state, so the view types stay free of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

from engine.core.events import ReconReport
from engine.core.units import SCALE
from engine.snapshot import (
    AlertView,
    AuditView,
    BudgetView,
    EngineSnapshot,
    FeedView,
    FillView,
    GateView,
    IncidentView,
    ModelView,
    OrderView,
    ReconView,
    StopsView,
    SymbolView,
)
from engine.trading.engine import Engine


class RegistryView(Protocol):
    """What a snapshot reads of the model registry (``strategy.registry``)."""

    pinned: str | None
    champion_id: str
    challenger_id: str
    canary_share: float


class FeedLoop(Protocol):
    """One market-data stream, as the feeds panel shows it."""

    name: str
    connected: bool
    reconnects: int

    def uptime_s(self) -> float: ...


class FeedSource(Protocol):
    """The ccxt feeds of a venue profile (paper has none: the simulator is its feed)."""

    @property
    def loops(self) -> Sequence[FeedLoop]: ...


class SnapshotBuilder:
    """Keeps the short histories (sparklines) and builds snapshots from a live engine."""

    def __init__(self, history: int = 120) -> None:
        self.seq = 0
        self.skew: deque[float] = deque(maxlen=history)
        self.pnl: deque[float] = deque(maxlen=history)
        self.latency: deque[float] = deque(maxlen=history)
        self.prices: dict[str, deque[float]] = {}
        self.history = history
        self.sim_up_since_us = 0  # the embedded feed: fresh quotes since (0 = stalled / none)

    def build(
        self,
        e: Engine,
        *,
        role: str = "operator",
        strategy: object = None,
        feeds: FeedSource | None = None,
        recon: ReconReport | None = None,
        audit_tail: tuple[AuditView, ...] = (),
        alerts: tuple[str, ...] = (),
        alert_states: tuple[AlertView, ...] = (),
    ) -> EngineSnapshot:
        """A snapshot of ``e`` now. Reads only: equity is computed here from the current marks,
        never stored (``Engine.refresh`` re-marks the engine's own equity once a second)."""
        self.seq += 1
        now = e.clock.now_us()
        r = e.risk
        unreal = e.unrealized_e8()
        pnl = (e.portfolio.pnl_e8() + unreal) / SCALE
        skew = e.clock.skew_ms()
        self.skew.append(skew)
        self.pnl.append(pnl)
        if e.kpis.last_ack_ms:
            self.latency.append(e.kpis.last_ack_ms)
        reg: RegistryView | None = getattr(strategy, "registry", None)
        return EngineSnapshot(
            seq=self.seq,
            ts_us=now,
            profile=e.cfg.name,
            venue=e.venue.name,
            role=role,
            safe_mode=r.safe_mode,
            kill_switch=r.kill_switch,
            kill_reason=r.kill_reason,
            halted=e.halted_reason,
            armed=not (r.safe_mode or r.kill_switch or e.halted_reason),
            model_id_used=(reg.pinned or reg.champion_id) if reg else "-",
            budget_left=e.budget_gate.left(),
            skew_ms=skew,
            skew_history=tuple(self.skew),
            equity=e.portfolio.equity_e8(unreal) / SCALE,
            pnl=pnl,
            pnl_history=tuple(self.pnl),
            latency_history_ms=tuple(self.latency),
            gates=tuple(
                GateView(
                    name=g.name,
                    active=g.active,
                    reason=g.reason,
                    since_us=g.since_us,
                    denials=g.denials,
                )
                for g in e.gates.states.values()
            ),
            budgets=_budgets(e),
            feeds=tuple(self._feeds(e, feeds, now)),
            symbols=self._symbols(e, now),
            price_history=tuple((s, tuple(d)) for s, d in self.prices.items()),
            orders=_orders(e),
            fills=_fills(e),
            model=_model(e, reg),
            recon=_recon(recon),
            alerts=alerts,
            audit=audit_tail,
            ticks=e.market.ticks,
            open_orders=len(e.order_cache.open_orders),
            incidents=tuple(IncidentView(*i) for i in e.recorder.incidents),
            stops=_stops(e),
            alert_states=alert_states,
            decisions=tuple(v for _, v in sorted(getattr(strategy, "last", {}).items())),
        )

    def _symbols(self, e: Engine, now: int) -> tuple[SymbolView, ...]:
        """Per symbol: quote, position and PnL, staleness, and the execution KPIs."""
        k = e.kpis  # each symbol's own recent windows (never the engine-wide figures)
        syms = []
        for s in e.symbols:
            q = e.market.quotes.get(s)
            mid = (q[0] + q[1]) / 2 / SCALE if q else 0.0
            if mid:
                self.prices.setdefault(s, deque(maxlen=self.history)).append(mid)
            p = e.portfolio.positions[s]
            last = e.market.last_quote_us.get(s, 0)
            syms.append(
                SymbolView(
                    symbol=s,
                    bid=q[0] / SCALE if q else 0.0,
                    ask=q[1] / SCALE if q else 0.0,
                    position=p.qty_e8 / SCALE,
                    avg_price=p.avg_price_e8 / SCALE,
                    realized=p.realized_pnl_e8 / SCALE,
                    unrealized=p.unrealized_e8(e.market.mid_e8(s)) / SCALE,
                    staleness_ms=(now - last) / 1000 if last else -1.0,
                    error_rate=k.error_rate(s)[0],
                    p95_place_ms=k.place_p95_ms(s)[0],
                    slippage_p95_bps=k.slippage_p95(s)[0],
                    fill_ratio=e.order_cache.fill_ratio(s),
                )
            )
        return tuple(syms)

    def _feeds(self, e: Engine, feeds: FeedSource | None, now: int) -> list[FeedView]:
        if feeds is not None:
            return [
                FeedView(
                    name=sl.name,
                    connected=sl.connected,
                    uptime_s=sl.uptime_s(),
                    reconnects=sl.reconnects,
                    staleness_ms=0.0,
                )
                for sl in feeds.loops
            ]
        # paper: the embedded simulator is the feed; "up" while its quotes are fresh
        last = max(e.market.last_quote_us.values(), default=0)
        fresh = bool(last) and now - last <= e.cfg.risk.max_data_staleness_ms * 1000
        if not fresh:
            self.sim_up_since_us = 0
        elif not self.sim_up_since_us:
            self.sim_up_since_us = now
        return [
            FeedView(
                name="sim",
                connected=fresh,
                uptime_s=(now - self.sim_up_since_us) / 1e6 if fresh else 0.0,
                reconnects=0,
                staleness_ms=(now - last) / 1000 if last else -1.0,
            )
        ]


def _stops(e: Engine) -> StopsView:
    r, pf = e.risk, e.preflight
    return StopsView(
        kill_scopes=tuple(sorted(r.kill_scopes.items())),
        reduce_only=r.reduce_only,
        breakers=tuple(sorted(e.breakers.tripped().items())),
        live_required=e.cfg.kind == "live",
        live_since_us=pf.live_since_us,
        preflight_id=pf.green_id,
        preflight_valid_until_us=pf.valid_until_us,
        preflight_checks=pf.last_checks,
    )


def _budgets(e: Engine) -> tuple[BudgetView, ...]:
    r, bg = e.risk, e.budget_gate
    budgets = [BudgetView(scope="account", key="all", used=r.orders_today, limit=bg.account)]
    budgets += [
        BudgetView(scope="symbol", key=s, used=r.orders_by_symbol.get(s, 0), limit=bg.per_symbol)
        for s in e.symbols
    ]
    budgets += [
        BudgetView(scope="strategy", key=k, used=v, limit=bg.per_strategy)
        for k, v in sorted(r.orders_by_strategy.items())
    ]
    return tuple(budgets)


def _orders(e: Engine) -> tuple[OrderView, ...]:
    return tuple(
        OrderView(
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            side=o.side,
            qty=o.qty_e8 / SCALE,
            filled=o.filled_qty_e8 / SCALE,
            status=o.status,
            reason=o.reason,
            updated_us=o.updated_us,
        )
        for o in e.order_cache.latest(50)
    )


def _fills(e: Engine) -> tuple[FillView, ...]:
    return tuple(
        FillView(
            trade_id=t,
            client_order_id=c,
            symbol=sy,
            side=sd,
            qty=q / SCALE,
            price=px / SCALE,
            slippage_bps=sl,
            ts_us=ts,
        )
        for t, c, sy, sd, q, px, sl, ts in e.portfolio.recent_fills
    )


def _model(e: Engine, reg: RegistryView | None) -> ModelView:
    return ModelView(
        champion=reg.champion_id if reg else "-",
        challenger=reg.challenger_id if reg else "-",
        pinned=reg.pinned if reg else None,
        canary_share=reg.canary_share if reg else 0.0,
        psi=tuple(sorted(e.risk.psi.items())),
        canary_trades=e.kpis.canary_placed,
        total_trades=e.kpis.trades_placed,
    )


def _recon(report: ReconReport | None) -> ReconView | None:
    if not report:
        return None
    return ReconView(
        ts_us=report.ts_us,
        source=report.source,
        duration_ms=report.duration_ms,
        ok=report.ok,
        mismatches=tuple(report.mismatches.items()),
        standing=tuple(report.standing),
    )
