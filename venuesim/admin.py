"""Admin and fault endpoints of the venue simulator (tests and the network harness only).

Role: JSON-over-HTTP controls under ``/admin``, unsigned (the venue binds loopback only):

- ``POST /admin/clock {"offset_ms": int}``: shift serverTime (and the recvWindow check).
- ``POST /admin/inject {"kind", "method", "path", "count", ...}``: one-shot REST faults, kinds
  ``binance_error`` (``status``, ``code``, ``msg``, ``retry_after_s``), ``ban`` (an IP ban of
  ``retry_after_s``: every REST request gets 418 until it ends), ``http_error``
  (``status``, HTML body), ``delay`` (``delay_ms`` before processing), ``accept_late``
  (process and commit, then reply after ``delay_ms``), ``drop`` (``process``: bool, then close
  the connection with no reply). ``DELETE /admin/inject`` clears pending rules.
- ``POST /admin/ws_drop {"which": "market"|"user"|"all"}``: close live websockets (code 1001).
- ``POST /admin/pause {"market": bool}``: freeze/resume the market (no ticks, no frames).
- ``POST /admin/net {"latency_ms", "jitter_ms", "drop_rate", "disconnect_interval_s",
  "reorder_rate", "seed"}``: NET_SIM faults (all zero = off); ``GET`` returns them.
- ``POST /admin/slippage {"bps": float}``: MARKET orders fill that many bps worse than the book
  (0 = off); for the slippage breaker.
- ``POST /admin/klines/gaps {"symbol", "interval", "start_ms", "end_ms"}``: candles of that range
  are left out of ``/api/v3/klines`` (``*`` matches any symbol / interval) until
  ``DELETE /admin/klines/gaps`` repairs them. ``POST /admin/klines/corrupt {"symbol", "interval",
  "start_ms", "end_ms", "column": 0..5 (open time, o, h, l, c, v), "value"}`` serves that column of
  those candles as ``value`` (any JSON) until ``DELETE /admin/klines/corrupt``. 5xx, 429 and timeouts on klines: ``/admin/inject``.
- ``GET /admin/state``: venue truth (orders, trades, balances, server_time_ms), amounts as strings.
- ``POST /admin/balances {"BTC": "1000", ...}``: set free balances (pushes an account update).
- ``POST /admin/order_external {symbol, side, type, quantity, price, ...}``: place an order
  that no client sent (an orphan for reconciliation tests); Binance request parameters.

Invariants: admin replies are JSON; a bad payload is HTTP 400 ``{"code", "msg"}``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.core.units import to_e8
from venuesim.protocol import Change, VenueError, bad, fmt, order_json, query_json

if TYPE_CHECKING:
    from venuesim.venue import VenueSim


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if await request.text() else {}
    except json.JSONDecodeError:
        raise bad(-1100, "admin: body must be a JSON object") from None
    if not isinstance(data, dict):
        raise bad(-1100, "admin: body must be a JSON object")
    return data


def add_admin_routes(app: web.Application, venue: VenueSim) -> None:
    def wrap(fn: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            try:
                return web.json_response(await fn(request))
            except VenueError as e:
                return web.json_response(e.body(), status=e.status)
            except (KeyError, TypeError, ValueError) as e:  # KeyError: a required field
                return web.json_response({"code": -1100, "msg": f"admin: {e}"}, status=400)

        return handler

    async def clock(request: web.Request) -> dict[str, Any]:
        venue.clock_offset_ms = int((await _body(request)).get("offset_ms", 0))
        return {"offset_ms": venue.clock_offset_ms, "server_time_ms": venue.server_ms()}

    async def inject(request: web.Request) -> dict[str, Any]:
        rule = venue.injector.add(await _body(request))
        return {"ok": True, "rule": dataclasses.asdict(rule)}

    async def inject_clear(request: web.Request) -> dict[str, Any]:
        venue.injector.clear()
        return {"ok": True}

    async def ws_drop(request: web.Request) -> dict[str, Any]:
        which = (await _body(request)).get("which", "all")
        if which not in ("market", "user", "all"):
            raise bad(-1100, "which must be market, user or all")
        return {"closed": await venue.hub.drop(which)}

    async def pause(request: web.Request) -> dict[str, Any]:
        venue.market_paused = bool((await _body(request)).get("market", True))
        return {"market_paused": venue.market_paused}

    async def slippage(request: web.Request) -> dict[str, Any]:
        bps = (await _body(request)).get("bps", 0)
        if not isinstance(bps, int | float) or not 0 <= bps <= 10_000:
            raise bad(-1100, f"bps must be a number in [0, 10000], got {bps!r}")
        venue.exchange.slip_bps = float(bps)
        return {"bps": venue.exchange.slip_bps}

    async def net_set(request: web.Request) -> dict[str, Any]:
        return dataclasses.asdict(venue.net.configure(await _body(request)))

    async def net_get(request: web.Request) -> dict[str, Any]:
        return dataclasses.asdict(venue.net.cfg)

    async def state(request: web.Request) -> dict[str, Any]:
        ex = venue.exchange
        return {
            "server_time_ms": venue.server_ms(),
            "orders": [query_json(o) for o in ex.orders.values()],
            "trades": [
                {
                    "id": t.trade_id,
                    "orderId": t.order_id,
                    "symbol": t.symbol,
                    "clientOrderId": t.client_order_id,
                    "side": t.side,
                    "price": fmt(t.price_e8),
                    "qty": fmt(t.qty_e8),
                    "quoteQty": fmt(t.quote_e8),
                    "commission": fmt(t.commission_e8),
                    "commissionAsset": t.commission_asset,
                    "time": t.time_ms,
                    "isMaker": t.is_maker,
                }
                for t in ex.trades
            ],
            "balances": {
                a: {"free": fmt(v[0]), "locked": fmt(v[1])} for a, v in sorted(ex.balances.items())
            },
        }

    async def order_external(request: web.Request) -> dict[str, Any]:
        p = {k: str(v) for k, v in (await _body(request)).items()}
        p["symbol"] = p.get("symbol", "").replace("/", "")
        if p.get("type", "").upper() == "LIMIT":
            p.setdefault("timeInForce", "GTC")
        now = venue.server_ms()
        ch = Change()
        order, _ = venue.exchange.place(p, now, ch)
        venue.apply(ch, now)
        return order_json(order, "RESULT")

    async def balances(request: web.Request) -> dict[str, Any]:
        # Sets FREE balances (locked funds belong to open orders and stay as they are).
        body = await _body(request)
        ch = Change()
        for asset, amount in body.items():
            value = to_e8(str(amount))
            if value < 0:
                raise bad(-1100, "balances must be >= 0")
            venue.exchange.balances.setdefault(str(asset), [0, 0])[0] = value
            ch.assets.add(str(asset))
        venue.apply(ch)
        return {a: fmt(venue.exchange.balances[a][0]) for a in sorted(ch.assets)}

    async def kline_gap(request: web.Request) -> dict[str, Any]:
        b = await _body(request)
        gap = (str(b.get("symbol", "*")).replace("/", "").upper() or "*", str(b.get("interval", "*")),
               int(b["start_ms"]), int(b["end_ms"]))  # fmt: skip
        venue.klines.gaps.append(gap)
        return {"gaps": [list(g) for g in venue.klines.gaps]}

    async def kline_gaps_clear(request: web.Request) -> dict[str, Any]:
        venue.klines.gaps.clear()
        return {"gaps": []}

    async def kline_corrupt(request: web.Request) -> dict[str, Any]:
        b = await _body(request)
        column = int(b["column"])
        if not 0 <= column <= 5:
            raise bad(-1100, "column: 0 (open time) to 5 (volume)")
        venue.klines.corrupt.append((
            str(b.get("symbol", "*")).replace("/", "").upper() or "*", str(b.get("interval", "*")),
            int(b["start_ms"]), int(b["end_ms"]), column, b.get("value"),
        ))  # fmt: skip
        return {"corrupt": len(venue.klines.corrupt)}

    async def kline_corrupt_clear(request: web.Request) -> dict[str, Any]:
        venue.klines.corrupt.clear()
        return {"corrupt": 0}

    r = app.router
    r.add_post("/admin/klines/gaps", wrap(kline_gap))
    r.add_delete("/admin/klines/gaps", wrap(kline_gaps_clear))
    r.add_post("/admin/klines/corrupt", wrap(kline_corrupt))
    r.add_delete("/admin/klines/corrupt", wrap(kline_corrupt_clear))
    r.add_post("/admin/clock", wrap(clock))
    r.add_post("/admin/inject", wrap(inject))
    r.add_delete("/admin/inject", wrap(inject_clear))
    r.add_post("/admin/ws_drop", wrap(ws_drop))
    r.add_post("/admin/pause", wrap(pause))
    r.add_post("/admin/net", wrap(net_set))
    r.add_post("/admin/slippage", wrap(slippage))
    r.add_get("/admin/net", wrap(net_get))
    r.add_get("/admin/state", wrap(state))
    r.add_post("/admin/order_external", wrap(order_external))
    r.add_post("/admin/balances", wrap(balances))
