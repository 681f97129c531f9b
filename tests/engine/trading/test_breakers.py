"""Breakers and budgets across a restart, and what a tripped breaker still lets through.

The trip itself is proven through the real venue path in tests/venue/test_breakers.py; here the
paper engine and a real DuckDB file check the latch: persisted, restored, reset only by an
operator, and never in the way of getting flat.
"""

from __future__ import annotations

from engine.api import EngineAPI
from engine.core.events import ResetBreaker, ResetRisk, SubmitOrder
from engine.core.units import to_e8
from tests.conftest import feed_all


def order(e, side="buy", qty="0.01"):
    return SubmitOrder(
        decision_id=e.ids.next(), symbol="BTC/USDT", side=side, qty_e8=to_e8(qty), actor="op"
    )


def trip_error_rate(e) -> None:
    now = e.clock.now_us()
    for _ in range(e.breakers.by_name["error_rate"].min_sample):
        e.kpis.note_outcome("BTC/USDT", now, True)
    e.refresh()


def test_tripped_breaker_when_engine_restarts_then_still_tripped_until_reset(make_booted):
    b = make_booted({"risk.breaker_min_sample": 3})
    e = b.engine
    feed_all(e)
    trip_error_rate(e)
    assert e.gates.states["error_rate"].active
    b.close("restart")
    b2 = make_booted({"risk.breaker_min_sample": 3})
    e2 = b2.engine
    feed_all(e2)
    e2.refresh()
    assert e2.gates.states["error_rate"].active  # the trip survived: fail closed
    assert e2.submit(order(e2)).ref == "error_rate"
    res = EngineAPI(e2).handle(ResetBreaker(name="all", actor="op", reason="reviewed"))
    assert res.ok, res.message
    assert e2.submit(order(e2)).ok
    b2.close("restart")
    b3 = make_booted({"risk.breaker_min_sample": 3})
    feed_all(b3.engine)
    b3.engine.refresh()
    assert not b3.engine.gates.states["error_rate"].active  # the reset survived too


def test_tripped_breaker_when_order_reduces_position_then_it_passes(make_booted):
    b = make_booted({"risk.breaker_min_sample": 3})
    e = b.engine
    feed_all(e)
    assert e.submit(order(e, "buy", "0.02")).ok
    trip_error_rate(e)
    assert e.submit(order(e, "buy", "0.01")).ref == "error_rate"
    assert e.submit(order(e, "sell", "0.02")).ok  # getting flat never waits for a reset
    assert e.submit(order(e, "sell", "0.01")).ref == "error_rate"  # opening short: new risk


def test_breaker_reset_when_observer_or_unknown_name_then_refused(make_booted):
    b = make_booted({"risk.breaker_min_sample": 3})
    e = b.engine
    trip_error_rate(e)
    assert not EngineAPI(e, role="observer").handle(ResetBreaker(name="error_rate")).ok
    bad = EngineAPI(e).handle(ResetBreaker(name="nope"))
    assert not bad.ok
    assert "known: error_rate, slippage" in bad.message
    assert e.gates.states["error_rate"].active


def test_risk_reset_when_budget_spent_then_budget_restarts_and_survives_restart(make_booted):
    ov = {"risk.budget_orders_per_day_account": 2, "risk.max_trades_per_day": 100}
    b = make_booted(ov)
    e = b.engine
    feed_all(e)
    assert e.submit(order(e)).ok
    assert e.submit(order(e, "sell")).ok
    assert e.submit(order(e)).ref == "budget"
    res = EngineAPI(e).handle(ResetRisk(actor="op", reason="go-live day"))
    assert "account 2" in res.message
    assert e.submit(order(e)).ok
    b.close("restart")
    b2 = make_booted(ov)
    feed_all(b2.engine)
    assert b2.engine.risk.orders_today == 1  # only the order after the reset counts
    assert b2.engine.submit(order(b2.engine, "sell")).ok
    assert b2.engine.submit(order(b2.engine)).ref == "budget"


def test_healthcheck_when_safe_mode_on_and_errors_high_then_not_ok(make_booted):
    from engine.runtime.maintenance import healthcheck_online

    b = make_booted({"risk.breaker_min_sample": 3})
    e = b.engine
    feed_all(e)
    e.refresh()
    b.evaluate_alerts()
    ok = healthcheck_online(e, b.reconciler, True, b.alerts)
    assert ok["status"] == "degraded"  # never reconciled in this unit rig
    assert {c["name"]: c["status"] for c in ok["checks"]}["breakers"] == "ok"
    e.risk.safe_mode = True
    trip_error_rate(e)  # 3 of 3 orders rejected: 100 %
    b.evaluate_alerts()
    report = healthcheck_online(e, b.reconciler, True, b.alerts)
    by_name = {c["name"]: c for c in report["checks"]}
    assert report["status"] == "failing"
    assert by_name["safe_mode"]["status"] == "degraded"
    assert by_name["breakers"]["status"] == "failing"
    assert by_name["error_rate"]["status"] == "failing"
    assert "100.0%" in by_name["error_rate"]["detail"]
    assert "BreakerTripped" in by_name["alerts"]["detail"]
