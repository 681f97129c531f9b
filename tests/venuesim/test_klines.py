"""`/api/v3/klines` of the venue simulator: Binance's shape, deterministic candles, paging,
consistency across intervals, holes, and real ccxt `fetch_ohlcv`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from venuesim import VenueSim
from venuesim.klines import INTERVAL_MS

H = INTERVAL_MS["1h"]
T = 1_790_000_000_000 // H * H  # an hour boundary in the past (2026-09)


async def _get(port: int, **q: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"http://127.0.0.1:{port}/api/v3/klines", params={k: str(v) for k, v in q.items()}
        ) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_klines_when_asked_then_binance_rows_deterministic_across_processes(
    venue: VenueSim, tmp_path: Path
) -> None:
    status, rows = await _get(venue.port, symbol="BTCUSDT", interval="1h", startTime=T, limit=5)
    assert status == 200
    assert [r[0] for r in rows] == [T + i * H for i in range(5)]
    for r in rows:
        o, hi, lo, c, v = (float(x) for x in r[1:6])
        assert lo <= min(o, c) <= max(o, c) <= hi
        assert v > 0
        assert r[6] == r[0] + H - 1
        assert len(r) == 12
    other = VenueSim(tmp_path / "v2", ticks_per_second=20.0, max_lifetime_s=60.0)
    await other.start()
    try:
        _, again = await _get(other.port, symbol="BTCUSDT", interval="1h", startTime=T, limit=5)
    finally:
        await other.stop()
    assert again == rows  # a pure function of (seed, symbol, open time)


async def test_klines_when_coarse_then_aggregate_of_15m_and_no_future(venue: VenueSim) -> None:
    _, (hour,) = await _get(venue.port, symbol="ETHUSDT", interval="1h", startTime=T, limit=1)
    _, quarters = await _get(venue.port, symbol="ETHUSDT", interval="15m", startTime=T, limit=4)
    assert hour[1] == quarters[0][1]
    assert hour[4] == quarters[-1][4]
    assert float(hour[2]) == max(float(q[2]) for q in quarters)
    assert float(hour[3]) == min(float(q[3]) for q in quarters)
    _, latest = await _get(venue.port, symbol="ETHUSDT", interval="1d", limit=3)
    assert latest[-1][6] < venue.server_ms()  # only closed candles
    _, week = await _get(venue.port, symbol="ETHUSDT", interval="1w", startTime=T, limit=1)
    assert (week[0][0] // 86_400_000 + 3) % 7 == 0  # opens on a Monday (epoch was a Thursday)


async def test_klines_when_bad_input_or_hole_then_binance_errors_and_gap(
    venue: VenueSim, admin: Any
) -> None:
    assert (await _get(venue.port, symbol="NOPEUSDT", interval="1h"))[1]["code"] == -1121
    assert (await _get(venue.port, symbol="BTCUSDT", interval="2h"))[1]["code"] == -1120
    assert (await _get(venue.port, symbol="BTCUSDT", interval="1h", limit=5000))[0] == 400
    await admin("POST", "/admin/klines/gaps",
                {"symbol": "BTC/USDT", "interval": "1h", "start_ms": T + H, "end_ms": T + 2 * H})  # fmt: skip
    _, rows = await _get(venue.port, symbol="BTCUSDT", interval="1h", startTime=T, limit=4)
    assert [r[0] for r in rows] == [T, T + 3 * H, T + 4 * H, T + 5 * H]
    await admin("DELETE", "/admin/klines/gaps")
    _, rows = await _get(venue.port, symbol="BTCUSDT", interval="1h", startTime=T, limit=4)
    assert [r[0] for r in rows] == [T + i * H for i in range(4)]


async def test_klines_when_ccxt_fetch_ohlcv_then_same_candles(venue: VenueSim, ex: Any) -> None:
    _, rows = await _get(venue.port, symbol="SOLUSDT", interval="4h", startTime=T, limit=3)
    got = await ex.fetch_ohlcv("SOL/USDT", "4h", since=T, limit=3)
    assert got == [[r[0], *(float(x) for x in r[1:6])] for r in rows]
