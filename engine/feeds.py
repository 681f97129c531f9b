"""Websocket feeds over ccxt.pro: market data in, user data in, reconnecting forever.

Invariants:
- Each stream is one ``StreamLoop``: on any network error it waits an exponentially growing delay
  with full jitter (capped), calls ``watch_*`` again — ccxt then reconnects and resubscribes — and
  after every *re*connect runs the REST catch-up hook, because events in the gap are lost.
- A cancelled loop stops; every other exception is counted and retried: the feed never dies.
- An order-book sequence gap (``ChecksumError``) is not a clock problem: the book's symbol is
  blocked for trading (``Engine.market_blocked``) until a fresh snapshot arrives.
- Handlers run on the engine loop and call the engine directly (no queue hop).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt.pro as ccxtpro
from prometheus_client import Counter, Gauge

from engine import blocks
from engine.units import to_e8

log = logging.getLogger("engine.feeds")


class FeedMetrics:
    def __init__(self, registry: Any) -> None:
        self.uptime = Gauge(
            "ws_uptime_seconds", "Seconds since the stream (re)connected; 0 while down", ["ws"],
            registry=registry,
        )  # fmt: skip
        self.reconnects = Counter(
            "ws_reconnects_total", "Websocket reconnects", ["ws"], registry=registry
        )
        self.dislocation = Gauge(
            "feed_dislocation_bps", "Mid difference between bookTicker and order book", ["symbol"],
            registry=registry,
        )  # fmt: skip
        self.book_resyncs = Counter(
            "order_book_resyncs_total", "Order-book gaps that forced a resync", ["symbol"],
            registry=registry,
        )  # fmt: skip


class StreamLoop:
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
        base_delay_s: float = 0.1,
        max_delay_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.watch = watch
        self.handle = handle
        self.metrics = metrics
        self.on_reconnect = on_reconnect
        self.on_gap = on_gap
        self.on_down = on_down
        self.base = base_delay_s
        self.max = max_delay_s
        self.rng = rng or random.Random()
        self.connected = False
        self.up_since = 0.0
        self.down_since = time.monotonic()
        self.reconnects = 0
        self.messages = 0
        self.errors = 0
        self.last_error = ""
        self.worst_outage_s = 0.0
        self.quiet_ok_s = 1.0

    def uptime_s(self) -> float:
        return time.monotonic() - self.up_since if self.connected else 0.0

    def _mark_up(self, ever: bool) -> bool:
        """Returns True when this is a *re*connect (catch-up needed)."""
        self.connected = True
        now = time.monotonic()
        self.up_since = now
        if not ever:
            return False
        outage = now - self.down_since
        self.worst_outage_s = max(self.worst_outage_s, outage)
        self.reconnects += 1
        self.metrics.reconnects.labels(self.name).inc()
        log.info("stream %s reconnected after %.2fs", self.name, outage)
        return True

    async def _catch_up(self) -> None:
        if self.on_reconnect is None:
            return
        try:
            await self.on_reconnect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried at the next reconnect / period
            log.warning("catch-up after %s reconnect failed: %s", self.name, exc)

    async def run(self) -> None:
        delay = self.base
        ever = False
        while True:
            fut = asyncio.ensure_future(self.watch())
            try:
                if not self.connected:
                    # a quiet stream (no orders, no fills) is still up if the watch stays
                    # pending without an error: the socket is open and subscribed
                    done, _ = await asyncio.wait({fut}, timeout=self.quiet_ok_s)
                    if not done:
                        if self._mark_up(ever):
                            await self._catch_up()
                        ever = True
                        delay = self.base
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
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                if self.connected:
                    self.connected = False
                    self.down_since = time.monotonic()
                    self.metrics.uptime.labels(self.name).set(0)
                    log.warning("stream %s down: %s", self.name, self.last_error)
                    if self.on_down is not None:
                        self.on_down()
                # full jitter: spreads reconnect storms when many clients drop at once
                await asyncio.sleep(self.rng.uniform(0, delay))
                delay = min(delay * 2, self.max)
                continue
            if not self.connected:
                if self._mark_up(ever):
                    await self._catch_up()
                ever = True
                delay = self.base
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
        self.engine = engine
        self.venue = venue
        self.symbols = symbols
        self.metrics = metrics
        self.ticker_mid: dict[str, float] = {}
        self.book_mid: dict[str, float] = {}
        self.dislocation_bps: dict[str, float] = {}
        rng = random.Random(seed)
        common: dict[str, Any] = {"metrics": metrics, "base_delay_s": base_delay_s,
                                  "max_delay_s": max_delay_s, "rng": rng}  # fmt: skip
        self.loops = [
            StreamLoop(
                "bookticker", lambda: ex.watch_bids_asks(list(symbols)), self._on_tickers, **common
            ),  # fmt: skip
            StreamLoop(
                "trades",
                lambda: ex.watch_trades_for_symbols(list(symbols)),
                self._on_trades,
                **common,
            ),  # fmt: skip
            StreamLoop(
                "orders",
                ex.watch_orders,
                self._on_orders,
                on_reconnect=self.catch_up,
                on_down=self._user_stream_down if cancel_on_disconnect else None,
                **common,
            ),
            StreamLoop(
                "mytrades",
                ex.watch_my_trades,
                self._on_my_trades,
                on_reconnect=self.catch_up,
                **common,
            ),  # fmt: skip
        ]
        for s in symbols:
            self.loops.append(
                StreamLoop(
                    f"book:{s}",
                    lambda s=s: ex.watch_order_book(s),  # type: ignore[misc]
                    self._on_book,
                    on_gap=lambda exc, s=s: self._gap(s, exc),  # type: ignore[misc]
                    **common,
                )  # fmt: skip
            )
        self._tasks: list[asyncio.Task[None]] = []
        self._catching_up = False
        # de-duplication state (ccxt hands back whole caches: newUpdates is off)
        self._ticker_u: dict[str, Any] = {}
        self._trade_id: dict[str, int] = {}
        self._order_seen: dict[str, tuple[Any, Any]] = {}
        self._my_trades_seen: set[str] = set()

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
                self.engine.on_trade(t["symbol"], to_e8(str(t["price"])), to_e8(str(t["amount"])),
                                     now_ns)  # fmt: skip
            except (KeyError, ValueError, ArithmeticError):
                log.warning("malformed trade dropped")

    def _on_book(self, book: Any) -> None:
        sym = book["symbol"]
        if book["bids"] and book["asks"]:
            self.book_mid[sym] = (book["bids"][0][0] + book["asks"][0][0]) / 2
            self._dislocation(sym)
        if self.engine.market_blocked.unblock(sym, blocks.BOOK):  # other causes (orphans) stay
            log.info("order book %s resynced: gap block lifted", sym)

    def _user_stream_down(self) -> None:
        """Cancel-on-disconnect policy: without order updates we cannot manage resting orders."""
        res = self.engine.cancel_all(None, "engine", "user stream disconnected (policy)")
        log.warning("cancel-on-disconnect: %s", res.message)

    def _gap(self, symbol: str, exc: BaseException) -> None:
        self.engine.market_blocked.block(
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
                return [c for c, o in engine.open_orders.items() if o.symbol == symbol]

            n: int = await self.venue.catch_up(open_cids)
            return n
        finally:
            self._catching_up = False
