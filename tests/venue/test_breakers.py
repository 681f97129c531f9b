"""The execution-quality gates tripped by injected venue faults, through the real order path:
engine → gates → OMS → ccxt → loopback venue simulator (rejects, slipped fills, NET_SIM latency,
dropped answers). Each test checks the gate's standing state, its gauge, a ``gate_events`` row,
and that the next order is really refused (the venue never sees it).
"""

from __future__ import annotations

import asyncio

from engine.api import EngineAPI
from engine.core.events import ResetBreaker, SubmitOrder
from engine.core.units import to_e8
from engine.trading import oms
from tests.venue.conftest import until

FAST = {"risk.breaker_min_sample": 4}


def order(e, symbol="BTC/USDT", side="buy", qty="0.001"):
    return SubmitOrder(decision_id=e.ids.next(), symbol=symbol, side=side, qty_e8=to_e8(qty))


def gate_rows(rig, gate: str) -> list[tuple[str, str]]:
    rig.booted.flush()
    rig.booted.writer.wait_idle()
    return rig.booted.con.execute(
        "SELECT action, reason FROM gate_events WHERE gate = ? ORDER BY ts_us", [gate]
    ).fetchall()


async def reject_next_orders(rig, count: int, msg: str) -> None:
    """The venue answers the next ``count`` new orders with Binance's -2010 and ``msg``."""
    await rig.admin(
        "inject",
        {
            "kind": "binance_error",
            "method": "POST",
            "path": "/api/v3/order",
            "count": count,
            "status": 400,
            "code": -2010,
            "msg": msg,
        },
    )


async def venue_order_count(rig) -> int:
    return len((await rig.venue_state())["orders"])


async def test_error_rate_breaker_when_venue_rejects_then_trips_latches_and_resets_by_operator(
    rig_factory,
):
    rig = await rig_factory({**FAST, "risk.max_error_rate": 0.2})
    e = rig.engine
    await rig.quotes_ready()
    await reject_next_orders(rig, 4, "Account has insufficient balance for requested action.")
    refs = [e.submit(order(e)).ref for _ in range(4)]
    await rig.settle()
    assert all(e.order_cache.orders[r].status == oms.REJECTED for r in refs)
    e.refresh()
    st = e.gates.states["error_rate"]
    assert st.active
    assert "error rate 100.0% over the last 4 orders" in st.reason
    assert e.metrics.gate_active["error_rate"]._value.get() == 1
    before = await venue_order_count(rig)
    denied = e.submit(order(e))
    assert not denied.ok
    assert denied.ref == "error_rate"
    await asyncio.sleep(0.2)
    assert await venue_order_count(rig) == before  # refused here, never sent
    # the venue is healthy again, time passes: a breaker never resets itself
    for _ in range(3):
        await asyncio.sleep(0.1)
        e.refresh()
    assert e.gates.states["error_rate"].active
    assert ("active", st.reason) in gate_rows(rig, "error_rate")
    assert e.recorder.state("breaker_error_rate").startswith("tripped")
    api = EngineAPI(e)
    res = api.handle(ResetBreaker(name="error_rate", actor="op", reason="venue fixed"))
    assert res.ok, res.message
    assert not e.gates.states["error_rate"].active
    ok = e.submit(order(e))
    assert ok.ok, ok.message
    await rig.settle()
    assert e.order_cache.orders[ok.ref].status == oms.FILLED
    assert not api.handle(ResetBreaker(name="error_rate", actor="op")).ok  # nothing tripped


async def test_error_rate_breaker_when_one_symbol_rejects_then_trips_on_that_symbol(rig_factory):
    rig = await rig_factory({**FAST, "risk.max_error_rate": 0.3})
    e = rig.engine
    await rig.quotes_ready()
    for _ in range(6):  # ETH fills fine: the global rate stays at 4/10
        e.submit(order(e, "ETH/USDT", qty="0.01"))
    await rig.settle()
    await reject_next_orders(rig, 4, "Market is closed.")
    for _ in range(4):
        e.submit(order(e))
    await rig.settle()
    e.refresh()
    reason = e.gates.states["error_rate"].reason
    assert "on BTC/USDT" in reason
    assert "100.0%" in reason


async def test_slippage_breaker_when_venue_fills_worse_than_the_book_then_trips(rig_factory):
    rig = await rig_factory({**FAST, "risk.max_slippage_bps": 25.0})
    e = rig.engine
    await rig.quotes_ready()
    for _ in range(4):
        e.submit(order(e))
    await rig.settle()
    e.refresh()
    assert not e.gates.states["slippage"].active  # clean fills: a few bps at most
    await rig.admin("slippage", {"bps": 60})
    for _ in range(4):
        e.submit(order(e))
    await rig.settle()
    e.refresh()
    st = e.gates.states["slippage"]
    assert st.active
    assert "slippage p95" in st.reason
    assert "> MAX_SLIPPAGE_BPS=25" in st.reason
    assert e.kpis.slippage_p95("BTC/USDT")[0] > 25
    denied = e.submit(order(e))
    assert denied.ref == "slippage"
    await rig.admin("slippage", {"bps": 0})


async def test_slo_gate_when_net_latency_above_limit_then_blocks_and_clears_after_window(
    rig_factory,
):
    rig = await rig_factory({"risk.max_p95_place_ms": 150.0, "risk.slo_window_s": 2.0})
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin("net", {"latency_ms": 250})
    try:
        for _ in range(3):
            e.submit(order(e))
        await rig.settle()
    finally:
        await rig.admin("net", {"latency_ms": 0})
    e.refresh()
    st = e.gates.states["slo"]
    assert st.active
    assert "p95 place latency" in st.reason
    assert e.submit(order(e)).ref == "slo"
    await asyncio.sleep(2.2)  # the slow acks age out of the window
    e.refresh()
    assert not e.gates.states["slo"].active
    assert e.submit(order(e)).ok


async def test_slo_gate_when_orders_get_no_answer_then_stale_p95_blocks(rig_factory):
    rig = await rig_factory(
        {"risk.slo_stale_ms": 300.0, "risk.max_p95_place_ms": 5000.0}, timeout_ms=5000
    )
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin(
        "inject",
        {
            "kind": "delay",
            "method": "POST",
            "path": "/api/v3/order",
            "count": 1,
            "delay_ms": 1500,
        },
    )
    sent = e.submit(order(e))
    assert sent.ok
    await asyncio.sleep(0.6)
    e.refresh()
    st = e.gates.states["slo"]
    assert st.active
    assert "stale p95" in st.reason
    await rig.settle()  # the answer arrives: fresh figures again
    await until(lambda: e.kpis.first_unacked_us == 0, what="ack")
    e.refresh()
    assert not e.gates.states["slo"].active


async def test_canary_cap_when_challenger_exceeds_share_of_day_then_only_challenger_denied(
    rig_factory,
):
    rig = await rig_factory({"risk.canary_notional_cap_pct": 25.0})
    e = rig.engine
    await rig.quotes_ready()
    first = e.submit(order(e), routed="challenger")  # 100 % of the day: over the cap
    assert first.ref == "canary_cap"
    assert "CANARY_NOTIONAL_CAP_PCT=25%" in first.message
    for _ in range(3):
        assert e.submit(order(e), routed="champion").ok
    assert e.submit(order(e), routed="challenger").ok  # 1 of 4 = 25 %
    capped = e.submit(order(e), routed="challenger")  # 2 of 5 = 40 %
    assert capped.ref == "canary_cap"
    assert e.submit(order(e), routed="champion").ok  # the cap never holds the champion
    await rig.settle()
    assert e.risk.canary_notional_e8 > 0


async def test_preflight_gate_when_required_on_testnet_then_orders_wait_for_a_green_one(
    rig_factory,
):
    rig = await rig_factory({"live.preflight_on_testnet": True})
    e = rig.engine
    await rig.quotes_ready()
    denied = e.submit(order(e))
    assert denied.ref == "preflight"
    assert "no green preflight" in denied.message
    e.preflight.green_id, e.preflight.valid_until_us = "pf-1", e.clock.now_us() + 60_000_000
    assert e.submit(order(e)).ok
    e.preflight.valid_until_us = e.clock.now_us() - 1
    e.refresh()
    assert "expired" in e.gates.states["preflight"].reason
    await rig.settle()
