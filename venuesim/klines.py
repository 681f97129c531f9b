"""``GET /api/v3/klines``: deterministic candles for research backfills (Binance's shape).

Role: serve OHLCV candles of any past time as a pure function of (seed, symbol, open time), so a
backfill, its re-run and a later resumed run see the same data in every process. Faults: the
generic injector (``POST /admin/inject`` with ``path`` ``/api/v3/klines``: 5xx, 429 with
Retry-After, delays) and holes (``POST /admin/klines/gaps``: candles omitted until cleared).

Construction: a log-price path on a 15-minute base grid made of value noise at several scales
(hashed values at multiples of 2^j steps, linearly interpolated) plus two slow waves — O(levels)
per point, no history needed. A 15m candle opens at p(k) and closes at p(k+1), its high and low
spread by hashed amounts; coarser candles aggregate their 15m candles (so 1h is exactly four 15m
candles). Weeks open on Monday 00:00 UTC like Binance's.

Invariants: only candles closed before the server's time are served; rows ascending; at most
``limit`` (≤ 1000); none opening after ``endTime``.
"""

from __future__ import annotations

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


def _u(seed: int, symbol: str, tag: str, k: int) -> float:
    """A uniform in [0, 1) from a counter-based hash (stable across processes and versions)."""
    digest = hashlib.blake2b(f"{seed}|{symbol}|{tag}|{k}".encode(), digest_size=8).digest()
    return float(struct.unpack("<Q", digest)[0] >> 11) / float(1 << 53)


class Klines:
    """The candle source and its holes; one per venue."""

    def __init__(self, seed: int, symbols: dict[str, str], now_ms: Callable[[], int]) -> None:
        self.seed = seed
        self.symbols = symbols  # venue id (BTCUSDT) -> symbol (BTC/USDT)
        self.now_ms = now_ms
        self.gaps: list[tuple[str, str, int, int]] = []  # venue id or *, interval or *, ms range
        self._p0 = {vid: symbol_spec(sym).start_price_e8 / 1e8 for vid, sym in symbols.items()}

    def price(self, vid: str, k: int) -> float:
        x = 0.0
        for level, amp in zip(_LEVELS, _AMP, strict=True):
            i, frac = divmod(k, level)
            a = _u(self.seed, vid, f"n{level}", i) - 0.5
            b = _u(self.seed, vid, f"n{level}", i + 1) - 0.5
            x += amp * (a + (b - a) * frac / level)
        x += 0.04 * math.sin(2 * math.pi * k / (96 * 30)) + 0.02 * math.sin(k / 331.0)
        return self._p0[vid] * math.exp(x)

    def base_candle(self, vid: str, k: int) -> tuple[float, float, float, float, float]:
        o, c = self.price(vid, k), self.price(vid, k + 1)
        hi = max(o, c) * (1 + 0.002 * _u(self.seed, vid, "hi", k))
        lo = min(o, c) * (1 - 0.002 * _u(self.seed, vid, "lo", k))
        vol = 5.0 + 20.0 * _u(self.seed, vid, "vol", k)
        return o, hi, lo, c, vol

    def candle(self, vid: str, interval: str, open_ms: int) -> list[Any]:
        step = INTERVAL_MS[interval]
        k0, n = open_ms // BASE_MS, step // BASE_MS
        parts = [self.base_candle(vid, k) for k in range(k0, k0 + n)]
        o, c = parts[0][0], parts[-1][3]
        hi, lo = max(p[1] for p in parts), min(p[2] for p in parts)
        vol = sum(p[4] for p in parts)
        return [open_ms, _f(o), _f(hi), _f(lo), _f(c), _f(vol), open_ms + step - 1, _f(vol * c),
                n * 37, _f(vol / 2), _f(vol * c / 2), "0"]  # fmt: skip

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
                out.append(self.candle(vid, interval, t))
            t += step
        return out

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
        return web.json_response(self.rows(vid, interval, start, end, limit))


def _f(x: float) -> str:
    return f"{x:.8f}"
