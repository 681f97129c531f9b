"""Market streams and the WS-API user stream through ccxt.pro against the simulator."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt
import pytest

pytestmark = pytest.mark.asyncio


async def test_watch_trades_and_bids_asks_when_market_runs_then_deliver(ex: Any) -> None:
    trades = await asyncio.wait_for(ex.watch_trades("ETH/USDT"), 5)
    assert trades
    assert trades[-1]["symbol"] == "ETH/USDT"
    assert trades[-1]["price"] > 0
    ba = await asyncio.wait_for(ex.watch_bids_asks(["BTC/USDT"]), 5)
    t = ba["BTC/USDT"]
    assert 0 < t["bid"] < t["ask"]
    assert t["bidVolume"] > 0


async def test_watch_order_book_when_subscribed_then_book_equals_venue_snapshot(
    ex: Any, admin: Any
) -> None:
    nonces = []
    for _ in range(6):
        ob = await asyncio.wait_for(ex.watch_order_book("BTC/USDT"), 5)
        nonces.append(ob["nonce"])
        assert ob["bids"][0][0] < ob["asks"][0][0]
    assert nonces == sorted(nonces)
    assert nonces[-1] > nonces[0]
    # Freeze the market, let the last diffs land, then the local book must equal the venue's.
    await admin("POST", "/admin/pause", {"market": True})
    await asyncio.sleep(0.3)
    local = ex.orderbooks["BTC/USDT"]
    rest = await ex.fetch_order_book("BTC/USDT", 1000)
    assert local["nonce"] == rest["nonce"]
    assert [list(x) for x in local["bids"]] == rest["bids"]
    assert len(rest["bids"]) == 20
    assert [list(x) for x in local["asks"]] == rest["asks"]
    await admin("POST", "/admin/pause", {"market": False})


@pytest.mark.parametrize("fault", [{"drop_rate": 0.5, "seed": 7}, {"reorder_rate": 0.5, "seed": 7}])
async def test_watch_order_book_when_frames_dropped_or_reordered_then_checksum_error_and_fresh_watch_recovers(
    ex: Any, admin: Any, fault: dict[str, Any]
) -> None:
    await asyncio.wait_for(ex.watch_order_book("SOL/USDT"), 5)
    await admin("POST", "/admin/net", fault)
    with pytest.raises(ccxt.ChecksumError):  # noqa: PT012 - the fault shows within a few frames
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await asyncio.wait_for(ex.watch_order_book("SOL/USDT"), 5)
    await admin("POST", "/admin/net", {})
    first = await asyncio.wait_for(ex.watch_order_book("SOL/USDT"), 5)
    n0 = first["nonce"]
    later = await asyncio.wait_for(ex.watch_order_book("SOL/USDT"), 5)
    assert later["nonce"] > n0


async def test_watch_orders_and_my_trades_when_order_placed_then_execution_reports_arrive(
    ex: Any, admin: Any
) -> None:
    watch_orders = asyncio.ensure_future(ex.watch_orders("BTC/USDT"))
    watch_trades = asyncio.ensure_future(ex.watch_my_trades("BTC/USDT"))
    await asyncio.sleep(0.3)  # both subscriptions (one WS-API socket) are live
    placed = await ex.create_order(
        "BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "w-1"}
    )
    orders = await asyncio.wait_for(watch_orders, 5)
    trades = await asyncio.wait_for(watch_trades, 5)
    assert orders[-1]["clientOrderId"] == "w-1"
    assert orders[-1]["id"] == placed["id"]
    _, state = await admin("GET", "/admin/state")
    venue_ids = {str(t["id"]) for t in state["trades"] if t["clientOrderId"] == "w-1"}
    assert {t["id"] for t in trades} <= venue_ids
    assert trades[0]["order"] == placed["id"]
    # A cancel is reported with the original client id (C field).
    bid = (await ex.fetch_order_book("BTC/USDT", 5))["bids"][0][0]
    resting = await ex.create_order(
        "BTC/USDT", "limit", "buy", 0.01, round(bid * 0.9, 2), params={"clientOrderId": "w-2"}
    )
    await asyncio.sleep(0.2)  # the NEW report is consumed before the next watch starts
    pending = asyncio.ensure_future(ex.watch_orders("BTC/USDT"))
    await asyncio.sleep(0.1)
    await ex.cancel_order(resting["id"], "BTC/USDT")
    mine = [o for o in await asyncio.wait_for(pending, 5) if o["id"] == resting["id"]]
    assert mine[-1]["clientOrderId"] == "w-2"
    assert mine[-1]["status"] == "canceled"


async def test_watch_balance_when_order_fills_then_account_position_arrives(ex: Any) -> None:
    pending = asyncio.ensure_future(ex.watch_balance())
    await asyncio.sleep(0.3)
    await ex.create_order("ETH/USDT", "market", "sell", 1.0, params={"clientOrderId": "b-1"})
    bal = await asyncio.wait_for(pending, 5)
    assert bal["ETH"]["free"] == pytest.approx(99.0)


async def test_resting_order_when_market_crosses_then_maker_fill_reported(ex: Any) -> None:
    pending = asyncio.ensure_future(ex.watch_my_trades("SOL/USDT"))
    await asyncio.sleep(0.3)
    # Post-only one tick under the ask: it rests, and the jittering spread crosses it soon.
    for _ in range(5):
        ask = (await ex.fetch_order_book("SOL/USDT", 5))["asks"][0][0]
        try:
            o = await ex.create_order(
                "SOL/USDT",
                "limit",
                "buy",
                1.0,
                round(ask - 0.001, 3),
                params={"clientOrderId": "mk-1", "postOnly": True},
            )
            break
        except ccxt.InvalidOrder as e:
            assert "immediately match" in str(e)  # noqa: PT017 - a retry loop, not a single call
    assert o["status"] == "open"
    assert o["type"] == "limit"
    trades = await asyncio.wait_for(pending, 10)
    assert trades[-1]["order"] == o["id"]
    assert trades[-1]["takerOrMaker"] == "maker"
    assert trades[-1]["price"] == round(ask - 0.001, 3)


async def test_ws_drop_when_watch_pending_then_network_error_and_next_watch_reconnects(
    ex: Any, admin: Any
) -> None:
    await asyncio.wait_for(ex.watch_trades("BTC/USDT"), 5)
    await admin("POST", "/admin/pause", {"market": True})  # nothing resolves the watch early
    pending_trades = asyncio.ensure_future(ex.watch_trades("BTC/USDT"))
    pending_orders = asyncio.ensure_future(ex.watch_orders("BTC/USDT"))
    await asyncio.sleep(0.3)
    status, body = await admin("POST", "/admin/ws_drop", {"which": "all"})
    assert status == 200
    assert body["closed"] >= 2
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(pending_trades, 5)
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(pending_orders, 5)
    await admin("POST", "/admin/pause", {"market": False})
    assert await asyncio.wait_for(ex.watch_trades("BTC/USDT"), 5)
    again = asyncio.ensure_future(ex.watch_orders("BTC/USDT"))
    await asyncio.sleep(0.3)
    await ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "re-1"})
    orders = await asyncio.wait_for(again, 5)
    assert orders[-1]["clientOrderId"] == "re-1"


async def test_net_sim_when_latency_and_disconnects_then_rest_slow_and_sockets_cycle(
    ex: Any, admin: Any
) -> None:
    await admin("POST", "/admin/net", {"latency_ms": 150})
    t0 = time.monotonic()
    await ex.fetch_time()
    assert time.monotonic() - t0 >= 0.15
    await admin("POST", "/admin/net", {"disconnect_interval_s": 0.5})
    await asyncio.wait_for(ex.watch_trades("BTC/USDT"), 5)
    with pytest.raises(ccxt.NetworkError):  # noqa: PT012 - the fault shows within a few frames
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await asyncio.wait_for(ex.watch_trades("BTC/USDT"), 5)
    await admin("POST", "/admin/net", {})
