"""The loopback Binance-spot venue simulator: lifecycle, price loop and state publication.

Role: own the durable store, the matching engine, the synthetic market and the websocket hub;
run the aiohttp server (routes in app.py and admin.py) on 127.0.0.1 only.

Invariants:
- Binds loopback only: ``start`` refuses any other host before opening a socket.
- ``apply`` is the single path from a state change to the outside world: commit to sqlite
  first, then publish executionReports / account positions / public trades.
- Server time is wall-clock ms plus the admin clock offset; every timestamp the venue emits and
  the recvWindow check use it.
- ``stop`` is idempotent and always flushes and closes the store; ``max_lifetime_s`` bounds how
  long a forgotten simulator can live (``closed`` is set when it stopped by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.core.events import QuoteTick, TradeTick
from engine.core.units import to_e8
from engine.sim.marketsim import MarketSimulator, symbol_spec
from venuesim.book import DepthBook, DepthDiff
from venuesim.exchange import Exchange, Market
from venuesim.klines import Klines
from venuesim.netsim import Injector, NetSim
from venuesim.orderbook_db import VenueStore
from venuesim.protocol import Change, fmt
from venuesim.ws import WsHub

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DEFAULT_BALANCES = {"USDT": "1000000", "BTC": "10", "ETH": "100", "SOL": "1000"}


class VenueSim:
    """Binance-compatible venue on 127.0.0.1; see the package docstring for the protocol."""

    def __init__(
        self,
        state_dir: Path,
        *,
        symbols: Sequence[str] = ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
        seed: int = 42,
        ticks_per_second: float = 20.0,
        api_key: str = "sim-key",
        api_secret: str = "sim-secret",  # noqa: S107 - the simulator's fixed test credentials, not a secret
        balances: dict[str, str] | None = None,
        max_lifetime_s: float = 3600.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.symbols = tuple(symbols)
        self.ticks_per_second = ticks_per_second
        self.api_key, self.api_secret = api_key, api_secret
        self.max_lifetime_s = max_lifetime_s
        self.clock_offset_ms = 0
        self.market_paused = False
        self.net = NetSim()
        self.injector = Injector()
        self.hub = WsHub(self.net, self.server_ms, api_key, api_secret)
        self.sim = MarketSimulator(self.symbols, seed=seed, ticks_per_second=ticks_per_second)
        self.klines = Klines(
            seed, {s.replace("/", ""): s for s in self.symbols}, lambda: self.server_ms()
        )
        books = [DepthBook(symbol_spec(s), random.Random(f"{seed}:{s}:depth")) for s in symbols]
        self.store = VenueStore(self.state_dir)
        self.exchange = Exchange(
            [Market(s, b) for s, b in zip(self.symbols, books, strict=True)], self.store.next_id
        )
        self._by_unified = {m.unified: m for m in self.exchange.markets.values()}
        self._restore(balances)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._port = 0
        self._stopping = False
        self.closed = asyncio.Event()

    def _restore(self, balances: dict[str, str] | None) -> None:
        bal = self.store.load_balances()
        if not bal:  # first start on this state_dir: seed the account
            seed = DEFAULT_BALANCES if balances is None else balances
            bal = {a: [to_e8(v), 0] for a, v in seed.items()}
            self.store.commit([], [], bal)
        self.exchange.restore(self.store.load_orders(), self.store.load_trades(), bal)

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    async def start(self, port: int = 0, host: str = LOOPBACK) -> int:
        """Serve on ``host:port`` (port 0 = any free one); returns the bound port."""
        if host != LOOPBACK:
            raise ValueError(f"venue simulator binds {LOOPBACK} only, refused host {host!r}")
        from venuesim.app import build_app  # app.py imports this module

        self._tick()  # books are populated before the first client can ask for them
        # A short shutdown bound: an in-flight accept_late reply must not hold stop() for 60 s.
        self._runner = web.AppRunner(
            build_app(self), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, port, reuse_address=True)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._tasks = [
            asyncio.create_task(self._price_loop(), name="venuesim-prices"),
            asyncio.create_task(self._disconnect_loop(), name="venuesim-netsim"),
            asyncio.create_task(self._lifetime(), name="venuesim-lifetime"),
        ]
        log.info("venue simulator listening on %s:%d", LOOPBACK, self._port)
        return self._port

    async def stop(self) -> None:
        if self._stopping:
            await self.closed.wait()
            return
        self._stopping = True
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.hub.drop("all")
        if self._runner is not None:
            await self._runner.cleanup()
        self.store.close()
        self.closed.set()

    async def _lifetime(self) -> None:
        await asyncio.sleep(self.max_lifetime_s)
        log.warning("venue simulator reached max lifetime %.0fs, stopping", self.max_lifetime_s)
        await self.stop()

    async def _disconnect_loop(self) -> None:
        while True:
            interval = self.net.cfg.disconnect_interval_s
            await asyncio.sleep(interval if interval > 0 else 0.25)
            if interval > 0 and self.net.cfg.disconnect_interval_s == interval:
                await self.hub.drop("all")

    # --- market ----------------------------------------------------------------------------

    async def _price_loop(self) -> None:
        period = 1.0 / self.ticks_per_second
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() - next_at > 1.0:  # fell far behind (suspended): do not burst
                next_at = loop.time()
            if not self.market_paused:
                try:
                    self._tick()
                except Exception:  # a bug in one tick must not kill the market forever
                    log.exception("venue simulator tick failed")

    def _tick(self) -> None:
        now = self.server_ms()
        ch = Change()
        frames: list[tuple[str, dict[str, Any]]] = []
        for ev in self.sim.step():
            m = self._by_unified[ev.symbol]
            sym, lsym = m.venue_id, m.venue_id.lower()
            if isinstance(ev, QuoteTick):
                diff = m.book.apply(ev)
                if diff is not None:
                    frames.append((f"{lsym}@depth", _depth_event(sym, now, diff)))
                    b = m.book
                    frames.append(
                        (
                            f"{lsym}@bookTicker",
                            {
                                "u": b.update_id,
                                "s": sym,
                                "b": fmt(b.best_bid_e8),
                                "B": fmt(b.bid_size_e8),
                                "a": fmt(b.best_ask_e8),
                                "A": fmt(b.ask_size_e8),
                            },
                        )
                    )
                self.exchange.match_resting(m, now, ch)
            elif isinstance(ev, TradeTick):
                tid = self.store.next_id("trade")
                frames.append(
                    (
                        f"{lsym}@trade",
                        _trade_event(sym, now, tid, ev.price_e8, ev.qty_e8, ev.aggressor == "sell"),
                    )
                )
        self.apply(ch, now)
        for stream, payload in frames:
            self.hub.publish_market(stream, payload)
            if stream.endswith("@depth"):
                self.hub.publish_market(stream + "@100ms", payload)

    # --- state changes ---------------------------------------------------------------------

    def apply(self, ch: Change, now_ms: int | None = None) -> None:
        """Commit ``ch`` durably, then reveal it on the websockets."""
        if not ch:
            return
        now = self.server_ms() if now_ms is None else now_ms
        bal = self.exchange.balances
        self.store.commit(ch.orders.values(), ch.trades, {a: bal[a] for a in ch.assets})
        for report in ch.reports:
            self.hub.publish_user(report)
        if ch.assets:
            self.hub.publish_user(
                {
                    "e": "outboundAccountPosition",
                    "E": now,
                    "u": now,
                    "B": [
                        {"a": a, "f": fmt(bal[a][0]), "l": fmt(bal[a][1])}
                        for a in sorted(ch.assets)
                    ],
                }
            )
        for t in ch.trades:
            lsym = t.symbol.lower()
            buyer_maker = (t.side == "BUY") == t.is_maker
            self.hub.publish_market(
                f"{lsym}@trade",
                _trade_event(t.symbol, now, t.trade_id, t.price_e8, t.qty_e8, buyer_maker),
            )


def _depth_event(sym: str, now: int, d: DepthDiff) -> dict[str, Any]:
    return {
        "e": "depthUpdate",
        "E": now,
        "s": sym,
        "U": d.first_id,
        "u": d.last_id,
        "b": [[fmt(p), fmt(q)] for p, q in d.bids],
        "a": [[fmt(p), fmt(q)] for p, q in d.asks],
    }


def _trade_event(
    sym: str, now: int, tid: int, price_e8: int, qty_e8: int, buyer_maker: bool
) -> dict[str, Any]:
    return {
        "e": "trade",
        "E": now,
        "s": sym,
        "t": tid,
        "p": fmt(price_e8),
        "q": fmt(qty_e8),
        "T": now,
        "m": buyer_maker,
        "M": True,
    }
