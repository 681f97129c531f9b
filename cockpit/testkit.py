"""The fixed host: a canned engine snapshot behind the cockpit's port, and builders for view types.

Shared by the screen-snapshot tests, the hostile-text tests and ``scripts/bench_widgets.py`` (which
replaces the snapshot each refresh), so none of them imports another's test module. Nothing here
talks to an engine: ``FixedHost`` serves its snapshot and refuses every command and query.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

import msgspec

from engine.core.events import Command, CommandResult
from engine.snapshot import (
    AuditView,
    BudgetView,
    EngineSnapshot,
    FeedView,
    FillView,
    GateView,
    ModelView,
    OrderView,
    ReconView,
    SymbolView,
)

T0 = 1_700_000_000_000_000  # us
EVIL = "[red]boom[/red] [link=http://x]y[/link] :smile:"


def gate(
    name: str,
    active: bool = False,
    reason: str = "",
    since_us: int = T0 - 12_000_000,
    denials: int = 0,
) -> GateView:
    return GateView(name=name, active=active, reason=reason, since_us=since_us, denials=denials)


def order(cid: str, updated_us: int, status: str = "submitted", reason: str = "") -> OrderView:
    return OrderView(
        client_order_id=cid,
        symbol="BTC/USDT",
        side="buy",
        qty=0.01,
        filled=0.0,
        status=status,
        reason=reason,
        updated_us=updated_us,
    )


def symbol(name: str, staleness_ms: float = 40.0) -> SymbolView:
    return SymbolView(
        symbol=name,
        bid=100.0,
        ask=100.5,
        position=0.5,
        avg_price=99.0,
        realized=1.5,
        unrealized=0.25,
        staleness_ms=staleness_ms,
        error_rate=0.01,
        p95_place_ms=12.0,
        slippage_p95_bps=1.2,
        fill_ratio=0.9,
    )


def model(**kw: Any) -> ModelView:
    base: dict[str, Any] = dict(
        champion="m-champ",
        challenger="m-chall",
        pinned=None,
        canary_share=0.1,
        psi=(("m-champ", 0.05),),
        canary_trades=4,
        total_trades=40,
    )
    base.update(kw)
    return ModelView(**base)


def snap(**kw: Any) -> EngineSnapshot:
    base: dict[str, Any] = dict(
        seq=1,
        ts_us=T0,
        profile="paper",
        venue="paper-sim",
        role="operator",
        safe_mode=False,
        kill_switch=False,
        kill_reason="",
        halted="",
        armed=True,
        model_id_used="m-champ",
        budget_left=90,
        skew_ms=3.2,
        skew_history=(1.0, 2.0, 3.2),
        equity=10_000.0,
        pnl=12.5,
        pnl_history=(0.0, 5.0, 12.5),
        latency_history_ms=(10.0, 12.0),
        gates=(gate("stale_quotes"), gate("budget")),
        budgets=(
            BudgetView(scope="account", key="all", used=10, limit=100),
            BudgetView(scope="symbol", key="BTC/USDT", used=5, limit=50),
        ),
        feeds=(
            FeedView(name="sim", connected=True, uptime_s=65.0, reconnects=0, staleness_ms=40.0),
        ),
        symbols=(symbol("BTC/USDT"), symbol("ETH/USDT")),
        price_history=(("BTC/USDT", (100.0, 101.0, 100.5)), ("ETH/USDT", (10.0, 10.2))),
        orders=(
            order("c1", T0 - 3_000_000),
            order("c2", T0 - 2_000_000),
            order("c3", T0 - 1_000_000),
        ),
        fills=(
            FillView(
                trade_id="t1",
                client_order_id="c1",
                symbol="BTC/USDT",
                side="buy",
                qty=0.01,
                price=100.2,
                slippage_bps=0.5,
                ts_us=T0 - 500_000,
            ),
        ),
        model=model(),
        recon=ReconView(
            ts_us=T0 - 30_000_000,
            source="periodic",
            duration_ms=42.0,
            ok=True,
            mismatches=(("orders", 0), ("positions", 0)),
        ),
        alerts=("feed sim reconnected",),
        audit=(
            AuditView(seq=1, ts_us=T0 - 60_000_000, actor="alice", kind="arm"),
            AuditView(seq=2, ts_us=T0 - 30_000_000, actor="bob", kind="canary_share"),
        ),
        ticks=1000,
        open_orders=3,
    )
    base.update(kw)
    return EngineSnapshot(**base)


def replace(s: EngineSnapshot, **kw: Any) -> EngineSnapshot:
    return msgspec.structs.replace(s, **kw)


class FixedHost:
    """Serves one snapshot; refuses commands and queries (nothing behind it)."""

    def __init__(self, snapshot: EngineSnapshot | None = None) -> None:
        self.snapshot: EngineSnapshot | None = snapshot or snap(
            gates=(
                gate("kill_switch"),
                gate("safe_mode"),
                gate("stale_data", True, "SOL/USDT: market data 1532 ms old > 1000 ms"),
                gate("budget"),
            ),
            orders=(order("ck-1-a.0", 1), order("ck-1-b.0", 2, "rejected", "[red]boom[/red]")),
            symbols=(symbol("BTC/USDT"), symbol("ETH/USDT")),
        )
        self.error: str | None = None
        self.alive = True

    def execute(self, cmd: Command, totp_code: str | None = None) -> Future[CommandResult]:
        f: Future[CommandResult] = Future()
        f.set_result(CommandResult(ok=False, message="fixed host"))
        return f

    def needs_totp(self, cmd: Command) -> bool:
        return False

    def query(self, name: str, args: Mapping[str, Any] | None = None) -> Future[Any]:
        f: Future[Any] = Future()
        f.set_exception(RuntimeError("fixed host: no engine behind it"))
        return f

    def stop(self, reason: str = "cockpit quit") -> None:
        self.alive = False
