"""The venue error table, end to end: real engine → real ccxt → loopback venue simulator.

Each test asserts what the venue really holds afterwards (its own truth via /admin/state), so "no
second order" is checked where it matters.
"""

from __future__ import annotations

import asyncio
import time

from engine.core.events import SubmitOrder
from engine.core.units import to_e8
from engine.trading import oms
from engine.trading.commands import Commands
from tests.venue.conftest import until


def order(e, symbol="BTC/USDT", side="buy", qty="0.001", did=None, **kw):
    return SubmitOrder(
        decision_id=did or e.ids.next(), symbol=symbol, side=side, qty_e8=to_e8(qty), **kw
    )


def venue_orders(state: dict, cid: str) -> list[dict]:
    return [o for o in state["orders"] if o.get("clientOrderId") == cid]


async def test_market_order_when_filled_then_db_fills_equal_venue_trades(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    cids = [e.submit(order(e, qty="0.002")).ref, e.submit(order(e, "ETH/USDT", "sell", "0.05")).ref]
    await rig.settle()
    assert all(e.order_cache.orders[c].status == oms.FILLED for c in cids)
    state = await rig.venue_state()
    venue = sorted(
        (str(t["id"]), t["qty"]) for t in state["trades"] if t.get("clientOrderId") in cids
    )
    db = sorted(
        (tid, q)
        for tid, q in rig.booted.con.execute("SELECT trade_id, qty_e8 FROM fills").fetchall()
    )
    assert [t for t, _ in venue] == [t for t, _ in db]
    assert venue
    assert [to_e8(q) for _, q in venue] == [q for _, q in db]
    assert all(len(venue_orders(state, c)) == 1 for c in cids)
    assert set(rig.guard.dialled) == {"127.0.0.1"}
    assert not rig.guard.blocked


async def test_limit_order_when_canceled_then_canceled_at_venue(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    bid = e.market.quotes["BTC/USDT"][0]
    res = e.submit(order(e, order_type="limit", limit_price_e8=bid - bid // 20))
    await until(lambda: e.order_cache.orders[res.ref].status == oms.ACCEPTED, what="ack")
    assert Commands(e).cancel(res.ref, "op").ok
    await until(lambda: e.order_cache.orders[res.ref].status == oms.CANCELED, what="cancel")
    state = await rig.venue_state()
    assert [o["status"] for o in venue_orders(state, res.ref)] == ["CANCELED"]


async def test_duplicate_client_id_when_order_already_live_then_adopted_not_resent(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    bid = e.market.quotes["BTC/USDT"][0]
    px = (bid - bid // 20) // 1_000_000 * 1_000_000  # on the 0.01 tick grid
    cid = "dup-7.0"  # the id the engine derives from decision "dup-7"
    await rig.venue.ex.create_order(
        "BTC/USDT", "limit", "buy", 0.001, px / 1e8, {"newClientOrderId": cid}
    )
    res = e.submit(order(e, did="dup-7", order_type="limit", limit_price_e8=px))
    assert res.ok
    assert res.ref == cid
    await until(
        lambda: (
            e.order_cache.orders[cid].status == oms.ACCEPTED
            and e.order_cache.orders[cid].venue_order_id
        ),
        what="adopted",
    )
    state = await rig.venue_state()
    assert len(venue_orders(state, cid)) == 1
    assert e.metrics.registry.get_sample_value("orders_error_total", {"reason": "duplicate"}) == 1


async def test_venue_clock_off_when_order_sent_then_resync_and_one_retry(rig_factory):
    # a venue 3 s ahead is inside a 5000 ms recvWindow (Binance accepts it), so use 2000 ms
    for offset in (3000, -3000):
        rig = await rig_factory(
            {"risk.max_time_skew_ms": 10_000.0, "exchange.recv_window_ms": 2000}
        )
        e = rig.engine
        await rig.quotes_ready()
        await rig.admin("clock", {"offset_ms": offset})
        res = e.submit(order(e))
        await rig.settle()
        assert e.order_cache.orders[res.ref].status == oms.FILLED
        state = await rig.venue_state()
        assert len(venue_orders(state, res.ref)) == 1
        assert abs(e.clock.skew_ms() + offset) < 300  # measured: local is behind/ahead
        reg = e.metrics.registry
        assert reg.get_sample_value("orders_error_total", {"reason": "clock_skew"}) == 1
        await rig.admin("clock", {"offset_ms": 0})
        await rig_factory.close(rig)


async def test_skew_gate_when_venue_clock_3s_off_then_new_orders_blocked(rig_factory):
    rig = await rig_factory({"risk.max_time_skew_ms": 500.0})
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin("clock", {"offset_ms": 3000})
    await rig.venue.resync_clock()
    res = e.submit(order(e))
    assert not res.ok
    assert "clock_skew" in res.message
    await rig.admin("clock", {"offset_ms": 0})


async def test_rate_limited_when_429_with_retry_after_then_backs_off_and_places_once(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin(
        "inject",
        {
            "method": "POST",
            "path": "/api/v3/order",
            "count": 1,
            "kind": "binance_error",
            "status": 429,
            "code": -1003,
            "msg": "Too many requests.",
            "retry_after_s": 1,
        },
    )
    t0 = time.monotonic()
    res = e.submit(order(e))
    await rig.settle()
    assert time.monotonic() - t0 >= 0.9  # honoured Retry-After
    assert e.order_cache.orders[res.ref].status == oms.FILLED
    assert len(venue_orders(await rig.venue_state(), res.ref)) == 1
    assert e.metrics.registry.get_sample_value("orders_error_total", {"reason": "rate_limit"}) == 1


async def test_accepted_but_answered_late_when_client_times_out_then_adopted(rig_factory):
    rig = await rig_factory(timeout_ms=800)
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin(
        "inject",
        {
            "method": "POST",
            "path": "/api/v3/order",
            "count": 1,
            "kind": "accept_late",
            "delay_ms": 2500,
        },
    )
    res = e.submit(order(e))
    reg = e.metrics.registry
    # the REST call times out (unknown outcome) while the user stream may already report the
    # fill: either way the order ends filled, once, and is never re-sent
    await until(
        lambda: reg.get_sample_value("orders_error_total", {"reason": "unknown_outcome"}) == 1,
        what="timeout path",
    )
    await rig.settle()
    await asyncio.sleep(0.5)  # let the resolver's query land
    assert e.order_cache.orders[res.ref].status == oms.FILLED
    assert len(venue_orders(await rig.venue_state(), res.ref)) == 1


async def test_execution_status_unknown_when_not_placed_then_never_sent_after_grace(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    for kind, extra in (
        (
            "binance_error",
            {
                "status": 503,
                "code": -1007,
                "msg": "Timeout waiting for response from backend server. Send status "
                "unknown; execution status unknown.",
            },
        ),
        ("http_error", {"status": 503}),
    ):
        await rig.admin(
            "inject", {"method": "POST", "path": "/api/v3/order", "count": 1, "kind": kind, **extra}
        )
        res = e.submit(order(e))
        await until(
            lambda res=res: e.order_cache.orders[res.ref].status == oms.NEVER_SENT, 10, "never_sent"
        )
        assert venue_orders(await rig.venue_state(), res.ref) == []


async def test_connection_dropped_after_processing_then_unknown_resolved_by_query(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin(
        "inject",
        {"method": "POST", "path": "/api/v3/order", "count": 1, "kind": "drop", "process": True},
    )
    res = e.submit(order(e))
    await rig.settle()
    assert e.order_cache.orders[res.ref].status == oms.FILLED
    assert len(venue_orders(await rig.venue_state(), res.ref)) == 1


async def test_filter_failures_when_submitted_then_terminal_reject_with_venue_text(rig_factory):
    rig = await rig_factory(
        {
            "risk.risk_per_trade_pct": 100.0,
            "risk.max_order_notional_usd": 1e12,
            "risk.max_position_notional_usd": 1e12,
            "risk.max_gross_exposure_usd": 1e12,
            "paper.starting_balance_usd": 1e10,
        }
    )
    e = rig.engine
    await rig.quotes_ready()
    notional = e.submit(order(e, qty="0.00005"))  # ~3 USDT < NOTIONAL 5: stopped before send
    assert not notional.ok
    assert "minimum notional" in notional.message
    broke = e.submit(order(e, side="sell", qty="500"))  # more BTC than the account holds
    await rig.settle()
    b = e.order_cache.orders[broke.ref]
    assert b.status == oms.REJECTED
    assert "insufficient balance" in b.reason.lower()
    state = await rig.venue_state()
    assert venue_orders(state, broke.ref) == []
    assert not state["orders"]


async def test_bad_credentials_when_order_sent_then_rejected_and_trading_halted(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    rig.venue.ex.secret = "not-the-secret"
    res = e.submit(order(e))
    await until(lambda: e.order_cache.orders[res.ref].status == oms.REJECTED, what="reject")
    assert e.halted_reason
    assert e.risk.kill_switch
    assert not e.submit(order(e, side="sell")).ok


async def test_ws_drop_when_mid_stream_then_reconnects_and_catches_up(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await until(lambda: all(sl.connected for sl in rig.feeds.loops), 15, "all streams up")
    await rig.admin("ws_drop", {"which": "all"})
    await until(lambda: sum(sl.reconnects for sl in rig.feeds.loops) >= 3, 15, "reconnects")
    before = e.market.last_quote_us["BTC/USDT"]
    await until(lambda: e.market.last_quote_us["BTC/USDT"] > before, 10, "quotes after reconnect")
    res = e.submit(order(e))
    await rig.settle()
    assert e.order_cache.orders[res.ref].status == oms.FILLED
    # a reconnect counts once its subscription is confirmed (a quiet user stream: the venue's
    # subscribe ack, then a pending watch), which may come after the order settled over REST
    await until(lambda: all(sl.connected for sl in rig.feeds.loops), 15, "all streams back")
    reg = e.metrics.registry
    assert reg.get_sample_value("ws_reconnects_total", {"ws": "orders"}) >= 1


async def test_order_book_gap_when_frames_dropped_then_symbol_blocked_until_resync(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin("net", {"drop_rate": 0.3, "seed": 1})
    await until(lambda: "BTC/USDT" in e.market.blocked, 15, "book gap detected")
    await rig.admin("net", {"drop_rate": 0.0})
    await until(lambda: "BTC/USDT" not in e.market.blocked, 15, "book resynced")
    reg = e.metrics.registry
    assert reg.get_sample_value("order_book_resyncs_total", {"symbol": "BTC/USDT"}) >= 1


async def test_order_when_book_gap_open_then_denied_by_stale_data_gate(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    e.market.blocked.block("ETH/USDT", "book", "ETH/USDT: order book gap, resyncing")
    res = e.submit(order(e, "ETH/USDT"))
    assert not res.ok
    assert "order book gap" in res.message
    await asyncio.sleep(0)
