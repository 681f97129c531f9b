"""Websocket feeds over ccxt.pro: market data in, user data in, reconnecting forever.

Invariants:
- Each stream is one ``StreamLoop``: on any network error it waits an exponentially growing delay
  (doubling from ``reconnect_base_ms`` to ``reconnect_max_ms``, half of it jittered), calls
  ``watch_*`` again — ccxt then reconnects and resubscribes — and after every *re*connect runs the
  REST catch-up hook, because events in the gap are lost. A reconnect is counted (and logged, and
  resets the backoff) only once the subscription is confirmed: a message, or an open socket for
  a quiet user stream — never a watch that is merely pending while ccxt waits to re-dial.
- Outages (``worst_outage_s``) are measured from the last message received on the streams that
  flow continuously, so a venue that stalls with its socket open counts as an outage too.
- A cancelled loop stops; every other exception is counted and retried: the feed never dies.
- An order-book sequence gap (``ChecksumError``) is not a clock problem: the book's symbol is
  blocked for trading (``MarketState.blocked``) until a fresh snapshot arrives.
- Handlers run on the engine loop and call the engine directly (no queue hop).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt.pro as ccxtpro
from prometheus_client import Counter, Gauge

from engine.core.units import to_e8
from engine.trading import blocks
from engine.trading.commands import Commands

log = logging.getLogger("engine.venues.ccxt_feeds")


class FeedMetrics:
    def __init__(self, registry: Any) -> None:
        self.uptime = Gauge(
            "ws_uptime_seconds",
            "Seconds since the stream (re)connected; 0 while down",
            ["ws"],
            registry=registry,
        )
        self.reconnects = Counter(
            "ws_reconnects_total", "Websocket reconnects", ["ws"], registry=registry
        )
        self.dislocation = Gauge(
            "feed_dislocation_bps",
            "Mid difference between bookTicker and order book",
            ["symbol"],
            registry=registry,
        )
        self.book_resyncs = Counter(
            "order_book_resyncs_total",
            "Order-book gaps that forced a resync",
            ["symbol"],
            registry=registry,
        )


def _retrieve(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


class _RetrieveRejections:
    """ccxt creates futures that nobody awaits — the spot user-data subscribe marker
    (``authenticate:signature:spot``) is one — and a failed dial rejects every future of the
    connection at once: asyncio then logs "Future exception was never retrieved" for each, every
    retry. Each future a ccxt connection hands out gets a callback that retrieves its outcome
    (harmless for awaited ones: their awaiter still gets the exception)."""

    def __init__(self, ex: Any) -> None:
        self.make_client = ex.client
        self.wrapped: weakref.WeakSet[Any] = weakref.WeakSet()
        ex.client = self.client  # the exchange asks this for every websocket connection

    def client(self, url: str) -> Any:
        c = self.make_client(url)
        if c not in self.wrapped:
            self.wrapped.add(c)
            make_future = c.future

            def future(message_hash: Any) -> Any:
                f = make_future(message_hash)
                f.remove_done_callback(_retrieve)  # a cached future: one callback, not many
                f.add_done_callback(_retrieve)
                return f

            c.future = future
        return c


class StreamLoop:
    """One ``watch_*`` stream, re-subscribed forever.

    Up/down: the stream is *up* once its subscription is confirmed — a message arrived, or, for a
    quiet stream with a ``link_up`` probe (user streams: no orders, no frames), its websocket is
    open and the watch stayed pending without an error for ``quiet_ok_s``. A pending watch alone
    proves nothing: ccxt keeps it pending while it waits to re-dial a venue that refuses
    connections. Only a confirmation after an error counts as a reconnect (and resets the
    backoff); errors before it double the delay up to the cap.

    Outages: from the last message received to the confirmation for streams that flow
    continuously (``continuous``: quotes, books), so a venue that stalls with the socket open
    counts too (measured when data flows again: ``stall_s`` of silence is a stall); from the
    error for the others (a quiet stream has no cadence to measure from).
    """

    def __init__(
        self,
        name: str,
        watch: Callable[[], Awaitable[Any]],
        handle: Callable[[Any], None],
        *,
        metrics: FeedMetrics,
        on_reconnect: Callable[[], Awaitable[Any]] | None = None,
        on_gap: Callable[[BaseException], None] | None = None,
        on_down: Callable[[], None] | None = None,
        on_retry: Callable[[], None] | None = None,
        link_up: Callable[[], bool] | None = None,
        continuous: bool = False,
        base_delay_s: float = 0.1,
        max_delay_s: float = 5.0,
        stall_s: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.watch = watch
        self.handle = handle
        self.metrics = metrics
        self.on_reconnect = on_reconnect
        self.on_gap = on_gap
        self.on_down = on_down
        self.on_retry = on_retry
        self.link_up = link_up
        self.continuous = continuous
        self.base = base_delay_s
        self.max = max_delay_s
        self.backoff_s = base_delay_s  # the next retry's delay (before jitter)
        self.stall_s = stall_s
        self.rng = rng or random.Random()  # noqa: S311 - jitter / simulation, not a secret
        self.connected = False
        self.up_since = 0.0
        self.down_since = time.monotonic()
        self.last_message = 0.0  # monotonic; 0 before the first
        self.reconnects = 0
        self.stalls = 0
        self.messages = 0
        self.errors = 0
        self.last_error = ""
        self.worst_outage_s = 0.0
        self.quiet_ok_s = 1.0

    def silent(self, now: float) -> bool:
        """A continuous stream with no message for ``stall_s``: up on paper, stalled in fact."""
        return self.continuous and self.last_message > 0 and now - self.last_message > self.stall_s

    def uptime_s(self) -> float:
        now = time.monotonic()
        return now - self.up_since if self.connected and not self.silent(now) else 0.0

    def _outage(self, seconds: float) -> None:
        self.worst_outage_s = max(self.worst_outage_s, seconds)

    def _mark_up(self, ever: bool) -> bool:
        """The subscription is confirmed. Returns True when this is a *re*connect (catch-up)."""
        self.connected = True
        now = time.monotonic()
        self.up_since = now
        self.backoff_s = self.base
        if not ever:
            return False
        since = self.last_message if self.continuous and self.last_message else self.down_since
        outage = now - since
        self._outage(outage)
        self.reconnects += 1
        self.metrics.reconnects.labels(self.name).inc()
        log.info("stream %s reconnected after %.2fs", self.name, outage)
        return True

    def _mark_down(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        if self.connected:
            self.connected = False
            self.down_since = time.monotonic()
            self.metrics.uptime.labels(self.name).set(0)
            log.warning("stream %s down: %s", self.name, self.last_error)
            if self.on_down is not None:
                self.on_down()

    async def _retry_delay(self) -> None:
        """Exponential backoff with jitter: half the delay fixed, half random (spreads reconnect
        storms, and the wait still visibly grows), doubled per failure up to ``max``."""
        delay = self.backoff_s
        await asyncio.sleep(delay / 2 + self.rng.uniform(0, delay / 2))
        self.backoff_s = min(delay * 2, self.max)
        if self.on_retry is not None:
            self.on_retry()

    async def _catch_up(self) -> None:
        if self.on_reconnect is None:
            return
        try:
            await self.on_reconnect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried at the next reconnect / period
            log.warning("catch-up after %s reconnect failed: %s", self.name, exc)

    async def _confirm_quiet(self, fut: asyncio.Future[Any], ever: bool) -> bool:
        """Wait for the watch; a quiet stream is confirmed meanwhile when its socket is open.
        Returns whether the stream was marked up here."""
        if self.link_up is None:  # not an assert: python -O would drop it
            raise RuntimeError("self.link_up is not set: used before start")
        while not fut.done():
            done, _ = await asyncio.wait({fut}, timeout=self.quiet_ok_s)
            if not done and self.link_up():
                if self._mark_up(ever):
                    await self._catch_up()
                return True
        return False

    async def run(self) -> None:
        ever = False
        while True:
            fut = asyncio.ensure_future(self.watch())
            try:
                if not self.connected and self.link_up is not None:
                    ever = await self._confirm_quiet(fut, ever) or ever
                data = await fut
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except ccxtpro.ChecksumError as exc:  # book gap: resubscribe at once, no backoff
                self.errors += 1
                if self.on_gap is not None:
                    self.on_gap(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - network errors, venue errors: retry forever
                self._mark_down(exc)
                await self._retry_delay()
                continue
            now = time.monotonic()
            if not self.connected:
                if self._mark_up(ever):
                    await self._catch_up()
                ever = True
            elif self.silent(now):  # the socket stayed open but nothing came: a stall
                gap = now - self.last_message
                self._outage(gap)
                self.stalls += 1
                log.warning("stream %s stalled: no data for %.2fs (socket open)", self.name, gap)
            self.last_message = time.monotonic()
            self.messages += 1
            self.handle(data)


class FeedSupervisor:
    """Builds and runs the stream loops for one ccxt.pro exchange and one engine."""

    def __init__(
        self,
        ex: Any,
        engine: Any,
        venue: Any,
        *,
        symbols: tuple[str, ...],
        metrics: FeedMetrics,
        base_delay_s: float = 0.1,
        max_delay_s: float = 5.0,
        seed: int = 0,
        cancel_on_disconnect: bool = False,
    ) -> None:
        self.ex = ex
        _RetrieveRejections(ex)
        self.engine = engine
        self.venue = venue
        self.symbols = symbols
        self.metrics = metrics
        self.ticker_mid: dict[str, float] = {}
        self.book_mid: dict[str, float] = {}
        self.dislocation_bps: dict[str, float] = {}
        rng = random.Random(seed)  # noqa: S311 - jitter / simulation, not a secret
        common: dict[str, Any] = {
            "metrics": metrics,
            "base_delay_s": base_delay_s,
            "max_delay_s": max_delay_s,
            "rng": rng,
            "on_retry": self._own_dial_backoff,
        }
        self.loops = [
            StreamLoop(
                "bookticker",
                lambda: ex.watch_bids_asks(list(symbols)),
                self._on_tickers,
                continuous=True,
                **common,
            ),
            StreamLoop(
                "trades",
                lambda: ex.watch_trades_for_symbols(list(symbols)),
                self._on_trades,
                **common,
            ),
            StreamLoop(
                "orders",
                ex.watch_orders,
                self._on_orders,
                on_reconnect=self.catch_up,
                on_down=self._user_stream_down if cancel_on_disconnect else None,
                link_up=self._user_link_up,
                **common,
            ),
            StreamLoop(
                "mytrades",
                ex.watch_my_trades,
                self._on_my_trades,
                on_reconnect=self.catch_up,
                link_up=self._user_link_up,
                **common,
            ),
        ]
        for s in symbols:
            self.loops.append(
                StreamLoop(
                    f"book:{s}",
                    lambda s=s: ex.watch_order_book(s),  # type: ignore[misc]
                    self._on_book,
                    on_gap=lambda exc, s=s: self._gap(s, exc),  # type: ignore[misc]
                    continuous=True,
                    **common,
                )
            )
        self._tasks: list[asyncio.Task[None]] = []
        self._catching_up = False
        # de-duplication state (ccxt hands back whole caches: newUpdates is off)
        self._ticker_u: dict[str, Any] = {}
        self._trade_id: dict[str, int] = {}
        self._order_seen: dict[str, tuple[Any, Any]] = {}
        self._my_trades_seen: set[str] = set()

    def _own_dial_backoff(self) -> None:
        """Our loops own the retry policy: ccxt's own per-connection dial backoff (up to 30 s)
        stacked on top of it let a venue that came back wait far past ``reconnect_max_ms``."""
        backoff = getattr(self.ex, "ws_dial_backoff", None)
        if isinstance(backoff, dict):
            backoff.clear()

    def _user_link_up(self) -> bool:
        """The spot user-data subscription is confirmed: ccxt's ws-api connection is open and the
        venue acknowledged ``userDataStream.subscribe.signature`` (ccxt keeps the pending
        ``authenticate:signature:spot`` future until the ack, and the ``spot`` subscription flag
        after it). A quiet user stream pending on it is subscribed, not waiting to dial."""
        try:
            url = self.ex.urls["api"]["ws"]["ws-api"]["spot"]
        except (KeyError, TypeError):
            return False
        c = (getattr(self.ex, "clients", None) or {}).get(url)
        if c is None or not c.connected.done() or c.connected.cancelled():
            return False
        if c.connected.exception() is not None or c.closed():
            return False
        return "spot" in c.subscriptions and "authenticate:signature:spot" not in c.futures

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(sl.run(), name=f"feed:{sl.name}") for sl in self.loops]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def export(self) -> None:
        for sl in self.loops:
            self.metrics.uptime.labels(sl.name).set(round(sl.uptime_s(), 3))
        for s, d in self.dislocation_bps.items():
            self.metrics.dislocation.labels(s).set(round(d, 3))

    # --- handlers ----------------------------------------------------------------------------

    def _on_tickers(self, tickers: dict[str, Any]) -> None:
        now_ns = self.engine.clock.now_ns()
        for sym, t in tickers.items():
            info = t.get("info") or {}
            if info.get("u") == self._ticker_u.get(sym):
                continue  # unchanged since the last frame we handled
            self._ticker_u[sym] = info.get("u")
            try:
                bid, ask = to_e8(info["b"]), to_e8(info["a"])
                bsz, asz = to_e8(info["B"]), to_e8(info["A"])
            except (KeyError, ValueError, ArithmeticError):
                log.warning("malformed bookTicker for %s dropped", sym)
                continue  # malformed frame: never reaches prices
            self.ticker_mid[sym] = (bid + ask) / 2e8
            self._dislocation(sym)
            self.engine.on_quote(sym, bid, ask, bsz, asz, now_ns)

    def _on_trades(self, trades: list[dict[str, Any]]) -> None:
        now_ns = self.engine.clock.now_ns()
        for t in trades:
            try:
                tid = int(t["id"])
                if tid <= self._trade_id.get(t["symbol"], -1):
                    continue
                self._trade_id[t["symbol"]] = tid
                self.engine.on_trade(
                    t["symbol"], to_e8(str(t["price"])), to_e8(str(t["amount"])), now_ns
                )
            except (KeyError, ValueError, ArithmeticError):
                log.warning("malformed trade dropped")

    def _on_book(self, book: Any) -> None:
        sym = book["symbol"]
        if book["bids"] and book["asks"]:
            self.book_mid[sym] = (book["bids"][0][0] + book["asks"][0][0]) / 2
            self._dislocation(sym)
        if self.engine.market.blocked.unblock(sym, blocks.BOOK):  # other causes (orphans) stay
            log.info("order book %s resynced: gap block lifted", sym)

    def _user_stream_down(self) -> None:
        """Cancel-on-disconnect policy: without order updates we cannot manage resting orders."""
        res = Commands(self.engine).cancel_all(None, "engine", "user stream disconnected (policy)")
        log.warning("cancel-on-disconnect: %s", res.message)

    def _gap(self, symbol: str, exc: BaseException) -> None:
        self.engine.market.blocked.block(
            symbol, blocks.BOOK, f"{symbol}: order book gap, resyncing"
        )
        self.metrics.book_resyncs.labels(symbol).inc()
        log.warning("order book gap on %s (%s): blocked until resynced", symbol, exc)

    def _dislocation(self, sym: str) -> None:
        a, b = self.ticker_mid.get(sym), self.book_mid.get(sym)
        if a and b:
            self.dislocation_bps[sym] = abs(a - b) / ((a + b) / 2) * 10_000

    def _on_orders(self, orders: list[dict[str, Any]]) -> None:
        for o in orders:
            info = o.get("info") or {}
            key = (info.get("X"), info.get("z"))
            oid = str(o.get("id"))
            if self._order_seen.get(oid) == key:
                continue
            self._order_seen[oid] = key
            self.venue.on_ws_order(o)

    def _on_my_trades(self, trades: list[dict[str, Any]]) -> None:
        for t in trades:
            tid = str(t.get("id"))
            if tid in self._my_trades_seen:
                continue
            self._my_trades_seen.add(tid)
            self.venue.on_ws_trade(t)

    async def catch_up(self) -> int:
        """REST catch-up of the gap (shared by both user streams; one at a time)."""
        if self._catching_up:
            return 0
        self._catching_up = True
        try:
            engine = self.engine

            def open_cids(symbol: str) -> list[str]:
                return [c for c, o in engine.order_cache.open_orders.items() if o.symbol == symbol]

            n: int = await self.venue.catch_up(open_cids)
            return n
        finally:
            self._catching_up = False
