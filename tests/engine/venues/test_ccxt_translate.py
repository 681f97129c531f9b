"""Venue answers → engine events (``engine.venues.ccxt_translate``): exact amounts, commissions
in base, quote or a third asset, user-stream frames with and without a reason or client id."""

from __future__ import annotations

from engine.core.units import to_e8
from engine.venues.ccxt_translate import fill_event, info_update, ws_order_update


def test_fill_when_commission_in_base_then_valued_in_quote_and_reported_as_base_fee() -> None:
    f = fill_event("c", "9", "BTC/USDT", "buy", "t1", ("0.1", "60000.5", "0.0001", "BTC"),
                   "taker", 5)  # fmt: skip
    assert f.qty_e8 == to_e8("0.1")
    assert f.price_e8 == to_e8("60000.5")
    assert f.fee_base_e8 == to_e8("0.0001")
    assert f.fee_e8 == to_e8("6.00005")  # 0.0001 BTC at the fill price, exact


def test_fill_when_commission_in_quote_or_third_asset_then_quote_fee_or_none() -> None:
    quote = fill_event("c", "9", "ETH/USDT", "sell", "t2", ("2", "3000", "0.6", "USDT"), "maker", 5)
    assert (quote.fee_e8, quote.fee_base_e8, quote.liquidity) == (to_e8("0.6"), 0, "maker")
    bnb = fill_event("c", "9", "ETH/USDT", "sell", "t3", ("2", "3000", "0.01", "BNB"), "taker", 5)
    assert (bnb.fee_e8, bnb.fee_base_e8) == (0, 0)  # not part of the quote PnL
    none = fill_event("c", "9", "ETH/USDT", "sell", "t4", ("2", "3000", None, None), "taker", 5)
    assert none.fee_e8 == 0


def test_ws_order_frame_when_reason_none_or_no_client_id() -> None:
    frame = {"info": {"c": "ck-1-1.0", "i": 77, "X": "PARTIALLY_FILLED", "z": "0.00100000",
                      "E": 1_700_000_000_123, "r": "NONE"}}  # fmt: skip
    u = ws_order_update(frame, now_us=1)
    assert u is not None
    assert (u.client_order_id, u.venue_order_id, u.status) == ("ck-1-1.0", "77", "partially_filled")
    assert u.filled_qty_e8 == to_e8("0.001")
    assert u.ts_us == 1_700_000_000_123_000
    assert u.reason == ""
    rejected = ws_order_update({"info": {"c": "x", "X": "REJECTED", "r": "<b>LOT_SIZE</b>"}}, 42)
    assert rejected is not None
    assert rejected.reason == "<b>LOT_SIZE</b>"  # the venue's text, literally
    assert rejected.ts_us == 42
    assert ws_order_update({"info": {"X": "NEW"}}, 1) is None


def test_info_update_when_cid_known_then_it_wins_and_unknown_status_is_accepted() -> None:
    info = {"orderId": 5, "clientOrderId": "venue-side", "status": "WEIRD", "executedQty": "1.5"}
    u = info_update(info, "ck-1-2.0", 9)
    assert (u.client_order_id, u.venue_order_id, u.status) == ("ck-1-2.0", "5", "accepted")
    assert u.filled_qty_e8 == to_e8("1.5")
    assert info_update(
        {"origClientOrderId": "o", "status": "EXPIRED_IN_MATCH"}, None, 9
    ).status == ("expired")
