"""The real engine + the real ccxt adapter + feeds, against the loopback venue simulator.

Everything runs on the test's event loop: VenueSim (aiohttp server on 127.0.0.1), ccxt.pro over
the egress-guarded session, the engine with a real DuckDB file in a temp dir.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.config.loader import load_config
from engine.core.clock import RealClock
from engine.runtime.boot import boot
from engine.runtime.booted import Booted
from engine.venues.ccxt_feeds import FeedMetrics, FeedSupervisor
from engine.venues.ccxt_venue import CcxtVenue
from engine.venues.egress import EgressGuard
from engine.venues.venue_setup import SIM_KEY, SIM_SECRET, _urls_from, make_exchange
from venuesim import VenueSim


async def until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")


class Rig:
    def __init__(
        self,
        sim: VenueSim,
        booted: Booted,
        venue: CcxtVenue,
        feeds: FeedSupervisor,
        guard: EgressGuard,
    ) -> None:
        self.sim = sim
        self.booted = booted
        self.engine = booted.engine
        self.venue = venue
        self.feeds = feeds
        self.guard = guard

    async def admin(
        self, action: str, payload: dict[str, Any] | None = None, method: str = "POST"
    ) -> Any:
        url = f"http://127.0.0.1:{self.sim.port}/admin/{action}"
        async with aiohttp.ClientSession() as s, s.request(method, url, json=payload) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def venue_state(self) -> dict[str, Any]:
        return await self.admin("state", None, "GET")

    async def quotes_ready(self) -> None:
        await until(
            lambda: all(s in self.engine.market.quotes for s in self.engine.symbols),
            15,
            "quotes for every symbol",
        )

    async def settle(self) -> None:
        """No order in flight, then everything committed."""
        e = self.engine
        await until(
            lambda: (
                not any(
                    o.status in ("pending", "submitted", "unknown")
                    for o in e.order_cache.open_orders.values()
                )
            ),
            15,
            "orders settled",
        )
        self.booted.flush()
        self.booted.writer.wait_idle()


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[VenueSim, Rig]] = []
    sim_holder: dict[str, VenueSim] = {}

    async def make(
        overrides: dict[str, object] | None = None,
        *,
        sim_kwargs: dict | None = None,
        data_dir: Path | None = None,
        timeout_ms: int = 2000,
    ) -> Rig:
        sim = sim_holder.get("sim")
        if sim is None:
            sim = VenueSim(tmp_path / "venue", ticks_per_second=50.0, **(sim_kwargs or {}))
            await sim.start(0)
            sim_holder["sim"] = sim
        ov: dict[str, object] = {
            "risk.safe_mode": False,
            "risk.dupe_intent_window_ms": 0.0,
            "risk.risk_per_trade_pct": 5.0,
            "exchange.timeout_ms": timeout_ms,
            "feeds.unknown_grace_s": 1.5,
            "feeds.reconnect_base_ms": 50.0,
            "feeds.reconnect_max_ms": 500.0,
            "live.readiness_required": [],
        }
        ov.update(overrides or {})
        cfg = load_config("testnet", env={}, overrides=ov)
        guard = EgressGuard(offline=True)
        urls = _urls_from(f"http://127.0.0.1:{sim.port}", f"ws://127.0.0.1:{sim.port}")
        ex = make_exchange(cfg, guard, api_key=SIM_KEY, secret=SIM_SECRET, urls=urls)
        ex.enableRateLimit = False
        clock = RealClock()
        venue = CcxtVenue(ex, clock=clock, symbols=tuple(cfg.symbols), unknown_grace_s=1.5)
        await venue.connect()
        booted = boot(cfg, data_dir or tmp_path / "data", clock=clock, strategy="none", venue=venue)
        booted.engine.log_orders = False
        venue.metrics = booted.engine.metrics
        feeds = FeedSupervisor(
            ex,
            booted.engine,
            venue,
            symbols=tuple(cfg.symbols),
            metrics=FeedMetrics(booted.engine.metrics.registry),
            base_delay_s=0.05,
            max_delay_s=0.5,
        )
        feeds.start()
        rig = Rig(sim, booted, venue, feeds, guard)
        made.append((sim, rig))
        return rig

    async def close(rig: Rig) -> None:
        await rig.feeds.stop()
        await rig.venue.drain(2.0)
        await rig.venue.close()
        rig.booted.close("test")

    make.close = close  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        for _, rig in made:
            if not rig.booted._closed:
                await close(rig)
        if "sim" in sim_holder:
            await sim_holder["sim"].stop()
