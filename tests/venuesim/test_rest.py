"""Order entry and account queries through the real ccxt REST client against the simulator."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from venuesim import VenueSim

pytestmark = pytest.mark.asyncio


async def test_load_markets_when_spot_only_recipe_then_markets_carry_filters(ex: Any) -> None:
    m = ex.market("BTC/USDT")
    assert m["spot"]
    assert m["active"]
    assert m["type"] == "spot"
    assert m["precision"]["price"] == 0.01
    assert m["precision"]["amount"] == 0.00001
    assert m["limits"]["cost"]["min"] == 5.0
    assert m["limits"]["amount"]["min"] == 0.00001
    assert set(ex.markets) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
    assert ex.market("SOL/USDT")["precision"]["price"] == 0.001


async def test_create_market_buy_when_full_response_then_fills_and_balances_move(
    ex: Any,
) -> None:
    before = await ex.fetch_balance()
    o = await ex.create_order("BTC/USDT", "market", "buy", 0.02, params={"clientOrderId": "m-1"})
    assert o["status"] == "closed"
    assert o["filled"] == 0.02
    assert o["clientOrderId"] == "m-1"
    fills = o["info"]["fills"]
    assert fills
    assert all(
        {"price", "qty", "commission", "commissionAsset", "tradeId"} <= set(f) for f in fills
    )
    assert o["fee"]["currency"] == "BTC"
    assert o["fee"]["cost"] == pytest.approx(0.00002)
    after = await ex.fetch_balance()
    assert after["BTC"]["free"] == pytest.approx(before["BTC"]["free"] + 0.02 - 0.00002)
    assert after["USDT"]["free"] == pytest.approx(before["USDT"]["free"] - o["cost"], abs=1e-6)


async def test_create_market_order_when_larger_than_depth_then_remainder_expires(
    ex: Any, admin: Any
) -> None:
    await admin("POST", "/admin/balances", {"BTC": "1000"})
    o = await ex.create_order("BTC/USDT", "market", "sell", 900.0, params={"clientOrderId": "big"})
    assert o["status"] == "expired"
    assert 0 < o["filled"] < 900.0
    assert len(o["info"]["fills"]) > 1  # walked several levels, one trade per level
    prices = [float(f["price"]) for f in o["info"]["fills"]]
    assert prices == sorted(prices, reverse=True)
    bal = await ex.fetch_balance()
    assert bal["BTC"]["used"] == 0.0  # the unfilled remainder was released


async def test_create_market_buy_when_quote_order_qty_then_spends_about_that_much(ex: Any) -> None:
    o = await ex.create_order(
        "ETH/USDT", "market", "buy", None, params={"quoteOrderQty": 1000, "clientOrderId": "q-1"}
    )
    assert o["status"] == "closed"
    assert 990 < o["cost"] <= 1000


async def test_create_limit_order_when_resting_then_locked_and_cancel_returns_original_id(
    ex: Any,
) -> None:
    bid = (await ex.fetch_order_book("BTC/USDT", 5))["bids"][0][0]
    price = round(bid * 0.9, 2)
    o = await ex.create_order(
        "BTC/USDT", "limit", "buy", 0.01, price, params={"clientOrderId": "l-1"}
    )
    assert o["status"] == "open"
    assert o["info"]["fills"] == []
    bal = await ex.fetch_balance()
    assert bal["USDT"]["used"] == pytest.approx(price * 0.01, abs=0.01)
    opened = await ex.fetch_open_orders("BTC/USDT")
    assert [x["clientOrderId"] for x in opened] == ["l-1"]
    got = await ex.fetch_order(None, "BTC/USDT", params={"clientOrderId": "l-1"})
    assert got["id"] == o["id"]
    assert got["status"] == "open"
    c = await ex.cancel_order(o["id"], "BTC/USDT")
    assert c["status"] == "canceled"
    assert c["info"]["origClientOrderId"] == "l-1"
    assert (await ex.fetch_balance())["USDT"]["used"] == 0.0
    assert await ex.fetch_open_orders("BTC/USDT") == []
    with pytest.raises(ccxt.OrderNotFound):
        await ex.cancel_order(o["id"], "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order(None, "BTC/USDT", params={"clientOrderId": "never-sent"})


async def test_create_limit_order_when_marketable_then_takes_and_rests_remainder(
    ex: Any,
) -> None:
    ask, ask_qty = (await ex.fetch_order_book("SOL/USDT", 5))["asks"][0]
    qty = round(ask_qty + 50, 3)
    # the book moves between the two calls (the venue's market keeps ticking): a limit at exactly
    # the old ask is sometimes no longer marketable, so the limit sits a little above it
    price = ask * 1.005
    o = await ex.create_order(
        "SOL/USDT", "limit", "buy", qty, price, params={"clientOrderId": "x-1"}
    )
    assert o["status"] in ("open", "closed")
    assert o["filled"] > 0
    if o["status"] == "open":
        assert o["remaining"] > 0
        await ex.cancel_order(o["id"], "SOL/USDT")


async def test_fetch_my_trades_when_orders_filled_then_trades_match_venue_state(
    ex: Any, admin: Any
) -> None:
    await ex.create_order("ETH/USDT", "market", "buy", 0.5, params={"clientOrderId": "t-1"})
    await ex.create_order("ETH/USDT", "market", "sell", 0.25, params={"clientOrderId": "t-2"})
    trades = await ex.fetch_my_trades("ETH/USDT")
    _, state = await admin("GET", "/admin/state")
    venue_ids = {t["id"] for t in state["trades"] if t["symbol"] == "ETHUSDT"}
    assert {int(t["id"]) for t in trades} == venue_ids
    assert len(trades) >= 2
    assert {t["side"] for t in trades} == {"buy", "sell"}
    assert all(t["info"]["isMaker"] is False for t in trades)


async def test_create_order_when_client_id_open_then_duplicate_until_first_closes(ex: Any) -> None:
    bid = (await ex.fetch_order_book("BTC/USDT", 5))["bids"][0][0]
    price = round(bid * 0.9, 2)
    first = await ex.create_order(
        "BTC/USDT", "limit", "buy", 0.01, price, params={"clientOrderId": "dup"}
    )
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await ex.create_order(
            "BTC/USDT", "limit", "buy", 0.01, price, params={"clientOrderId": "dup"}
        )
    await ex.cancel_order(first["id"], "BTC/USDT")
    again = await ex.create_order(
        "BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "dup"}
    )
    assert again["status"] == "closed"
    assert again["id"] != first["id"]


async def test_create_order_when_filters_violated_then_ccxt_classifies(ex: Any) -> None:
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        await ex.create_order("BTC/USDT", "limit", "buy", 0.00001, 1000.0)
    # ccxt rounds amount/price to precision itself; raw params reach the venue unrounded.
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"quantity": "0.010001"})
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        await ex.create_order(
            "BTC/USDT", "limit", "buy", 0.01, 60000, params={"price": "60000.005"}
        )
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.create_order("BTC/USDT", "limit", "buy", 100, 60000)
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.create_order("SOL/USDT", "market", "sell", 5000)


async def test_signed_call_when_secret_wrong_then_authentication_error(make_ex: Any) -> None:
    bad = make_ex(secret="wrong")
    await bad.load_markets()
    with pytest.raises(ccxt.AuthenticationError):
        await bad.fetch_balance()


async def test_unknown_api_route_when_called_then_json_error_body(venue: VenueSim) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{venue.port}/api/v3/nope") as r,
    ):
        assert r.status == 404
        body = await r.json()
    assert body == {"code": -1020, "msg": "This operation is not supported."}


async def test_order_external_when_placed_then_visible_as_foreign_open_order(
    ex: Any, admin: Any
) -> None:
    status, out = await admin(
        "POST",
        "/admin/order_external",
        {
            "symbol": "BTC/USDT",
            "side": "SELL",
            "type": "LIMIT",
            "quantity": "0.01",
            "price": "90000",
            "newClientOrderId": "orphan-1",
        },
    )
    assert status == 200
    assert out["status"] == "NEW"
    opened = await ex.fetch_open_orders("BTC/USDT")
    assert [o["clientOrderId"] for o in opened] == ["orphan-1"]
