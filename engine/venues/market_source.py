"""The exchange a research command reads market data from (public endpoints only, no keys).

``market_exchange(cfg, data_dir, url)`` yields a ccxt binance client: at ``url`` when given, else
at the profile's ``exchange.rest_url``; an offline profile with neither gets the loopback venue
simulator, started for the command (seeded by ``sim.seed``, so its candles are the same every
run) and stopped after it; otherwise ccxt's own endpoints (the sandbox for testnet/staging, the
live exchange only for a live profile — the same rule as trading). Offline, the egress guard keeps
every request on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from engine.config.loader import Config
from engine.venues.binance_urls import binance_urls
from engine.venues.egress import EgressGuard
from engine.venues.venue_setup import VenueProcess, make_exchange


@contextlib.asynccontextmanager
async def market_exchange(cfg: Config, data_dir: Path, url: str | None) -> AsyncIterator[Any]:
    proc = None
    base = url or cfg.exchange.rest_url
    if not base and cfg.offline:
        proc = VenueProcess(
            data_dir / "venue-research",
            seed=cfg.sim.seed,
            ticks_per_second=cfg.sim.ticks_per_second,
            max_lifetime_s=6 * 3600.0,
        )
        base = f"http://127.0.0.1:{await proc.start()}"
    urls = binance_urls(base, base.replace("http", "ws", 1)) if base else None
    guard = EgressGuard(offline=cfg.offline)
    ex = make_exchange(cfg, guard, api_key="", secret="", urls=urls, throttle=not cfg.offline)
    session = ex.session  # caller-owned: ccxt leaves it open (and forgets it on close)
    try:
        yield ex
    finally:
        await ex.close()
        if session is not None and not session.closed:
            await session.close()
        if proc is not None:
            await proc.stop()
