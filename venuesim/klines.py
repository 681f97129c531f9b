"""``GET /api/v3/klines``: deterministic candles for research backfills (Binance's shape).

Role: serve OHLCV candles of any past time as a pure function of (seed, symbol, open time), so a
backfill, its re-run and a later resumed run see the same data in every process. Faults: the
generic injector (``POST /admin/inject`` with ``path`` ``/api/v3/klines``: 5xx, 429 with
Retry-After, delays) and holes (``POST /admin/klines/gaps``: candles omitted until cleared), and bad data (``POST
/admin/klines/corrupt``: a column of the candles in a range replaced by any JSON value — text,
"NaN", a negative price, null — until cleared).

Construction: a log-price path on a 15-minute base grid made of value noise at several scales
(blake2b-hashed values at multiples of 4^j steps, linearly interpolated) plus two slow waves —
O(levels) per point, no history needed. A 15m candle opens at p(k) and closes at p(k+1), its
wicks and volume drawn from splitmix64(key(seed, symbol) ^ k); coarser candles aggregate their
15m candles (so 1h is exactly four 15m candles). Weeks open on Monday 00:00 UTC like Binance's.
Rows are built in a worker thread (a 1w candle is 672 base steps) and cached by key.

Invariants: only candles closed before the server's time are served; rows ascending; at most
``limit`` (≤ 1000); none opening after ``endTime``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import web

from engine.sim.marketsim import symbol_spec
from venuesim.protocol import VenueError, bad

BASE_MS = 15 * 60_000
INTERVAL_MS = {
    "15m": BASE_MS,
    "30m": 2 * BASE_MS,
    "1h": 4 * BASE_MS,
    "4h": 16 * BASE_MS,
    "1d": 96 * BASE_MS,
    "1w": 672 * BASE_MS,
}
_WEEK_OFFSET_MS = 4 * 86_400_000  # 1970-01-01 was a Thursday
_LEVELS = (4, 16, 64, 256, 1024, 4096)  # noise scales in 15m steps (1 h .. ~6 weeks)
_AMP = (0.0015, 0.003, 0.006, 0.012, 0.025, 0.05)
_CACHE_ROWS = 50_000
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_U21, _S21, _S22 = 0x1FFFFF, float(1 << 21), float(1 << 22)  # 21+21+22 bits, each in [0, 1)


def _u(seed: int, symbol: str, tag: str, k: int) -> float:
    """A uniform in [0, 1) from a counter-based hash (stable across processes and versions)."""
    digest = hashlib.blake2b(f"{seed}|{symbol}|{tag}|{k}".encode(), digest_size=8).digest()
    return float(struct.unpack("<Q", digest)[0] >> 11) / float(1 << 53)


def _key(seed: int, symbol: str) -> int:
    digest = hashlib.blake2b(f"{seed}|{symbol}|ohlv".encode(), digest_size=8).digest()
    return int(struct.unpack("<Q", digest)[0])


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap counter-based hash of a 64-bit integer."""
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class Klines:
    """The candle source and its holes; one per venue."""

    def __init__(self, seed: int, symbols: dict[str, str], now_ms: Callable[[], int]) -> None:
        self.seed = seed
        self.symbols = symbols  # venue id (BTCUSDT) -> symbol (BTC/USDT)
        self.now_ms = now_ms
        self.gaps: list[tuple[str, str, int, int]] = []  # venue id or *, interval or *, ms range
        # (venue id or *, interval or *, ms range, column index, value): bad data, served as is
        self.corrupt: list[tuple[str, str, int, int, int, Any]] = []
        self._p0 = {vid: symbol_spec(sym).start_price_e8 / 1e8 for vid, sym in symbols.items()}
        # Candles are immutable (pure functions of their key), so a backfill's re-run or resume
        # is served from memory; the pure-Python build of a 1w candle (672 base steps) is not free.
        self._keys = {vid: _key(seed, vid) for vid in symbols}
        self._cache: dict[tuple[str, str, int], list[Any]] = {}

    def prices(self, vid: str, k0: int, n: int) -> list[float]:
        """p(k) for k in k0..k0+n: level-major, so each hashed noise value is drawn once."""
        ks = range(k0, k0 + n + 1)
        xs = [0.0] * len(ks)
        for level, amp in zip(_LEVELS, _AMP, strict=True):
            i0 = k0 // level
            vals = [
                _u(self.seed, vid, f"n{level}", i) - 0.5 for i in range(i0, (k0 + n) // level + 2)
            ]
            for j, k in enumerate(ks):
                i, frac = divmod(k, level)
                a, b = vals[i - i0], vals[i - i0 + 1]
                xs[j] += amp * (a + (b - a) * frac / level)
        p0 = self._p0[vid]
        return [
            p0
            * math.exp(
                x + 0.04 * math.sin(2 * math.pi * k / (96 * 30)) + 0.02 * math.sin(k / 331.0)
            )
            for x, k in zip(xs, ks, strict=True)
        ]

    def base_candles(
        self, vid: str, k0: int, n: int
    ) -> list[tuple[float, float, float, float, float]]:
        """The 15m candles k0..k0+n-1: open p(k), close p(k+1), hashed wick and volume draws."""
        ps = self.prices(vid, k0, n)
        key = self._keys[vid]
        out = []
        for j in range(n):
            o, c = ps[j], ps[j + 1]
            # One splitmix64 draw per step gives three 21-bit uniforms (wicks, volume): blake2b
            # per step would make a 1w candle (672 steps) cost ~3 ms.
            z = _mix(key ^ ((k0 + j) * _GOLDEN & _M64))
            u_hi, u_lo, u_vol = (z & _U21) / _S21, (z >> 21 & _U21) / _S21, (z >> 42) / _S22
            out.append((o, max(o, c) * (1 + 0.002 * u_hi), min(o, c) * (1 - 0.002 * u_lo), c,
                        5.0 + 20.0 * u_vol))  # fmt: skip
        return out

    def candle(self, vid: str, interval: str, open_ms: int) -> list[Any]:
        key = (vid, interval, open_ms)
        if (row := self._cache.get(key)) is not None:
            return row
        step = INTERVAL_MS[interval]
        n = step // BASE_MS
        parts = self.base_candles(vid, open_ms // BASE_MS, n)
        o, c = parts[0][0], parts[-1][3]
        hi, lo = max(p[1] for p in parts), min(p[2] for p in parts)
        vol = sum(p[4] for p in parts)
        row = [open_ms, _f(o), _f(hi), _f(lo), _f(c), _f(vol), open_ms + step - 1, _f(vol * c),
               n * 37, _f(vol / 2), _f(vol * c / 2), "0"]  # fmt: skip
        if len(self._cache) >= _CACHE_ROWS:  # a bound, not an LRU: re-runs are what it serves
            self._cache.clear()
        self._cache[key] = row
        return row

    def _hidden(self, vid: str, interval: str, open_ms: int) -> bool:
        return any(
            s in ("*", vid) and i in ("*", interval) and a <= open_ms <= b
            for s, i, a, b in self.gaps
        )

    def rows(self, vid: str, interval: str, start_ms: int, end_ms: int, limit: int) -> list[Any]:
        step = INTERVAL_MS[interval]
        offset = _WEEK_OFFSET_MS if interval == "1w" else 0
        t = -(-(start_ms - offset) // step) * step + offset  # first open on or after start
        last_closed = self.now_ms() - step  # a candle is served once it has closed
        out: list[Any] = []
        while len(out) < limit and t <= min(end_ms, last_closed):
            if not self._hidden(vid, interval, t):
                out.append(self._damaged(vid, interval, self.candle(vid, interval, t)))
            t += step
        return out

    def _damaged(self, vid: str, interval: str, row: list[Any]) -> list[Any]:
        hits = [(col, value) for s, i, a, b, col, value in self.corrupt
                if s in ("*", vid) and i in ("*", interval) and a <= row[0] <= b]  # fmt: skip
        if not hits:
            return row
        row = list(row)  # the cached candle stays good: clearing the fault repairs it
        for col, value in hits:
            row[col] = value
        return row

    async def handler(self, request: web.Request) -> web.Response:
        q = request.query
        vid = (q.get("symbol") or "").upper()
        if vid not in self.symbols:
            raise bad(-1121, "Invalid symbol.")
        interval = q.get("interval", "")
        if interval not in INTERVAL_MS:
            raise bad(-1120, "Invalid interval.")
        try:
            limit = int(q.get("limit") or 500)
            now = self.now_ms()
            end = int(q.get("endTime") or now)
            start = (
                int(q["startTime"]) if q.get("startTime") else end - limit * INTERVAL_MS[interval]
            )
        except ValueError:
            raise bad(-1100, "Illegal characters found in a parameter.") from None
        if not 1 <= limit <= 1000:
            raise VenueError(
                400, -1100, "Illegal characters found in parameter 'limit'; legal range is 1..1000."
            )
        # Off the event loop: 1000 weekly candles take a second or two of pure Python, and the
        # price loop and websockets of the venue must keep running meanwhile.
        rows = await asyncio.to_thread(self.rows, vid, interval, start, end, limit)
        return web.json_response(rows)


def _f(x: float) -> str:
    return f"{x:.8f}"
