"""OHLCV backfill through ccxt ``fetch_ohlcv`` into the market DB (seed 003 "backfill", "Binance
API Down", "ingestion failures").

Role: ``Backfill.run`` fetches, for each symbol, exactly the candles the market DB is missing in
``[since, now)`` — the gaps (``store.candles.gaps``), so a first run fills everything, a re-run
fetches only what is new or was missing, and a repaired hole on the exchange is filled by the next
run. Pages of up to 1,000 candles; each page is committed as it arrives.

Failures: a rate limit (429/418), a timeout or an unavailable exchange (5xx, connection refused)
is retried with exponential backoff and jitter up to ``retry_budget`` attempts per page; every
failure is counted by reason (``ingestion_failure_total{interval,reason}``). When the budget is
spent the run stops with ``BackfillFailed``: one line naming the reason, how many candles were
kept, and that a re-run resumes. A request the exchange refuses (bad symbol) is not retried.

Bad data: a row that is not a candle (``store.candles.bad_candle``: text, NaN, a negative price,
a high below the close, an open time off the grid...) is refused and counted (reason
``bad_data``); the candle stays missing, so ``data gaps`` lists it and the next run fetches it
again. The first such row is named, its values shown literally (``BackfillStats.bad_data``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt

from engine.store.candles import INTERVAL_US, bad_candle, candle_time_us, gaps, insert_candles

PAGE = 1000


class BackfillFailed(Exception):
    """The exchange stayed down beyond the retry budget; what was fetched is kept."""


@dataclass
class BackfillStats:
    rows: int = 0
    pages: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    ranges: int = 0
    missing: int = 0  # candles still missing in the window after the run
    first_bad: str = ""  # the first refused row: symbol, time, why

    def bad_data(self) -> str:
        """One line for refused rows ("" when none was)."""
        n = self.failures.get("bad_data", 0)
        if not n:
            return ""
        return (f"{n} candles refused as bad data from the exchange (first: {self.first_bad}); "
                "they stay missing: `cockpit data gaps` lists them, the next backfill fetches "
                "them again")  # fmt: skip


def failure_reason(exc: BaseException) -> str | None:
    """The ``reason`` label of a retryable failure; None for one a retry cannot fix."""
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return "rate_limited"
    if isinstance(exc, ccxt.RequestTimeout | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ccxt.ExchangeNotAvailable | ccxt.NetworkError | OSError):
        return "unavailable"
    return None


class Backfill:
    """One backfill of one interval over a set of symbols (see module docstring)."""

    def __init__(
        self,
        ex: Any,
        con: Any,
        interval: str,
        *,
        retry_budget: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        progress: Callable[[str, int, int], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stats: BackfillStats | None = None,
    ) -> None:
        self.ex, self.con, self.interval = ex, con, interval
        self.step_us = INTERVAL_US[interval]
        self.retry_budget = retry_budget
        self.backoff = (backoff_base_s, backoff_max_s)
        self.progress = progress or (lambda symbol, done, total: None)
        self.sleep = sleep
        self.stats = stats if stats is not None else BackfillStats()  # the caller's, if kept
        self._rng = random.Random(7)  # jitter only; never security relevant  # noqa: S311

    def missing(self, symbols: list[str], since_us: int, now_us: int) -> dict[str, int]:
        """Candles missing per symbol (what a run would fetch)."""
        return {
            s: sum(g.candles for g in gaps(self.con, s, self.interval, since_us, now_us))
            for s in symbols
        }

    async def run(self, symbols: list[str], since_us: int, now_us: int) -> BackfillStats:
        for symbol in symbols:
            holes = gaps(self.con, symbol, self.interval, since_us, now_us)
            total = sum(g.candles for g in holes)
            done = 0
            self.progress(symbol, 0, total)
            for gap in holes:
                self.stats.ranges += 1
                done = await self._range(symbol, gap.start_us, gap.end_us, done, total)
            self.progress(symbol, total, total)
            if holes:  # what the exchange did not serve (a hole on its side, refused rows)
                left = gaps(self.con, symbol, self.interval, since_us, now_us)
                self.stats.missing += sum(g.candles for g in left)
        return self.stats

    async def _range(self, symbol: str, start_us: int, end_us: int, done: int, total: int) -> int:
        cursor = start_us
        while cursor <= end_us:
            rows, last = self._usable(symbol, await self._page(symbol, cursor), cursor, end_us)
            if last is None:
                break  # the exchange has nothing there (a hole on its side): the gap stays
            if rows:
                self.stats.rows += insert_candles(self.con, symbol, self.interval, rows)
            self.stats.pages += 1
            done += len(rows)
            self.progress(symbol, min(done, total), total)
            cursor = last + self.step_us
        return done

    def _usable(
        self, symbol: str, page: list[Any], start_us: int, end_us: int
    ) -> tuple[list[Any], int | None]:
        """The page's good rows in range, and the last open time in range (bad rows too: the
        run goes on past them)."""
        good, last = [], None
        for r in page:
            t = candle_time_us(r)
            if t is not None and not start_us <= t <= end_us:
                continue
            why = bad_candle(r, self.interval)
            if why is not None:
                self.stats.failures["bad_data"] = self.stats.failures.get("bad_data", 0) + 1
                if not self.stats.first_bad:
                    when = dt.datetime.fromtimestamp(t / 1e6, dt.UTC).isoformat() if t else "?"
                    self.stats.first_bad = f"{symbol} {self.interval} {when}: {why}"
            else:
                good.append(r)
            if t is not None:
                last = t if last is None else max(last, t)
        return good, last

    async def _page(self, symbol: str, cursor_us: int) -> list[Any]:
        attempt = 0
        while True:
            try:
                rows: list[Any] = await self.ex.fetch_ohlcv(
                    symbol, self.interval, since=cursor_us // 1000, limit=PAGE
                )
                return rows
            except Exception as exc:
                reason = failure_reason(exc)
                if reason is None:
                    raise
                self.stats.failures[reason] = self.stats.failures.get(reason, 0) + 1
                attempt += 1
                if attempt >= self.retry_budget:
                    raise BackfillFailed(
                        f"exchange {reason.replace('_', ' ')} after {attempt} attempts "
                        f"({type(exc).__name__}); {self.stats.rows} new candles kept; run the "
                        "same command again to resume"
                    ) from None
                base, cap = self.backoff
                wait = min(cap, base * 2 ** (attempt - 1)) * (0.5 + self._rng.random())
                if reason == "rate_limited":  # the exchange says how long: never come back sooner
                    wait = max(wait, self._retry_after_s())
                await self.sleep(wait)

    def _retry_after_s(self) -> float:
        headers = getattr(self.ex, "last_response_headers", None) or {}
        raw = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), "0")
        try:
            return min(float(raw), 300.0)
        except (TypeError, ValueError):
            return 0.0
