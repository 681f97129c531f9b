"""The clock port: every engine time comes from an injected clock.

Invariants:
- ``now_ns()`` is the engine's notion of wall time (UTC, integer ns). Nothing in ``engine/`` calls
  ``time.time()`` for business time; only the clock does.
- ``skew_ms()`` is the last measured offset between this host and the reference (venue / NTP), in ms,
  positive when the local clock is ahead. The clock-skew gate reads it; the venue clock sync feeds it
  and SNTP. Until a measurement exists it is 0.0 and ``skew_measured`` is False.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def now_us(self) -> int: ...

    def monotonic_ns(self) -> int: ...

    def skew_ms(self) -> float: ...


class _SkewMixin:
    _skew_ms: float = 0.0
    skew_measured: bool = False

    def skew_ms(self) -> float:
        return self._skew_ms

    def set_skew_ms(self, skew_ms: float) -> None:
        """Record a measured skew (from the venue's server time or SNTP)."""
        self._skew_ms = float(skew_ms)
        self.skew_measured = True


class RealClock(_SkewMixin):
    """Wall clock of the host."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


class SimClock(_SkewMixin):
    """A clock that only moves when told to: replay, benchmarks and deterministic tests.

    Replays set it from each tick's timestamp; it never goes backward (a late tick leaves it alone).
    """

    def __init__(self, start_ns: int = 1_767_225_600_000_000_000) -> None:  # 2026-01-01T00:00Z
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def now_us(self) -> int:
        return self._now_ns // 1000

    def monotonic_ns(self) -> int:
        return self._now_ns

    def set_ns(self, ts_ns: int) -> None:
        if ts_ns > self._now_ns:
            self._now_ns = ts_ns

    def advance_ms(self, ms: float) -> None:
        self._now_ns += int(ms * 1_000_000)
