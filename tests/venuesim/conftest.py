"""Fixtures: a VenueSim on 127.0.0.1:0 in a temp dir, real ccxt clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import pytest

from venuesim import VenueSim, ccxt_config, venue_urls

Admin = Callable[..., Awaitable[Any]]


@pytest.fixture
async def venue(tmp_path: Path) -> AsyncIterator[VenueSim]:
    v = VenueSim(tmp_path / "venue", ticks_per_second=20.0, max_lifetime_s=120.0)
    await v.start()
    yield v
    await v.stop()


@pytest.fixture
async def make_ex(venue: VenueSim) -> AsyncIterator[Callable[..., Any]]:
    """Builds ccxt binance clients with the URL-override recipe (venuesim.ccxt_config); all are closed at teardown."""
    made: list[Any] = []

    def make(pro: bool = True, timeout_ms: int = 3000, secret: str = "sim-secret") -> Any:
        cfg = ccxt_config(secret=secret, timeout_ms=timeout_ms)
        cfg["enableRateLimit"] = False
        ex = (ccxtpro.binance if pro else ccxt_async.binance)(cfg)
        ex.urls["api"] = venue_urls(venue.port)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        await ex.close()


@pytest.fixture
async def ex(make_ex: Callable[..., Any]) -> Any:
    client = make_ex()
    await client.load_markets()
    return client


@pytest.fixture
async def admin(venue: VenueSim) -> AsyncIterator[Admin]:
    """``await admin("POST", "/admin/clock", {...})`` -> (status, json)."""
    async with aiohttp.ClientSession() as session:

        async def call(method: str, path: str, payload: Any = None) -> Any:
            url = f"http://127.0.0.1:{venue.port}{path}"
            async with session.request(method, url, json=payload) as resp:
                return resp.status, await resp.json(content_type=None)

        yield call
