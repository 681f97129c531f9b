"""Venue messages → engine events: pure translations of Binance/ccxt answers (REST order info,
user-stream order and trade frames) into ``VenueOrderUpdate`` / ``VenueFill``.

Invariants:
- Amounts become exact e8 integers (``Decimal`` of the venue's text, never a float).
- A commission charged in the base asset is valued in quote at the fill price and also reported
  as ``fee_base_e8`` (the account holds that much less base than the fills say); a commission in
  a third asset (e.g. BNB) is not part of the quote PnL (0).
- The venue's reason text is carried literally; "NONE" means no reason.
"""

from __future__ import annotations

from typing import Any

from engine.core.events import VenueFill, VenueOrderUpdate
from engine.core.units import SCALE
from engine.venues.ccxt_views import STATUS, e8


def info_update(info: dict[str, Any], cid: str | None, now_us: int) -> VenueOrderUpdate:
    """A REST order answer (``info``): its state; ``cid`` when the caller knows it better."""
    cid = cid or info.get("origClientOrderId") or info.get("clientOrderId") or ""
    return VenueOrderUpdate(
        client_order_id=cid,
        venue_order_id=str(info.get("orderId", "")),
        status=STATUS.get(str(info.get("status")), "accepted"),
        filled_qty_e8=e8(info.get("executedQty")),
        ts_us=now_us,
    )


def ws_order_update(order: dict[str, Any], now_us: int) -> VenueOrderUpdate | None:
    """A user-stream order frame (latest-state snapshot); None when it names no client id."""
    info = order.get("info") or {}
    cid = info.get("C") or info.get("c") or order.get("clientOrderId")
    if not cid:
        return None
    reason = info.get("r")
    return VenueOrderUpdate(
        client_order_id=cid,
        venue_order_id=str(info.get("i", order.get("id", ""))),
        status=STATUS.get(str(info.get("X")), "accepted"),
        filled_qty_e8=e8(info.get("z")),
        ts_us=int(info.get("E") or 0) * 1000 or now_us,
        reason=str(reason or "") if reason not in (None, "NONE") else "",
    )


def fill_event(
    cid: str,
    void: str,
    symbol: str,
    side: str,
    trade_id: str,
    amounts: tuple[Any, Any, Any, Any],
    liquidity: str,
    ts_us: int,
) -> VenueFill:
    """One execution; ``amounts`` is the venue's (qty, price, commission, commission asset)."""
    qty, price, fee, fee_asset = amounts
    price_e8 = e8(price)
    fee_e8 = e8(fee)
    fee_base = 0
    base, quote = symbol.split("/")
    if fee_asset == base:
        fee_base = fee_e8  # the account holds this much less base than the fills say
        fee_e8 = fee_e8 * price_e8 // SCALE  # commission taken in base: value it in quote
    elif fee_asset not in (quote, None, ""):
        fee_e8 = 0  # a third asset (e.g. BNB): not in our quote PnL
    return VenueFill(
        client_order_id=cid,
        venue_order_id=void,
        trade_id=trade_id,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        qty_e8=e8(qty),
        price_e8=price_e8,
        fee_e8=fee_e8,
        liquidity=liquidity,  # type: ignore[arg-type]
        ts_us=ts_us,
        fee_base_e8=fee_base,
    )
