"""Reconciliation views over ccxt: what the venue says about open orders, our fills, balances.

Used by the reconciler (start-up, periodic, ``cockpit reconcile``) through ``CcxtVenue``. REST
only; every call waits out a rate-limit backoff first. Client ids of trades are resolved through
the order they belong to (REST trades do not carry them).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import ccxt.async_support as ccxt_async

from engine.core.events import VenueFill
from engine.core.units import SCALE, to_e8
from engine.trading.venue_port import VenueOrderView

if TYPE_CHECKING:
    from engine.venues.ccxt_venue import CcxtVenue


STATUS = {
    "NEW": "accepted",
    "PENDING_NEW": "accepted",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "PENDING_CANCEL": "accepted",
    "REJECTED": "rejected",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
}


def _status(raw: str, default: str) -> str:
    return STATUS.get(raw, default)


def e8(x: Any) -> int:
    return to_e8(Decimal(str(x))) if x not in (None, "") else 0


def fee_asset(ex: Any, currency: Any) -> str:
    if not currency:
        return ""
    try:
        return str(ex.currency(currency)["id"])
    except Exception:  # noqa: BLE001 - currencies are not loaded offline (fetchCurrencies off)
        return str(currency)


async def fetch_open(v: CcxtVenue, symbol: str) -> list[VenueOrderView]:
    await v.backoff.wait(cancel=True)
    out = []
    for o in await v.ex.fetch_open_orders(symbol):
        info = o["info"]
        cid = str(info.get("clientOrderId") or "")
        void = str(info.get("orderId", ""))
        if cid and void:
            v.venue_to_cid.setdefault(void, cid)
        out.append(
            VenueOrderView(
                cid,
                void,
                symbol,
                str(info.get("side", "")).lower(),
                str(info.get("type", "")).lower(),
                _status(str(info.get("status")), "accepted"),
                e8(info.get("origQty")),
                e8(info.get("executedQty")),
                e8(info.get("price")),
            )
        )
    return out


async def fetch_fills(v: CcxtVenue, symbol: str, since_ms: int | None) -> list[VenueFill]:
    """Our trades since ``since_ms`` (client ids resolved through the order they belong to)."""
    await v.backoff.wait(cancel=True)
    out = []
    for t in await v.ex.fetch_my_trades(symbol, since_ms, 1000):
        void = str(t["info"].get("orderId", t.get("order", "")))
        cid = v.venue_to_cid.get(void)
        if cid is None:
            try:
                o = await v.ex.fetch_order(void, symbol)
                cid = str(o["info"].get("clientOrderId") or "")
            except ccxt_async.OrderNotFound:
                cid = ""
            v.venue_to_cid[void] = cid
        fee = t.get("fee") or {}
        price_e8 = e8(t["price"])
        fee_e8 = e8(fee.get("cost"))
        base, quote = symbol.split("/")
        asset = fee_asset(v.ex, fee.get("currency"))
        fee_base = 0
        if asset == base:
            fee_base = fee_e8
            fee_e8 = fee_e8 * price_e8 // SCALE
        elif asset not in (quote, ""):
            fee_e8 = 0
        out.append(
            VenueFill(
                client_order_id=cid,
                venue_order_id=void,
                trade_id=str(t["id"]),
                symbol=symbol,
                side=t["side"],
                qty_e8=e8(t["amount"]),
                price_e8=price_e8,
                fee_e8=fee_e8,
                liquidity="maker" if t.get("takerOrMaker") == "maker" else "taker",
                ts_us=int(t["timestamp"]) * 1000,
                fee_base_e8=fee_base,
            )
        )
    return out


async def fetch_balances(v: CcxtVenue) -> dict[str, int] | None:
    await v.backoff.wait(cancel=True)
    bal = await v.ex.fetch_balance()
    return {a: e8(v) for a, v in (bal.get("total") or {}).items() if v is not None}
