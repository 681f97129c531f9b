"""Reconciliation classes against the loopback venue (the venue's truth decides)."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.core.events import SubmitOrder
from engine.core.units import to_e8
from engine.runtime.reconcile import Reconciler
from engine.trading import oms
from engine.trading.commands import Commands
from tests.venue.conftest import until


def order(e, symbol="BTC/USDT", side="buy", qty=None, **kw):
    qty = qty or ("0.01" if symbol == "ETH/USDT" else "0.001")  # above the 5 USDT NOTIONAL
    return SubmitOrder(decision_id=e.ids.next(), symbol=symbol, side=side, qty_e8=to_e8(qty), **kw)


def far_bid(e, symbol="BTC/USDT") -> int:
    bid = e.market.quotes[symbol][0]
    return (bid - bid // 20) // 1_000_000 * 1_000_000


async def test_reconcile_when_venue_has_our_order_unknown_to_db_then_adopted(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    cid = f"ck-zz-{e.ids.seq + 1}.0"  # our prefix: as if we crashed after the venue accepted it
    await rig.venue.ex.create_order(
        "BTC/USDT", "limit", "buy", 0.001, far_bid(e) / 1e8, {"newClientOrderId": cid}
    )
    report = await Reconciler(e, grace_s=0.2).run("manual")
    assert report.mismatches["missing_in_db"] == 1
    assert report.ok
    assert e.order_cache.orders[cid].status == oms.ACCEPTED
    assert e.order_cache.orders[cid].venue_order_id


async def _foreign_order_found(rig_factory: Any, client_id: str) -> tuple[Any, dict[str, Any]]:
    """A human places an ETH order on the account behind our back; a reconciliation runs."""
    rig = await rig_factory()
    await rig.quotes_ready()
    await rig.venue.ex.create_order(
        "ETH/USDT",
        "limit",
        "buy",
        0.01,
        far_bid(rig.engine, "ETH/USDT") / 1e8,
        {"newClientOrderId": client_id},
    )
    return rig, await Reconciler(rig.engine, grace_s=0.2).run("manual")


async def test_reconcile_when_foreign_order_then_orphan_blocks_symbol_and_alerts(rig_factory):
    rig, report = await _foreign_order_found(rig_factory, "manual-by-human-1")
    e = rig.engine
    assert report.mismatches["orphan"] == 1
    assert not report.ok
    assert "ETH/USDT" in e.market.blocked
    assert e.risk.safe_mode
    Commands(e).set_safe_mode(False, "op", "reviewed")
    res = e.submit(order(e, "ETH/USDT"))
    assert not res.ok
    assert "orphan" in res.message
    assert e.submit(order(e, "BTC/USDT")).ok  # other symbols still trade
    assert not Commands(e).acknowledge_orphans("SOL/USDT", "op").ok  # nothing to acknowledge there
    assert Commands(e).acknowledge_orphans("ETH/USDT", "op", "human order, known").ok
    assert e.submit(order(e, "ETH/USDT")).ok
    again = await Reconciler(e, grace_s=0.2).run("periodic")  # a fresh reconciler (a restart)
    assert "ETH/USDT" not in e.market.blocked
    assert again.mismatches["orphan"] == 0
    assert (
        "acked_orphans" in e.recorder.batch.upsert["engine_state"]
    )  # persisted with the next flush


async def test_reconcile_when_venue_canceled_behind_our_back_then_status_adopted(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    res = e.submit(order(e, order_type="limit", limit_price_e8=far_bid(e)))
    await until(lambda: e.order_cache.orders[res.ref].status == oms.ACCEPTED, what="ack")
    await rig.feeds.stop()  # we are deaf: the cancel's WS event never reaches us
    await rig.venue.ex.cancel_order(None, "BTC/USDT", {"origClientOrderId": res.ref})
    assert e.order_cache.orders[res.ref].status == oms.ACCEPTED
    report = await Reconciler(e, grace_s=0.2).run("periodic")
    assert report.mismatches["status_mismatch"] == 1
    assert report.ok
    assert e.order_cache.orders[res.ref].status == oms.CANCELED


async def test_reconcile_when_fill_missed_while_deaf_then_recorded_once(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await rig.feeds.stop()  # deaf to the user stream
    venue = rig.venue
    real_apply = venue._apply_response

    def ack_only(o, info):
        real_apply(o, {**info, "fills": [], "status": "NEW", "executedQty": "0"})

    venue._apply_response = ack_only
    res = e.submit(order(e))
    await until(
        lambda: e.order_cache.orders[res.ref].status == oms.ACCEPTED, what="ack without fills"
    )
    pos_before = e.portfolio.positions["BTC/USDT"].qty_e8
    r = Reconciler(e, grace_s=0.2)
    report = await r.run("manual")
    o = e.order_cache.orders[res.ref]
    assert report.mismatches["missing_fill"] >= 1
    assert o.status == oms.FILLED
    assert e.portfolio.positions["BTC/USDT"].qty_e8 == pos_before + o.qty_e8
    again = await r.run("manual")
    assert again.mismatches["missing_fill"] == 0  # recorded once
    rig.booted.flush()
    rig.booted.writer.wait_idle()
    assert rig.booted.writer.error is None


async def test_reconcile_when_balance_differs_then_position_mismatch_safe_mode(rig_factory):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    r = Reconciler(e, grace_s=0.2)
    assert (await r.run("startup")).ok  # fixes the baseline
    res = e.submit(order(e, qty="0.002"))
    await rig.settle()
    assert (await r.run("periodic")).mismatches["position_mismatch"] == 0
    state = await rig.venue_state()
    btc = (
        float(state["balances"]["BTC"]["free"])
        if isinstance(state["balances"]["BTC"], dict)
        else float(state["balances"]["BTC"])
    )
    await rig.admin("balances", {"BTC": str(btc + 1.0)})  # someone moved funds
    report = await r.run("periodic")
    assert report.mismatches["position_mismatch"] == 1
    assert not report.ok
    assert e.risk.safe_mode
    assert res.ok


async def test_confirm_timeout_when_no_ack_then_unknown_then_resolved_by_query(rig_factory):
    rig = await rig_factory({"oms.confirm_timeout_ms": 300.0}, timeout_ms=5000)
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin(
        "inject",
        {"method": "POST", "path": "/api/v3/order", "count": 1, "kind": "delay", "delay_ms": 1500},
    )
    res = e.submit(order(e))
    await asyncio.sleep(0.4)
    r = Reconciler(e, grace_s=0.2)
    assert await r.confirm_timeouts(300.0) == 1
    assert e.order_cache.orders[res.ref].status in (oms.UNKNOWN, oms.FILLED)
    await rig.settle()
    assert e.order_cache.orders[res.ref].status == oms.FILLED
    assert (
        len([o for o in (await rig.venue_state())["orders"] if o["clientOrderId"] == res.ref]) == 1
    )


async def test_unresolved_intent_when_max_open_positions_then_counts_as_exposure(rig_factory):
    rig = await rig_factory({"risk.max_open_positions": 1})
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin(
        "inject",
        {"method": "POST", "path": "/api/v3/order", "count": 1, "kind": "delay", "delay_ms": 1500},
    )
    first = e.submit(order(e, "BTC/USDT"))
    assert first.ok
    assert e.order_cache.orders[first.ref].status == oms.SUBMITTED
    second = e.submit(order(e, "SOL/USDT", qty="0.1"))
    assert not second.ok
    assert "max_open_positions" in second.message
    await rig.settle()


async def test_cancel_on_disconnect_when_user_stream_drops_then_resting_orders_canceled(
    rig_factory,
):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await rig.feeds.stop()
    from engine.venues.ccxt_feeds import FeedSupervisor

    rig.feeds = FeedSupervisor(
        rig.venue.ex,
        e,
        rig.venue,
        symbols=e.symbols,
        metrics=rig.feeds.metrics,
        base_delay_s=0.05,
        max_delay_s=0.5,
        cancel_on_disconnect=True,
    )
    rig.feeds.start()
    res = e.submit(order(e, order_type="limit", limit_price_e8=far_bid(e)))
    await until(lambda: e.order_cache.orders[res.ref].status == oms.ACCEPTED, what="ack")
    await until(lambda: all(sl.connected for sl in rig.feeds.loops), 15, "streams up")
    await rig.admin("ws_drop", {"which": "user"})
    await until(
        lambda: e.order_cache.orders[res.ref].status == oms.CANCELED, 10, "canceled by policy"
    )
    venue = [o for o in (await rig.venue_state())["orders"] if o["clientOrderId"] == res.ref]
    assert venue[0]["status"] == "CANCELED"


async def test_reconcile_when_book_resyncs_after_orphan_found_then_symbol_stays_blocked(
    rig_factory,
):
    """An order-book resync used to lift *any* block on its symbol, orphan blocks included
    (fail open): the book feed now lifts only the gap block it set."""
    rig, report = await _foreign_order_found(rig_factory, "manual-by-human-2")
    e = rig.engine
    assert report.mismatches["orphan"] == 1
    bid_e8, ask_e8 = e.market.quotes["ETH/USDT"][:2]  # a resync at the market: no dislocation halt
    book = {"symbol": "ETH/USDT", "bids": [[bid_e8 / 1e8, 1.0]], "asks": [[ask_e8 / 1e8, 1.0]]}
    rig.feeds._on_book(book)
    assert "orphan" in e.market.blocked.get("ETH/USDT", "")
    Commands(e).set_safe_mode(False, "op", "reviewed")
    res = e.submit(order(e, "ETH/USDT"))
    assert not res.ok
    assert "orphan" in res.message
