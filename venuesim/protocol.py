"""Plain data of the venue simulator: orders, trades, state changes and venue errors.

Invariants:
- Amounts are ``int`` e8 (value x 1e8); they become Binance-style decimal strings only at the
  wire (``fmt``). Field order of ``Order`` and ``Trade`` is the sqlite column order (store.py).
- ``VenueError`` carries the Binance ``code``/``msg`` and the HTTP status Binance uses; the HTTP
  and WS layers render it as ``{"code", "msg"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.core.units import SCALE

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
INSUFFICIENT = "Account has insufficient balance for requested action."


class VenueError(Exception):
    """A Binance error reply: HTTP ``status``, venue ``code`` and ``msg``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def bad(code: int, msg: str) -> VenueError:
    """The common HTTP-400 rejection."""
    return VenueError(400, code, msg)


@dataclass(slots=True)
class Order:
    order_id: int
    symbol: str  # venue id, e.g. BTCUSDT
    client_order_id: str
    side: str  # BUY | SELL
    type: str  # LIMIT | LIMIT_MAKER | MARKET
    tif: str  # GTC | IOC | FOK
    price_e8: int  # 0 for MARKET
    qty_e8: int
    quote_qty_e8: int  # quoteOrderQty of a MARKET order, else 0
    executed_e8: int = 0
    cum_quote_e8: int = 0
    status: str = "NEW"
    time_ms: int = 0
    update_ms: int = 0
    locked_e8: int = 0  # funds still locked for this order (quote for BUY, base for SELL)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining_e8(self) -> int:
        return self.qty_e8 - self.executed_e8


@dataclass(slots=True)
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    price_e8: int
    qty_e8: int
    quote_e8: int
    commission_e8: int
    commission_asset: str
    time_ms: int
    is_maker: bool


@dataclass(slots=True)
class Change:
    """Everything one action changed; committed as a unit, then revealed."""

    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    assets: set[str] = field(default_factory=set)
    reports: list[dict[str, Any]] = field(default_factory=list)  # executionReport events

    def __bool__(self) -> bool:
        return bool(self.orders or self.trades or self.assets)


def fmt(v_e8: int) -> str:
    """Binance decimal string with 8 decimals: 123456789 -> '1.23456789'."""
    sign = "-" if v_e8 < 0 else ""
    v = abs(v_e8)
    return f"{sign}{v // SCALE}.{v % SCALE:08d}"


def exec_report(
    o: Order,
    x: str,
    now_ms: int,
    trade: Trade | None = None,
    client_id: str | None = None,
    orig_client_id: str = "",
) -> dict[str, Any]:
    """An ``executionReport`` for ``o`` in its current state (built at event time)."""
    return {
        "e": "executionReport",
        "E": now_ms,
        "s": o.symbol,
        "c": client_id or o.client_order_id,
        "S": o.side,
        "o": o.type,
        "f": o.tif,
        "q": fmt(o.qty_e8),
        "p": fmt(o.price_e8),
        "P": fmt(0),
        "F": fmt(0),
        "g": -1,
        "C": orig_client_id,
        "x": x,
        "X": o.status,
        "r": "NONE",
        "i": o.order_id,
        "l": fmt(trade.qty_e8 if trade else 0),
        "z": fmt(o.executed_e8),
        "L": fmt(trade.price_e8 if trade else 0),
        "n": fmt(trade.commission_e8) if trade else "0",
        "N": trade.commission_asset if trade else None,
        "T": trade.time_ms if trade else now_ms,
        "t": trade.trade_id if trade else -1,
        "I": now_ms,
        "w": o.is_open,
        "m": trade.is_maker if trade else False,
        "M": False,
        "O": o.time_ms,
        "Z": fmt(o.cum_quote_e8),
        "Y": fmt(trade.quote_e8 if trade else 0),
        "Q": fmt(o.quote_qty_e8),
        "W": o.time_ms,
        "V": "NONE",
    }


def order_json(o: Order, resp_type: str = "FULL") -> dict[str, Any]:
    """REST order payload: ACK / RESULT / FULL (``fills`` added by the caller for FULL)."""
    ack: dict[str, Any] = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "transactTime": o.update_ms,
    }
    if resp_type == "ACK":
        return ack
    ack.update(_order_fields(o))
    ack["workingTime"] = o.time_ms
    return ack


def _order_fields(o: Order) -> dict[str, Any]:
    return {
        "price": fmt(o.price_e8),
        "origQty": fmt(o.qty_e8),
        "executedQty": fmt(o.executed_e8),
        "origQuoteOrderQty": fmt(o.quote_qty_e8),
        "cummulativeQuoteQty": fmt(o.cum_quote_e8),
        "status": o.status,
        "timeInForce": o.tif,
        "type": o.type,
        "side": o.side,
        "selfTradePreventionMode": "NONE",
    }


def query_json(o: Order) -> dict[str, Any]:
    """``GET /api/v3/order`` and ``openOrders`` element."""
    out: dict[str, Any] = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
    }
    out.update(_order_fields(o))
    out.update(
        {
            "stopPrice": fmt(0),
            "icebergQty": fmt(0),
            "time": o.time_ms,
            "updateTime": o.update_ms,
            "isWorking": o.is_open,
            "workingTime": o.time_ms,
        }
    )
    return out


def cancel_json(o: Order, cancel_client_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "symbol": o.symbol,
        "origClientOrderId": o.client_order_id,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": cancel_client_id,
        "transactTime": o.update_ms,
    }
    out.update(_order_fields(o))
    return out


def fill_json(t: Trade) -> dict[str, Any]:
    return {
        "price": fmt(t.price_e8),
        "qty": fmt(t.qty_e8),
        "commission": fmt(t.commission_e8),
        "commissionAsset": t.commission_asset,
        "tradeId": t.trade_id,
    }


def my_trade_json(t: Trade) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": fmt(t.price_e8),
        "qty": fmt(t.qty_e8),
        "quoteQty": fmt(t.quote_e8),
        "commission": fmt(t.commission_e8),
        "commissionAsset": t.commission_asset,
        "time": t.time_ms,
        "isBuyer": t.side == "BUY",
        "isMaker": t.is_maker,
        "isBestMatch": True,
    }
