"""Commands through EngineAPI: model registry actions, kill switch, cancel-all, risk reset."""

from __future__ import annotations

import asyncio

import duckdb

from engine.api import EngineAPI
from engine.core.events import (
    ArmKillSwitch,
    CancelAll,
    DisarmKillSwitch,
    PinModel,
    PromoteChallenger,
    ResetRisk,
    RollbackModel,
    SetCanaryShare,
    SubmitOrder,
)
from engine.core.units import to_e8
from engine.trading import oms
from tests.conftest import feed, feed_all


def _api(b) -> EngineAPI:
    return EngineAPI(b.engine, b.strategy)


def test_promote_then_rollback_when_commanded_then_roles_swap_back_and_persist(
    make_booted, tmp_path
):
    b = make_booted(strategy="models")
    api = _api(b)
    assert api.handle(PromoteChallenger(actor="alice")).ok
    reg = b.strategy.registry
    assert (reg.champion_id, reg.challenger_id) == ("trend_fast_v1", "trend_v1")
    res = api.handle(RollbackModel(actor="alice"))
    assert res.ok
    assert (reg.champion_id, reg.challenger_id) == ("trend_v1", "trend_fast_v1")
    assert not api.handle(RollbackModel(actor="alice")).ok  # nothing left to roll back
    assert api.handle(PinModel(model_id="meanrev_v1", actor="alice")).ok
    assert api.handle(SetCanaryShare(share=0.2, actor="alice")).ok
    assert b.strategy.router.share == 0.2
    assert not api.handle(SetCanaryShare(share=1.5, actor="alice")).ok
    assert not api.handle(PinModel(model_id="nope", actor="alice")).ok
    b.close("restart")
    b2 = make_booted(strategy="models")
    assert b2.strategy.registry.pinned == "meanrev_v1"
    assert b2.strategy.registry.canary_share == 0.2
    con = duckdb.connect(str(tmp_path / "data" / "cockpit.duckdb"), read_only=False)
    kinds = [r[0] for r in con.execute("SELECT kind FROM audit_log WHERE actor='alice'").fetchall()]
    con.close()
    assert kinds == ["promoted", "rolled_back", "model_pinned", "canary_share_set"]


def test_pinned_model_when_deciding_then_every_decision_uses_it(make_booted):
    b = make_booted(strategy="models")
    api = _api(b)
    api.handle(PinModel(model_id="meanrev_v1", actor="op"))
    e = b.engine
    for _ in range(120):
        feed_all(e)
    e.clock.advance_ms(1000)
    feed_all(e)
    b.flush()
    b.writer.wait_idle()
    rows = b.con.execute("SELECT DISTINCT model_id, routed FROM decisions").fetchall()
    assert rows == [("meanrev_v1", "pinned")]


def test_kill_switch_when_armed_then_resting_orders_canceled_and_disarm_restores(make_booted):
    b = make_booted()
    api = _api(b)
    e = b.engine
    feed_all(e)
    res = api.handle(
        SubmitOrder(
            decision_id=e.ids.next(),
            symbol="BTC/USDT",
            side="buy",
            qty_e8=to_e8("0.01"),
            order_type="limit",
            limit_price_e8=to_e8(60000),
            actor="op",
        )
    )
    assert res.ok
    assert e.order_cache.orders[res.ref].status == oms.ACCEPTED
    assert api.handle(ArmKillSwitch(actor="op", reason="drill")).ok
    assert e.order_cache.orders[res.ref].status == oms.CANCELED
    assert e.metrics.registry.get_sample_value("gate_kill_switch_active") == 1
    assert api.handle(DisarmKillSwitch(actor="op", reason="done")).ok
    assert e.metrics.registry.get_sample_value("gate_kill_switch_active") == 0


def test_cancel_all_when_symbol_given_then_only_that_symbol_canceled(make_booted):
    b = make_booted()
    api = _api(b)
    e = b.engine
    feed_all(e)
    ids = []
    for sym, px, qty in (("BTC/USDT", 60000, "0.01"), ("ETH/USDT", 3000, "0.1")):
        ids.append(
            api.handle(
                SubmitOrder(
                    decision_id=e.ids.next(),
                    symbol=sym,
                    side="buy",
                    qty_e8=to_e8(qty),
                    order_type="limit",
                    limit_price_e8=to_e8(px),
                    actor="op",
                )
            ).ref
        )
    assert api.handle(CancelAll(symbol="ETH/USDT", actor="op")).ok
    assert [e.order_cache.orders[i].status for i in ids] == [oms.ACCEPTED, oms.CANCELED]


def test_reset_risk_when_drawdown_breached_then_rebaselined_and_audited(make_booted):
    b = make_booted(
        {
            "risk.max_daily_drawdown_pct": 1.0,
            "risk.risk_per_trade_pct": 100.0,
            "risk.max_order_notional_usd": 1e9,
            "risk.max_position_notional_usd": 1e9,
            "risk.max_gross_exposure_usd": 1e9,
        }
    )
    api = _api(b)
    e = b.engine
    feed_all(e)
    api.handle(
        SubmitOrder(
            decision_id=e.ids.next(), symbol="BTC/USDT", side="buy", qty_e8=to_e8("1"), actor="op"
        )
    )
    feed(e, "BTC/USDT", 61999, 62001)
    e.refresh()
    assert e.gates.states["daily_drawdown"].active
    res = api.handle(ResetRisk(actor="op", reason="reviewed"))
    assert res.ok
    assert "drawdown baseline 3.05% -> 0.00%" in res.message
    assert "account 1" in res.message  # says which budgets it restarted
    assert not e.gates.states["daily_drawdown"].active
    assert e.risk.orders_today == 0
    assert e.risk.orders_by_symbol == {}
    assert e.budget_gate.left() == e.budget_gate.account


def test_execute_when_called_from_another_thread_then_runs_on_engine_loop(make_booted):
    import threading

    b = make_booted()
    api = _api(b)
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        fut = asyncio.run_coroutine_threadsafe(api.execute(ArmKillSwitch(actor="ui")), loop)
        assert fut.result(timeout=5).ok
        assert b.engine.risk.kill_switch
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(timeout=5)
