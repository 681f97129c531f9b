"""Venue port over ccxt (Binance spot protocol): testnet, live, and the loopback simulator.

Error handling, by the venue's answer (the table in docs/DESIGN.md, "Venue path"):
- ``-2010 Duplicate order sent.`` (InvalidOrder) → the order is already live: query it by client
  id and adopt it; never resubmit.
- ``-1021`` (InvalidNonce, not ChecksumError) → rejected before matching: resync the clock, retry
  the same request once.
- ``-1007``, client timeout, 5xx, connection loss, OperationFailed on a POST → outcome *unknown*:
  query by client id (with backoff, for a grace period) — never resend with a new id while unknown;
  no trace after the grace period → ``never_sent``.
- InvalidOrder / BadRequest / InsufficientFunds → terminal reject with the venue's text (literal).
- 429 / 418 (DDoSProtection) and RateLimitExceeded → not placed: back off honouring Retry-After
  (418 is an IP ban, told apart by its status; ``engine.venues.venue_backoff``); cancels go first when
  the backoff ends; the same client id is retried a bounded number of times — but never after
  the order's send-by deadline (decision + TTL): an order that expires before it ever left is
  reported ``rejected`` ("decision expired before send"), certain not to have been sent. While
  backing off, ``throttle()`` says so (the ``venue_throttle`` gate blocks new orders).
- AuthenticationError, or -2015 repeatedly → stop trading (engine halt) and alert.

Order *states* come from ``watch_orders`` as latest-state snapshots; *fills* from the REST FULL
response and ``watch_my_trades`` (keyed by trade id, deduplicated by the engine). After every
user-stream reconnect, and periodically, ``catch_up`` re-reads open orders and recent trades.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async

from engine.core import crashpoints
from engine.core.clock import Clock
from engine.core.events import VenueFill, VenueOrderUpdate
from engine.core.units import SCALE
from engine.trading.venue_gates import expired_reason
from engine.trading.venue_port import (
    OrderRequest,
    VenueLimits,
    VenueOrderView,
    VenueSink,
    VenueThrottle,
)
from engine.venues import ccxt_translate, ccxt_views
from engine.venues.ccxt_views import e8 as _e8
from engine.venues.ccxt_views import fee_asset as _asset
from engine.venues.venue_backoff import Backoff

log = logging.getLogger("engine.ccxt")


class CcxtVenue:
    """The venue port over ccxt (Binance-compatible REST): places, cancels and queries orders,
    turning every answer into `VenueOrderUpdate` / `VenueFill` reports for the engine. An
    uncertain send is reported *unknown* and resolved by query, never re-sent; 429/418 answers
    drive the back-off (`venue_backoff`), and the decision TTL is checked again right before a
    send or a retry."""

    name = "ccxt"
    in_process = False

    def __init__(
        self,
        exchange: Any,
        *,
        clock: Clock,
        symbols: tuple[str, ...],
        unknown_grace_s: float = 3.0,
        max_rate_retries: int = 4,
        metrics: Any = None,
    ) -> None:
        self.ex = exchange
        self.clock = clock
        self.symbols = symbols
        self.unknown_grace_s = unknown_grace_s
        self.max_rate_retries = max_rate_retries
        self.metrics = metrics
        self._sink: VenueSink | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.backoff = Backoff(clock)
        self._auth_strikes = 0
        # every REST answer passes through here: a 418/429 to any request backs the client off
        base_hook = exchange.on_rest_response

        def on_rest_response(
            code: int,
            reason: str,
            url: str,
            method: str,
            headers: Any,
            body: str,
            req_headers: Any,
            req_body: Any,
        ) -> Any:
            self._observe(code, headers, body)
            return base_hook(code, reason, url, method, headers, body, req_headers, req_body)

        exchange.on_rest_response = on_rest_response
        self.venue_to_cid: dict[str, str] = {}
        self.lots_e8: dict[str, int] = {}
        self.ticks_e8: dict[str, int] = {}
        self._limits: dict[str, VenueLimits] = {}
        self.last_trade_ms: dict[str, int] = {}
        self.place_latency_ms: list[float] = []

    # --- setup -------------------------------------------------------------------------------

    def bind(self, sink: VenueSink) -> None:
        self._sink = sink

    async def connect(self) -> None:
        await self.ex.load_markets()
        for s in self.symbols:
            m = self.ex.market(s)
            self.lots_e8[s] = _e8(m["precision"]["amount"])
            self.ticks_e8[s] = _e8(m["precision"]["price"])
            lim = m.get("limits") or {}
            self._limits[s] = VenueLimits(
                step_e8=self.lots_e8[s],
                min_qty_e8=_e8((lim.get("amount") or {}).get("min")),
                min_notional_e8=_e8((lim.get("cost") or {}).get("min")),
            )
        await self.resync_clock()

    async def resync_clock(self) -> float:
        """RTT-corrected offset (local − venue, ms) → ccxt's timeDifference and the clock port."""
        t0 = time.time_ns()
        server_ms = await self.ex.fetch_time()
        t1 = time.time_ns()
        offset = (t0 + t1) / 2e6 - float(server_ms)
        self.ex.options["timeDifference"] = offset
        setter = getattr(self.clock, "set_skew_ms", None)
        if setter is not None:
            setter(offset)
        return offset

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        session = getattr(self.ex, "session", None)  # caller-owned: ccxt leaves it open
        await self.ex.close()  # (and forgets it, so take it first)
        if session is not None and not session.closed:
            await session.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float) -> bool:
        """Wait for in-flight REST work (used at shutdown)."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return not pending

    def _count(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.orders_error.labels(reason).inc()

    # --- port --------------------------------------------------------------------------------

    def on_quote(
        self, symbol: str, bid_e8: int, ask_e8: int, bid_sz_e8: int, ask_sz_e8: int, ts_ns: int
    ) -> None:
        return None  # the venue matches against its own book

    def submit(self, order: OrderRequest) -> None:
        self._spawn(self._place(order))

    def cancel(self, client_order_id: str, symbol: str) -> None:
        self._spawn(self._cancel(client_order_id, symbol))

    def throttle(self) -> VenueThrottle | None:
        return self.backoff.throttle()

    def limits(self, symbol: str) -> VenueLimits:
        lim = self._limits.get(symbol)
        if lim is None:  # not a market we loaded: nothing may be sent (fail closed)
            raise KeyError(f"{symbol}: no venue trading rules loaded")
        return lim

    async def query_order(self, client_order_id: str, symbol: str) -> VenueOrderUpdate | None:
        try:
            o = await self.ex.fetch_order(None, symbol, {"origClientOrderId": client_order_id})
        except ccxt_async.OrderNotFound:
            return None
        return self._update_from_info(o["info"], client_order_id)

    # --- placing -----------------------------------------------------------------------------

    def _observe(self, code: int, headers: Any, body: Any) -> None:
        kind = self.backoff.observe(
            int(code or 0),
            headers if isinstance(headers, dict) else None,
            body if isinstance(body, str) else "",
        )
        if kind:
            self._noted(kind)

    def _rate_limited(self, exc: Exception) -> None:
        """A rate-limit exception: already in back-off if the response hook saw it; else (e.g.
        -2015 reported as DDoSProtection) back off now."""
        if self.backoff.remaining_s() <= 0:
            headers = getattr(self.ex, "last_response_headers", None)
            self._noted(self.backoff.note(exc, headers if isinstance(headers, dict) else None))

    def _noted(self, kind: str) -> None:
        wait = self.backoff.last_wait_s
        self._count("ip_ban" if kind == "ban" else "rate_limit")
        if kind == "ban":
            log.error("venue BANNED this IP (HTTP 418): nothing is sent for %.1fs", wait)
        else:
            log.warning("venue rate limit: backing off %.2fs", wait)

    def _expired(self, o: OrderRequest) -> bool:
        """True (and the order closed as rejected) when it can no longer leave before its
        send-by deadline: now, or after the back-off in force. Only for an order not yet sent
        (or whose sends were all refused unplaced: 429/418/-1021)."""
        send_by = getattr(o, "send_by_us", 0)
        if not send_by:
            return False
        earliest = self.clock.now_us() + int(self.backoff.remaining_s() * 1e6)
        if earliest <= send_by:
            return False
        decided = getattr(o, "decided_us", 0) or send_by
        why = "venue back-off in force" if self.backoff.remaining_s() > 0 else ""
        self._reject(o, expired_reason(earliest - decided, send_by - decided, why))
        return True

    async def _place(self, o: OrderRequest) -> None:
        sink = self._sink
        if sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("sink is not set: used before start")
        cid = o.client_order_id
        params = {"newClientOrderId": cid, "newOrderRespType": "FULL"}
        amount = float(Decimal(o.qty_e8) / SCALE)
        price = float(Decimal(o.limit_price_e8) / SCALE) if o.order_type == "limit" else None
        clock_retried = False
        rate_tries = 0
        while True:
            if self._expired(o):
                return
            await self.backoff.wait(cancel=False)
            if self._expired(o):  # no await between this check and the send
                return
            t0 = time.perf_counter()
            try:
                res = await self.ex.create_order(
                    o.symbol, o.order_type, o.side, amount, price, params
                )
            except ccxt_async.ChecksumError:  # never from REST; listed so it is not a clock error
                raise
            except ccxt_async.InvalidNonce as exc:
                if "-1021" in str(exc) and not clock_retried:
                    clock_retried = True
                    self._count("clock_skew")
                    log.warning("order %s: -1021, resyncing clock and retrying once", cid)
                    await self.resync_clock()
                    continue
                return self._unknown(o, exc)
            except (ccxt_async.DDoSProtection, ccxt_async.RateLimitExceeded) as exc:
                if "-2015" in str(exc):
                    self._auth_strikes += 1
                    if self._auth_strikes >= 3:
                        return self._auth_failure(o, exc)
                self._rate_limited(exc)
                rate_tries += 1
                if rate_tries > self.max_rate_retries:
                    return self._reject(o, f"rate limited {rate_tries} times: {exc}")
                continue  # not placed: the same client id may be sent again
            except ccxt_async.AuthenticationError as exc:
                return self._auth_failure(o, exc)
            except ccxt_async.InvalidOrder as exc:
                if "Duplicate order sent" in str(exc):
                    self._count("duplicate")
                    log.warning("order %s: duplicate client id at venue; adopting", cid)
                    return await self._resolve(o, reason="duplicate client id")
                return self._reject(o, str(exc))
            except (ccxt_async.BadRequest, ccxt_async.InsufficientFunds) as exc:
                return self._reject(o, str(exc))
            except ccxt_async.OperationFailed as exc:  # timeouts, 5xx, drops, -1007, -1000...
                return self._unknown(o, exc)
            except ccxt_async.ExchangeError as exc:
                return self._reject(o, str(exc))
            if crashpoints.ENABLED:
                crashpoints.hit("after_venue_accept")
            self.backoff.succeeded()
            self._auth_strikes = 0
            self.place_latency_ms.append((time.perf_counter() - t0) * 1000)
            self._apply_response(o, res["info"])
            return

    def _report(self, cid: str, status: str, reason: str) -> None:
        """A status the venue did not (or could not) tell us itself: no venue id, no fills."""
        if self._sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("self._sink is not set: used before start")
        self._sink.on_venue_update(
            VenueOrderUpdate(
                client_order_id=cid,
                venue_order_id="",
                status=status,
                filled_qty_e8=0,
                ts_us=self.clock.now_us(),
                reason=reason,
            )
        )

    def _reject(self, o: OrderRequest, reason: str) -> None:
        log.warning("order %s rejected: %s", o.client_order_id, reason)
        self._report(o.client_order_id, "rejected", reason)

    def _auth_failure(self, o: OrderRequest, exc: Exception) -> None:
        self._count("auth")
        self._reject(o, f"authentication failed: {exc}")
        halt = getattr(self._sink, "halt", None)
        if halt is not None:
            halt(f"venue authentication failed: {exc}")

    def _unknown(self, o: OrderRequest, exc: Exception) -> None:
        self._count("unknown_outcome")
        log.warning("order %s outcome unknown (%s): querying the venue", o.client_order_id, exc)
        self._report(o.client_order_id, "unknown", f"{type(exc).__name__}: {exc}"[:300])
        self._spawn(self._resolve(o, reason="unknown outcome"))

    async def _resolve(self, o: OrderRequest, reason: str) -> None:
        """Ask the venue by client id until it answers or the grace period ends."""
        sink = self._sink
        if sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("sink is not set: used before start")
        deadline = time.monotonic() + self.unknown_grace_s
        delay = 0.1
        while True:
            try:
                await self.backoff.wait(cancel=True)
                u = await self.query_order(o.client_order_id, o.symbol)
            except ccxt_async.BaseError as exc:
                log.warning("query %s failed (%s); retrying", o.client_order_id, exc)
                u = None
                if time.monotonic() >= deadline:
                    return  # still unknown: start-up / periodic reconciliation resolves it
            else:
                if u is not None:
                    sink.on_venue_update(u)
                    await self._fetch_fills(o.symbol, u.venue_order_id)
                    return
                if time.monotonic() >= deadline:
                    self._report(
                        o.client_order_id,
                        "never_sent",
                        f"{reason}: no trace at the venue after {self.unknown_grace_s:g}s",
                    )
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _update_from_info(self, info: dict[str, Any], cid: str | None = None) -> VenueOrderUpdate:
        u = ccxt_translate.info_update(info, cid, self.clock.now_us())
        if u.venue_order_id and u.client_order_id:
            self.venue_to_cid[u.venue_order_id] = u.client_order_id
        return u

    def _apply_response(self, o: OrderRequest, info: dict[str, Any]) -> None:
        sink = self._sink
        if sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("sink is not set: used before start")
        u = self._update_from_info(info, o.client_order_id)
        if u.status == "rejected":
            sink.on_venue_update(u)
            return
        sink.on_venue_update(
            VenueOrderUpdate(
                client_order_id=u.client_order_id,
                venue_order_id=u.venue_order_id,
                status="accepted",
                filled_qty_e8=0,
                ts_us=u.ts_us,
            )
        )
        ts_us = int(info.get("transactTime") or info.get("updateTime") or 0) * 1000 or u.ts_us
        for f in info.get("fills") or []:
            amounts = (f["qty"], f["price"], f.get("commission"), f.get("commissionAsset"))
            self._fill(o.client_order_id, u.venue_order_id, o.symbol, o.side, str(f["tradeId"]),
                       amounts, "taker", ts_us)  # fmt: skip
        if u.status in ("expired", "canceled"):
            sink.on_venue_update(u)

    def _fill(
        self, cid: str, void: str, symbol: str, side: str, trade_id: str,
        amounts: tuple[Any, Any, Any, Any], liquidity: str, ts_us: int,
    ) -> None:  # fmt: skip
        if self._sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("self._sink is not set: used before start")
        self.last_trade_ms[symbol] = max(self.last_trade_ms.get(symbol, 0), ts_us // 1000)
        fill = ccxt_translate.fill_event(
            cid, void, symbol, side, trade_id, amounts, liquidity, ts_us
        )
        self._sink.on_venue_fill(fill)

    async def _cancel(self, cid: str, symbol: str) -> None:
        if self._sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("self._sink is not set: used before start")
        self.backoff.cancels_waiting += 1
        try:
            await self.backoff.wait(cancel=True)
            res = await self.ex.cancel_order(None, symbol, {"origClientOrderId": cid})
            self._sink.on_venue_update(self._update_from_info(res["info"], cid))
        except ccxt_async.OrderNotFound:
            u = await self.query_order(cid, symbol)  # -2011: learn whether it filled or was gone
            if u is not None:
                self._sink.on_venue_update(u)
        except (ccxt_async.DDoSProtection, ccxt_async.RateLimitExceeded) as exc:
            self._rate_limited(exc)
            self._spawn(self._cancel(cid, symbol))
        except ccxt_async.BaseError as exc:
            log.warning("cancel %s failed: %s", cid, exc)
        finally:
            self.backoff.cancels_waiting -= 1

    # --- reconciliation views (bodies in engine/venues/ccxt_views.py) --------------------------------

    async def fetch_open(self, symbol: str) -> list[VenueOrderView]:
        return await ccxt_views.fetch_open(self, symbol)

    async def fetch_fills(self, symbol: str, since_ms: int | None) -> list[VenueFill]:
        return await ccxt_views.fetch_fills(self, symbol, since_ms)

    async def fetch_balances(self) -> dict[str, int] | None:
        return await ccxt_views.fetch_balances(self)

    # --- user stream handlers and catch-up ------------------------------------------------

    def on_ws_order(self, order: dict[str, Any]) -> None:
        u = ccxt_translate.ws_order_update(order, self.clock.now_us())
        if u is None:
            return
        self.venue_to_cid.setdefault(u.venue_order_id, u.client_order_id)
        if self._sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("self._sink is not set: used before start")
        self._sink.on_venue_update(u)

    def on_ws_trade(self, trade: dict[str, Any]) -> None:
        info = trade.get("info") or {}
        void = str(info.get("i", trade.get("order", "")))
        cid = info.get("c") or self.venue_to_cid.get(void)
        if not cid:
            log.error("trade %s for unknown order %s (orphan)", trade.get("id"), void)
            return
        fee = trade.get("fee") or {}
        amounts = (trade["amount"], trade["price"], fee.get("cost"),
                   _asset(self.ex, fee.get("currency")))  # fmt: skip
        liquidity = "maker" if trade.get("takerOrMaker") == "maker" else "taker"
        self._fill(cid, void, trade["symbol"], trade["side"], str(trade["id"]), amounts,
                   liquidity, int(trade["timestamp"]) * 1000)  # fmt: skip

    async def _fetch_fills(self, symbol: str, venue_order_id: str) -> None:
        if not venue_order_id:
            return
        trades = await self.ex.fetch_my_trades(symbol, None, None, {"orderId": venue_order_id})
        for t in trades:
            self.on_ws_trade(t)

    async def catch_up(self, open_cids: Callable[[str], list[str]]) -> int:
        """REST catch-up after a gap: open orders, then trades since the last one seen."""
        n = 0
        sink = self._sink
        if sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("sink is not set: used before start")
        for s in self.symbols:
            await self.backoff.wait(cancel=True)
            venue_open = await self.ex.fetch_open_orders(s)
            seen = set()
            for o in venue_open:
                u = self._update_from_info(o["info"])
                seen.add(u.client_order_id)
                sink.on_venue_update(u)
            for cid in open_cids(s):
                if cid not in seen:  # closed while we were away: learn its final state
                    u2 = await self.query_order(cid, s)
                    if u2 is not None:
                        sink.on_venue_update(u2)
            since = self.last_trade_ms.get(s)
            trades = await self.ex.fetch_my_trades(s, since - 5000 if since else None, 1000)
            for t in trades:
                self.on_ws_trade(t)
                n += 1
        return n
