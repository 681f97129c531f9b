"""The engine's alert rules over its own metric series: fire, resolve, audit, export.

A real paper engine (real DuckDB file, SimClock) is driven into each condition through its public
commands and order path; the alert engine reads the same registry the textfile exports. The rule
names must match the Prometheus rules file one to one (tests/engine/obs/test_alert_rules.py runs
promtool on that file).
"""

from __future__ import annotations

import re

from engine.api import EngineAPI
from engine.core.events import ResetBreaker, ResetRisk, SubmitOrder
from engine.core.units import to_e8
from engine.obs.alerts import AlertEngine, Rule, standard_rules
from tests.conftest import ROOT, feed_all


def order(e, side="buy"):
    return SubmitOrder(
        decision_id=e.ids.next(), symbol="BTC/USDT", side=side, qty_e8=to_e8("0.01"), actor="op"
    )


def tick(b, seconds: int = 1) -> None:
    for _ in range(seconds):
        b.engine.clock.advance_ms(1000)
        feed_all(b.engine)
        b.engine.refresh()
        b.evaluate_alerts()


def firing(b) -> set[str]:
    return set(b.alerts.names_firing())


def gauge(b, name: str) -> float:
    return b.engine.metrics.registry.get_sample_value("alerts_firing", {"alertname": name})


def test_budget_depleted_when_account_budget_spent_then_fires_and_resolves_on_reset(make_booted):
    b = make_booted({"risk.budget_orders_per_day_account": 2})
    e = b.engine
    feed_all(e)
    tick(b)
    assert "BudgetDepleted" not in firing(b)
    assert e.submit(order(e)).ok
    assert e.submit(order(e, "sell")).ok
    tick(b)
    assert "BudgetDepleted" in firing(b)
    assert gauge(b, "BudgetDepleted") == 1
    assert EngineAPI(e).handle(ResetRisk(actor="op", reason="new session")).ok
    tick(b)
    assert "BudgetDepleted" not in firing(b)
    assert gauge(b, "BudgetDepleted") == 0
    states = [(a.rule, a.state) for a in b.alerts.current()]
    assert ("BudgetDepleted", "resolved") in states
    b.flush()
    b.writer.wait_idle()
    kinds = [r[0] for r in b.con.execute("SELECT kind FROM audit_log ORDER BY seq").fetchall()]
    assert "alert_firing" in kinds
    assert "alert_resolved" in kinds


def test_breaker_tripped_when_error_rate_breaker_trips_then_fires_until_operator_reset(
    make_booted,
):
    b = make_booted({"risk.breaker_min_sample": 3})
    e = b.engine
    feed_all(e)
    for _ in range(3):
        e.kpis.note_outcome("BTC/USDT", e.clock.now_us(), True)
    tick(b)
    assert "BreakerTripped" in firing(b)
    tick(b, 3)
    assert "BreakerTripped" in firing(b)  # the breaker latches, so does its alert
    assert EngineAPI(e).handle(ResetBreaker(name="error_rate", actor="op")).ok
    tick(b)
    assert "BreakerTripped" not in firing(b)


def test_canary_imbalance_when_sample_small_then_silent_when_large_then_fires(make_booted):
    b = make_booted()
    e = b.engine
    feed_all(e)
    m = e.metrics
    m.canary_share.set(0.05)
    m.trades.inc(10)
    m.canary_trades.inc(5)  # 50 % of 10 trades: too few to judge
    tick(b)
    assert "CanaryImbalance" not in firing(b)
    m.trades.inc(90)  # 5 of 100 = 5 %: balanced
    tick(b)
    assert "CanaryImbalance" not in firing(b)
    m.canary_trades.inc(15)  # 20 of 100 = 20 %
    tick(b)
    assert "CanaryImbalance" in firing(b)


def test_slo_gate_stuck_when_active_26_of_30_minutes_then_fires(make_booted):
    b = make_booted()
    e = b.engine
    feed_all(e)
    slo = e.metrics.gate_active["slo"]
    slo.set(0)
    for minute in range(30):
        for _ in range(6):  # 10 s steps keep the test quick; the window is by time
            e.clock.advance_ms(10_000)
            feed_all(e)
            if minute >= 4:
                slo.set(1)
            b.alerts.evaluate(e.clock.now_us())
    assert "SLOGateStuck" in firing(b)


def test_db_write_errors_when_counter_increases_then_fires_for_five_minutes(make_booted):
    b = make_booted()
    e = b.engine
    feed_all(e)
    tick(b)
    e.metrics.db_errors.inc()
    tick(b)
    assert "DBWriteErrors" in firing(b)
    for _ in range(31):
        e.clock.advance_ms(10_000)
        b.alerts.evaluate(e.clock.now_us())
    assert "DBWriteErrors" not in firing(b)


def test_rule_when_it_raises_then_fires_loudly_never_passes_silently(make_booted):
    b = make_booted()

    def broken(s, h):
        raise ZeroDivisionError("boom")

    eng = AlertEngine(b.engine.metrics.registry.__class__(), [Rule("Broken", "page", "x", broken)])
    eng.evaluate(1)
    assert eng.names_firing() == ["Broken"]
    assert eng.current()[0].labels == (("error", "ZeroDivisionError"),)


def test_rules_when_compared_with_prometheus_file_then_same_alert_names():
    text = (ROOT / "deploy" / "prometheus" / "cockpit_alerts.yml").read_text()
    in_file = set(re.findall(r"^\s*- alert:\s*(\w+)", text, re.MULTILINE))
    assert in_file == {r.name for r in standard_rules()}
