"""HTTP side of the venue simulator: Binance spot REST routes and the fault middlewares.

Role: map ``/api/v3/*`` requests onto the matching engine (exchange.py) with Binance's payloads,
status codes and error bodies, and route websockets (ws.py) and admin calls (admin.py).

Invariants:
- Every error under ``/api`` is JSON ``{"code", "msg"}`` (never aiohttp's HTML pages), with
  the HTTP status Binance uses; success payloads never carry a ``code`` key.
- A state change is committed (``VenueSim.apply``) before its response is built.
- Middleware order (outermost first): NET_SIM latency, injected faults, error rendering, so an
  injected fault also gets the configured latency and ``accept_late`` really processes first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from venuesim.auth import check_api_key, verify_rest
from venuesim.netsim import BAN_MSG
from venuesim.protocol import (
    Change,
    VenueError,
    bad,
    cancel_json,
    fill_json,
    fmt,
    my_trade_json,
    order_json,
    query_json,
)

if TYPE_CHECKING:
    from venuesim.venue import VenueSim

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers=headers)


def _error(e: VenueError, headers: dict[str, str] | None = None) -> web.Response:
    return _json(e.body(), status=e.status, headers=headers)


def build_app(venue: VenueSim) -> web.Application:
    @web.middleware
    async def net_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        resp = await handler(request)
        delay = venue.net.delay_s() if request.path.startswith("/api") else 0.0
        if delay:
            await asyncio.sleep(delay)
        return resp

    @web.middleware
    async def inject_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api"):
            return await handler(request)
        now_ms = venue.server_ms()
        banned = venue.injector.ban_left_ms(now_ms, None)
        rule = None if banned else venue.injector.take(request.method, request.path)
        banned = banned or venue.injector.ban_left_ms(now_ms, rule)
        if banned:  # Binance: every request of a banned IP gets 418 until the ban ends
            msg = BAN_MSG.format(until=now_ms + banned)
            return _error(VenueError(418, -1003, msg), {"Retry-After": str(-(-banned // 1000))})
        if rule is None:
            return await handler(request)
        if rule.kind == "binance_error":
            headers = {"Retry-After": str(rule.retry_after_s)} if rule.retry_after_s else None
            return _error(VenueError(rule.status, rule.code, rule.msg), headers)
        if rule.kind == "http_error":
            return web.Response(
                status=rule.status,
                text=f"<html><body>{rule.status}</body></html>",
                content_type="text/html",
            )
        if rule.kind == "delay":
            await asyncio.sleep(rule.delay_ms / 1000)
            return await handler(request)
        if rule.kind == "accept_late":
            resp = await handler(request)
            await asyncio.sleep(rule.delay_ms / 1000)
            return resp
        # drop: optionally process, then cut the connection without any reply.
        if rule.process:
            with contextlib.suppress(web.HTTPException, VenueError):
                await handler(request)
        if request.transport is not None:
            request.transport.abort()
        # Never delivered: aiohttp's write hits the aborted transport and ends quietly.
        return web.Response(status=204)

    @web.middleware
    async def error_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except VenueError as e:
            return _error(e)
        except web.HTTPException as e:
            if not request.path.startswith("/api"):
                raise
            if e.status in (404, 405):
                return _error(VenueError(e.status, -1020, "This operation is not supported."))
            return _error(VenueError(e.status, -1000, e.reason))

    app = web.Application(middlewares=[net_mw, inject_mw, error_mw])
    rest = _Rest(venue)
    r = app.router
    r.add_get("/api/v3/ping", rest.ping)
    r.add_get("/api/v3/time", rest.time)
    r.add_get("/api/v3/exchangeInfo", rest.exchange_info)
    r.add_get("/api/v3/depth", rest.depth)
    r.add_get("/api/v3/klines", venue.klines.handler)
    r.add_get("/api/v3/ticker/bookTicker", rest.book_ticker)
    r.add_get("/api/v3/account", rest.account)
    r.add_post("/api/v3/order", rest.new_order)
    r.add_get("/api/v3/order", rest.get_order)
    r.add_delete("/api/v3/order", rest.cancel_order)
    r.add_get("/api/v3/openOrders", rest.open_orders)
    r.add_get("/api/v3/myTrades", rest.my_trades)
    r.add_post("/api/v3/userDataStream", rest.listen_key)
    r.add_put("/api/v3/userDataStream", rest.listen_key)
    r.add_delete("/api/v3/userDataStream", rest.listen_key)
    r.add_route("*", "/api/{tail:.*}", rest.unknown)
    for path in ("/ws", "/ws/{tail}", "/stream", "/stream/{tail}"):
        r.add_get(path, venue.hub.market_handler)
    r.add_get("/ws-api/v3", venue.hub.ws_api_handler)
    from venuesim.admin import add_admin_routes

    add_admin_routes(app, venue)
    return app


class _Rest:
    """Handlers of ``/api/v3``; thin: parse, call the exchange, commit, render."""

    def __init__(self, venue: VenueSim) -> None:
        self.v = venue
        self.ex = venue.exchange

    async def _signed(self, request: web.Request) -> dict[str, str]:
        return verify_rest(
            request.headers.get("X-MBX-APIKEY"),
            request.rel_url.raw_query_string,
            await request.text(),
            self.v.api_key,
            self.v.api_secret,
            self.v.server_ms(),
        )

    async def ping(self, request: web.Request) -> web.Response:
        return _json({})

    async def time(self, request: web.Request) -> web.Response:
        return _json({"serverTime": self.v.server_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        symbols = [_symbol_info(m) for m in self.ex.markets.values()]
        return _json(
            {
                "timezone": "UTC",
                "serverTime": self.v.server_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": 100,
                    },
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    async def depth(self, request: web.Request) -> web.Response:
        m = self.ex.market(dict(request.query))
        try:
            limit = int(request.query.get("limit") or 100)
        except ValueError:
            raise bad(-1100, "Illegal characters found in parameter 'limit'.") from None
        if not 1 <= limit <= 5000:
            raise bad(
                -1100, "Illegal characters found in parameter 'limit'; legal range is 1..5000."
            )
        b = m.book
        return _json(
            {
                "lastUpdateId": b.update_id,
                "bids": [[fmt(p), fmt(q)] for p, q in b.sorted_bids()[:limit]],
                "asks": [[fmt(p), fmt(q)] for p, q in b.sorted_asks()[:limit]],
            }
        )

    async def book_ticker(self, request: web.Request) -> web.Response:
        def one(m: Any) -> dict[str, str]:
            b = m.book
            return {
                "symbol": m.venue_id,
                "bidPrice": fmt(b.best_bid_e8),
                "bidQty": fmt(b.bid_size_e8),
                "askPrice": fmt(b.best_ask_e8),
                "askQty": fmt(b.ask_size_e8),
            }

        if request.query.get("symbol"):
            return _json(one(self.ex.market(dict(request.query))))
        return _json([one(m) for m in self.ex.markets.values()])

    async def account(self, request: web.Request) -> web.Response:
        await self._signed(request)
        now = self.v.server_ms()
        bal = self.ex.balances
        return _json(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": "0.00100000",
                    "taker": "0.00100000",
                    "buyer": "0.00000000",
                    "seller": "0.00000000",
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": now,
                "accountType": "SPOT",
                "balances": [
                    {"asset": a, "free": fmt(v[0]), "locked": fmt(v[1])}
                    for a, v in sorted(bal.items())
                ],
                "permissions": ["SPOT"],
                "uid": 1,
            }
        )

    async def new_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        resp_type = (p.get("newOrderRespType") or "FULL").upper()
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise bad(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
        now = self.v.server_ms()
        ch = Change()
        order, trades = self.ex.place(p, now, ch)
        self.v.apply(ch, now)
        out = order_json(order, resp_type)
        if resp_type == "FULL":
            out["fills"] = [fill_json(t) for t in trades]
        return _json(out)

    async def get_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        return _json(query_json(self.ex.query(p)))

    async def cancel_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        now = self.v.server_ms()
        ch = Change()
        order, cancel_id = self.ex.cancel(p, now, ch)
        self.v.apply(ch, now)
        return _json(cancel_json(order, cancel_id))

    async def open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = self.ex.market(p).venue_id if p.get("symbol") else None
        return _json([query_json(o) for o in self.ex.open_orders(symbol)])

    async def my_trades(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        return _json([my_trade_json(t) for t in self.ex.my_trades(p)])

    async def listen_key(self, request: web.Request) -> web.Response:
        # Legacy listenKey flow (not used by ccxt 4.5.90 spot): key-only auth, no stream behind it.
        check_api_key(request.headers.get("X-MBX-APIKEY"), self.v.api_key)
        if request.method == "POST":
            return _json({"listenKey": "sim-listen-key-" + self.v.api_key})
        return _json({})

    async def unknown(self, request: web.Request) -> web.Response:
        raise VenueError(404, -1020, "This operation is not supported.")


def _symbol_info(m: Any) -> dict[str, Any]:
    s = m.spec
    return {
        "symbol": m.venue_id,
        "status": "TRADING",
        "baseAsset": m.base,
        "baseAssetPrecision": 8,
        "quoteAsset": m.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(s.tick_size_e8),
                "maxPrice": "10000000.00000000",
                "tickSize": fmt(s.tick_size_e8),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(s.lot_size_e8),
                "maxQty": "9000000.00000000",
                "stepSize": fmt(s.lot_size_e8),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(s.lot_size_e8),
                "maxQty": "9000000.00000000",
                "stepSize": fmt(s.lot_size_e8),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt(s.min_notional_e8),
                "applyMinToMarket": True,
                "maxNotional": "9000000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }
