"""Websocket side of the venue simulator: market streams and the WS-API user-data stream.

Role: serve ``/ws``, ``/ws/{n}`` and ``/stream`` (market data: SUBSCRIBE/UNSUBSCRIBE with acks,
``trade``/``depthUpdate``/``bookTicker`` events) and ``/ws-api/v3`` (signature subscription to the
user-data stream, events wrapped as ``{"subscriptionId", "event"}``).

Invariants:
- Every frame leaves through the connection's own FIFO writer task, so NET_SIM latency never
  reorders frames by itself; only market frames may be dropped or swapped (``reorder_rate``).
- A SUBSCRIBE is always acked (``{"result": null, "id": N}``): ccxt's order book starts its REST
  snapshot from that ack.
- ``drop`` closes sockets with code 1001 ("going away"); clients see it as a remote close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from venuesim.auth import verify_ws
from venuesim.netsim import NetSim
from venuesim.protocol import VenueError

log = logging.getLogger(__name__)
_REORDER_HOLD_S = 0.2
_MAX_BACKLOG = 20_000  # frames queued for one socket before it counts as a dead consumer  # a frame held back for a swap is flushed after this if nothing follows


def _norm(stream: str) -> str:
    """Stream names: the symbol part is case-insensitive, the channel part is not (bookTicker)."""
    sym, sep, rest = stream.partition("@")
    return sym.lower() + sep + rest


class WsConn:
    """One accepted websocket with its outbound queue and writer task."""

    def __init__(self, ws: web.WebSocketResponse, kind: str, net: NetSim, combined: bool) -> None:
        self.ws = ws
        self.kind = kind  # "market" | "user"
        self.combined = combined  # /stream: events wrapped as {"stream", "data"}
        self.streams: set[str] = set()
        self.user_sub: int | None = None  # WS-API subscriptionId once subscribed
        self._net = net
        self._queue: asyncio.Queue[tuple[float, str, bool]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._writer())

    def send(self, payload: Any, droppable: bool = False) -> None:
        if self._queue.qsize() >= _MAX_BACKLOG:
            # A consumer this far behind is cut off, as Binance does; it reconnects and resyncs.
            if not self._task.done():
                log.warning("closing slow websocket consumer (%d frames queued)", _MAX_BACKLOG)
                self._task.cancel()
                asyncio.ensure_future(self.ws.close(code=1008, message=b"slow consumer"))  # noqa: RUF006 - fire and forget: the socket is being dropped
            return
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        self._queue.put_nowait((self._loop.time(), text, droppable))

    async def _writer(self) -> None:
        held: tuple[float, str, bool] | None = None
        try:
            while True:
                if held is None:
                    item = await self._queue.get()
                else:
                    try:
                        item = await asyncio.wait_for(self._queue.get(), _REORDER_HOLD_S)
                    except TimeoutError:
                        await self._deliver(held)
                        held = None
                        continue
                if item[2] and self._net.drop():
                    continue
                if item[2] and held is None and self._net.reorder():
                    held = item
                    continue
                await self._deliver(item)
                if held is not None:
                    await self._deliver(held)
                    held = None
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return

    async def _deliver(self, item: tuple[float, str, bool]) -> None:
        delay = self._net.delay_s()
        if delay:
            wait = item[0] + delay - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        if not self.ws.closed:
            await self.ws.send_str(item[1])

    async def close(self, code: int = 1001) -> None:
        self._task.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=b"going away")


class WsHub:
    """All live websocket connections of the venue."""

    def __init__(
        self,
        net: NetSim,
        server_ms: Callable[[], int],
        api_key: str,
        api_secret: str,
    ) -> None:
        self.net = net
        self._server_ms = server_ms
        self._api_key, self._secret = api_key, api_secret
        self.conns: set[WsConn] = set()

    # --- handlers --------------------------------------------------------------------------

    async def market_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = WsConn(ws, "market", self.net, combined=request.path.startswith("/stream"))
        # Raw-stream URLs: /ws/btcusdt@trade or /stream?streams=a/b subscribe at connect time.
        tail = request.match_info.get("tail", "")
        if "@" in tail:
            conn.streams.add(_norm(tail))
        for name in request.query.get("streams", "").split("/"):
            if name:
                conn.streams.add(_norm(name))
        self.conns.add(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                self._market_request(conn, msg.data)
        finally:
            self.conns.discard(conn)
            await conn.close(1000)
        return ws

    def _market_request(self, conn: WsConn, text: str) -> None:
        try:
            req = json.loads(text)
            method, rid = req.get("method"), req.get("id")
            params = [_norm(str(p)) for p in req.get("params") or []]
        except (ValueError, AttributeError, TypeError):
            conn.send({"error": {"code": 2, "msg": "Invalid request"}, "id": None})
            return
        if method == "SUBSCRIBE":
            conn.streams.update(params)
            conn.send({"result": None, "id": rid})
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
            conn.send({"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send({"result": sorted(conn.streams), "id": rid})
        else:
            conn.send({"error": {"code": 1, "msg": f"Unknown method {method!r}"}, "id": rid})

    async def ws_api_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = WsConn(ws, "user", self.net, combined=False)
        self.conns.add(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._api_request(conn, msg.data)
        finally:
            self.conns.discard(conn)
            await conn.close(1000)
        return ws

    def _api_request(self, conn: WsConn, text: str) -> None:
        rid: Any = None
        try:
            req = json.loads(text)
            rid, method = req.get("id"), req.get("method")
            params = req.get("params") or {}
            if method == "userDataStream.subscribe.signature":
                verify_ws(params, self._api_key, self._secret, self._server_ms())
                conn.user_sub = 0
                conn.send({"id": rid, "status": 200, "result": {"subscriptionId": 0}})
            elif method == "userDataStream.unsubscribe":
                conn.user_sub = None
                conn.send({"id": rid, "status": 200, "result": {}})
            elif method == "ping":
                conn.send({"id": rid, "status": 200, "result": {}})
            elif method == "time":
                conn.send({"id": rid, "status": 200, "result": {"serverTime": self._server_ms()}})
            else:
                raise VenueError(400, -1020, "This operation is not supported.")
        except VenueError as e:
            conn.send({"id": rid, "status": e.status, "error": e.body()})
        except (ValueError, AttributeError, TypeError):
            conn.send({"id": rid, "status": 400, "error": {"code": -1100, "msg": "Malformed."}})

    # --- publishing ------------------------------------------------------------------------

    def publish_market(self, stream: str, payload: dict[str, Any]) -> None:
        text: str | None = None
        for conn in self.conns:
            if conn.kind != "market" or stream not in conn.streams:
                continue
            if conn.combined:
                conn.send({"stream": stream, "data": payload}, droppable=True)
            else:
                text = text or json.dumps(payload, separators=(",", ":"))
                conn.send(text, droppable=True)

    def publish_user(self, event: dict[str, Any]) -> None:
        for conn in self.conns:
            if conn.kind == "user" and conn.user_sub is not None:
                conn.send({"subscriptionId": conn.user_sub, "event": event})

    def has_market_subscribers(self, stream: str) -> bool:
        return any(c.kind == "market" and stream in c.streams for c in self.conns)

    async def drop(self, which: str = "all") -> int:
        victims = [c for c in self.conns if which == "all" or c.kind == which]
        for conn in victims:
            self.conns.discard(conn)
            await conn.close(1001)
        return len(victims)
