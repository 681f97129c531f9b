"""`/api/v3/klines` of the venue simulator: Binance's shape, deterministic candles, paging,
consistency across intervals, holes, and real ccxt `fetch_ohlcv`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import pytest

from venuesim import VenueSim
from venuesim.klines import INTERVAL_MS, Klines

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


async def test_klines_when_end_time_then_pages_stop_there_and_resume_seamlessly(
    venue: VenueSim,
) -> None:
    _, page1 = await _get(venue.port, symbol="BTCUSDT", interval="15m", startTime=T + 1, limit=3)
    assert page1[0][0] == T + INTERVAL_MS["15m"]  # first open on or after startTime
    _, page2 = await _get(venue.port, symbol="BTCUSDT", interval="15m", startTime=page1[-1][0] + 1,
                          endTime=page1[-1][0] + 2 * INTERVAL_MS["15m"], limit=1000)  # fmt: skip
    _, whole = await _get(venue.port, symbol="BTCUSDT", interval="15m", startTime=T + 1, limit=5)
    assert page1 + page2 == whole  # endTime is inclusive of an open time, limit caps the page
    _, future = await _get(venue.port, symbol="BTCUSDT", interval="1h",
                           startTime=venue.server_ms() - H, limit=10)  # fmt: skip
    assert future == []  # the running hour has not closed yet


def test_klines_when_other_process_then_same_rows() -> None:
    # A fresh interpreter with another hash seed: no dict order, str hash or state leaks in.
    code = (
        "import json; from venuesim.klines import Klines; "
        f"k = Klines(42, {{'BTCUSDT': 'BTC/USDT'}}, lambda: {T + 10 * H}); "
        f"print(json.dumps(k.rows('BTCUSDT', '1d', {T - 3 * 86_400_000}, {T}, 3)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=True)
    here = Klines(42, {"BTCUSDT": "BTC/USDT"}, lambda: T + 10 * H)
    assert json.loads(out.stdout) == here.rows("BTCUSDT", "1d", T - 3 * 86_400_000, T, 3)


async def test_klines_when_outage_then_503_for_n_requests_or_until_cleared(
    venue: VenueSim, admin: Any
) -> None:
    fault = {"kind": "binance_error", "status": 503, "code": -1008, "method": "GET",
             "msg": "Server is currently overloaded with other requests.",
             "path": "/api/v3/klines"}  # fmt: skip
    await admin("POST", "/admin/inject", {**fault, "count": 2})
    q = {"symbol": "BTCUSDT", "interval": "1h", "startTime": T, "limit": 1}
    got = [await _get(venue.port, **q) for _ in range(3)]
    assert [g[0] for g in got] == [503, 503, 200]
    assert got[0][1]["code"] == -1008
    await admin("POST", "/admin/inject", {**fault, "count": 1_000_000})  # "until cleared"
    assert (await _get(venue.port, **q))[0] == 503
    await admin("DELETE", "/admin/inject")
    assert (await _get(venue.port, **q))[0] == 200


async def test_klines_when_429_or_hang_then_ccxt_sees_ddos_and_timeout(
    venue: VenueSim, admin: Any, make_ex: Any
) -> None:
    ex = make_ex(pro=False, timeout_ms=1000)
    await ex.load_markets()
    await admin("POST", "/admin/inject", {"kind": "binance_error", "status": 429, "code": -1003,
                "msg": "Too many requests.", "retry_after_s": 3, "method": "GET",
                "path": "/api/v3/klines", "count": 1})  # fmt: skip
    with pytest.raises(ccxt.DDoSProtection):
        await ex.fetch_ohlcv("BTC/USDT", "1h", since=T, limit=2)
    assert ex.last_response_headers["Retry-After"] == "3"
    await admin("POST", "/admin/inject", {"kind": "delay", "delay_ms": 3000, "method": "GET",
                "path": "/api/v3/klines", "count": 1})  # fmt: skip
    with pytest.raises(ccxt.RequestTimeout):
        await ex.fetch_ohlcv("BTC/USDT", "1h", since=T, limit=2)
    assert len(await ex.fetch_ohlcv("BTC/USDT", "1h", since=T, limit=2)) == 2  # count spent
