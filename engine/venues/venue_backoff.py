"""Rate-limit and ban back-off of one venue client (the ccxt adapter's REST session).

Binance answers HTTP 429 (or a 400 with ``-1003``/``-1015``) when a rate limit is hit: back off
for ``Retry-After`` seconds. It answers HTTP 418 when the IP is *banned* for ignoring 429s: every
request fails until the ban ends (``Retry-After``, or "banned until <epoch ms>" in the message).
ccxt raises ``DDoSProtection`` for both 418 and 429 (``binance.handle_errors``: the message starts
``"binance 418 "`` / ``"binance 429 "``) and ``RateLimitExceeded`` for ``-1003``; the status code in
the message is how a ban is told apart from a rate limit.

Invariants:
- While backing off, nothing is sent (``wait``); cancels go first when it ends.
- The state is public and read-only through ``throttle()``: ``kind`` ``ban`` or ``rate_limit``,
  until-when on the engine clock, and a one-line reason for the gates panel. Never shortened by
  a later, shorter back-off.
- A 418 without a usable Retry-After is a ban of ``DEFAULT_BAN_S`` (Binance bans last 2 min to
  3 days): assuming a short ban would only earn a longer one.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from engine.core.clock import Clock
from engine.trading.venue_port import VenueThrottle

DEFAULT_BAN_S = 120.0
MAX_BAN_S = 4 * 86_400.0  # Binance bans last up to 3 days
MAX_BACKOFF_S = 30.0
_STATUS = re.compile(r"^\S+ (418|429) ")
_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")
_RATE_CODE = re.compile(r'"code":\s*(-1003|-1015)\b')


def _hhmmss(ts_us: int) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(ts_us / 1e6))


class Backoff:
    """When requests to the venue may go out again: doubles its delay on each 429 without a
    Retry-After, honours Retry-After, shows a 418 as a ban until its end, and resets on success.
    Read by the `venue_throttle` gate and by the ccxt adapter before each request."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.until = 0.0  # time.monotonic() when requests may go out again
        self.delay_s = 0.5  # next back-off without a Retry-After (doubles, reset on success)
        self.cancels_waiting = 0
        self.last_wait_s = 0.0
        self._kind = ""
        self._until_us = 0
        self._reason = ""

    def remaining_s(self) -> float:
        return max(0.0, self.until - time.monotonic())

    def throttle(self) -> VenueThrottle | None:
        if self.remaining_s() <= 0:
            return None
        return VenueThrottle(self._kind, self._until_us, self._reason)

    def observe(self, status: int, headers: dict[str, Any] | None, body: str) -> str:
        """Every REST response of the session (ccxt's ``on_rest_response`` hook): a 418, a 429 or
        a -1003/-1015 answer to *any* request — an order, a catch-up, a clock sample — puts the
        whole client in back-off. Returns the kind (``ban``/``rate_limit``) or ``""``."""
        if status == 418:
            return self._apply("ban", "HTTP 418", headers, body)
        if status == 429:
            return self._apply("rate_limit", "HTTP 429", headers, body)
        if status >= 400 and _RATE_CODE.search(body or ""):
            return self._apply("rate_limit", _code(body), headers, body)
        return ""

    def note(self, exc: Exception, headers: dict[str, Any] | None) -> str:
        """A rate-limit exception the response hook did not classify (e.g. -2015 reported as
        DDoSProtection): back off all the same."""
        msg = str(exc)
        m = _STATUS.match(msg)
        if m:
            return self.observe(int(m.group(1)), headers, msg)
        return self._apply("rate_limit", _code(msg), headers, msg)

    def _apply(self, kind: str, what: str, headers: dict[str, Any] | None, msg: str) -> str:
        retry_after = _retry_after(headers or {})
        if kind == "ban":
            wait = retry_after if retry_after is not None else DEFAULT_BAN_S
            until = _BANNED_UNTIL.search(msg)
            if until:  # bounded: a garbled date must not silence the client for years
                left = int(until.group(1)) / 1000 - self.clock.now_us() / 1e6
                wait = max(wait, min(left, MAX_BAN_S))
        else:
            wait = retry_after if retry_after is not None else self.delay_s
            self.delay_s = min(self.delay_s * 2, MAX_BACKOFF_S)
        now = time.monotonic()
        if now + wait > self.until or kind == "ban":
            if self.until <= now or kind == "ban":
                self._kind = kind  # a ban, once in force, stays one while it lasts
            self.until = max(self.until, now + wait)
            self._until_us = self.clock.now_us() + int((self.until - now) * 1e6)
            label = (
                "venue BANNED this IP (HTTP 418)"
                if self._kind == "ban"
                else (f"venue rate limit ({what})")
            )
            after = f" (Retry-After {retry_after:g} s)" if retry_after is not None else ""
            self._reason = f"{label}: no new orders until {_hhmmss(self._until_us)}{after}"
        self.last_wait_s = wait
        return kind

    def succeeded(self) -> None:
        self.delay_s = 0.5

    async def wait(self, cancel: bool) -> None:
        """Until the back-off ends; a new order also waits for the cancels queued behind it."""
        while True:
            delay = self.until - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if not cancel and self.cancels_waiting:
                await asyncio.sleep(0.01)  # cancels first once the back-off ends
                continue
            return


def _retry_after(headers: dict[str, Any]) -> float | None:
    raw = headers.get("Retry-After") or headers.get("retry-after")
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value <= MAX_BAN_S else None


def _code(msg: str) -> str:
    m = re.search(r'"code":\s*(-?\d+)', msg)
    return f"code {m.group(1)}" if m else "rate limited"
