"""The shared sizing step (live strategy and campaigns): a target just above the venue minimum
notional but inside the market-order headroom is not sent — the venue-limits gate would deny it
at every decision (seen as 10 NOTIONAL denials per 1M-tick campaign replay)."""

from __future__ import annotations

from typing import Any

from engine.core.events import Decision
from engine.strategy.strategies import submit_target
from tests.conftest import feed_all


def _decision(size: float) -> Decision:
    return Decision(
        decision_id="d-1", ts_us=1, symbol="BTC/USDT", model_id="m", action="LONG", prob=0.9,
        expected_return=0.01, regime="TREND_UP", regime_reason="t", risk_allowed=True,
        position_size=size,
    )  # fmt: skip


def test_target_inside_market_headroom_is_not_sent_and_not_denied(make_booted: Any) -> None:
    b = make_booted()
    e = b.engine
    lot = e.lot("BTC/USDT") / 1e8
    min_notional = e.venue.limits("BTC/USDT").min_notional_e8 / 1e8
    mid = round(min_notional * 1.004 / (8 * lot), 2)  # 8 lots: 0.4 % above the minimum
    feed_all(e, {"BTC/USDT": mid}, spread_bps=0.1)
    equity = e.risk.equity_e8 / 1e8
    pct = 8.0001 * lot * mid / equity * 100  # a target of just over 8 lots
    submit_target(e, _decision(1.0), "d-1", pct, "market")
    assert e.kpis.denials == 0
    assert not e.order_cache.orders
    submit_target(e, _decision(1.0), "d-2", pct * 1.5, "market")  # 12 lots: comfortably above
    assert e.kpis.denials == 0
    assert len(e.order_cache.orders) == 1


def test_size_not_a_fraction_of_the_budget_is_never_ordered(make_booted: Any) -> None:
    import math

    b = make_booted()
    e = b.engine
    feed_all(e)
    for i, size in enumerate((math.nan, math.inf, -0.5, 1.5)):  # a model bug, not a size
        submit_target(e, _decision(size), f"d-{i}", 50.0, "market")  # was: ValueError on NaN
    assert not e.order_cache.orders  # and 1.5 was ordered at 150 % of the risk budget
    submit_target(e, _decision(1.0), "d-9", 50.0, "market")
    assert len(e.order_cache.orders) == 1
