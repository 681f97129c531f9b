"""Execution KPIs of one session: placement latency, outcomes, slippage, denials, trade counts —
global and per symbol.

Role: bounded recent windows the engine appends to on the order path (``note_ack``,
``note_outcome``, ``note_slippage``); the telemetry turns them into gauges (p95 latency, error
rate, slippage p95), the snapshot into the SLO rows, and the breakers and the SLO gate
(``engine.trading.breakers``) read them once a second to decide.

Invariants:
- Every window is bounded (``WINDOW`` samples each, global and per symbol; ``tick_to_submit_us``
  a 2**17 ring), so a long session costs the same memory as a short one.
- Each sample carries its time (engine clock, µs): the SLO gate looks only at the last few
  minutes, so a slow spell ages out even when the gate itself stops new orders.
- The global window under key ``""`` sees every sample; a symbol's window sees its own only.
- ``restart_errors`` / ``restart_slippage`` start a fresh measurement (a breaker reset): the
  samples that tripped the breaker are not counted again, new ones are.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from itertools import islice

from engine.core.samples import Samples

WINDOW = 500
ALL = ""  # the key of the engine-wide window


class Window:
    """Recent (time µs, value) samples, newest last, at most ``WINDOW`` of them.

    Cheap to ask twice: the sum is kept as samples come and go (the error rate is O(1)), values
    and times sit in two flat deques (sorting floats runs in C), and a p95 is cached until the
    window changes or its time cut moves past another sample — the telemetry and the breakers ask
    for the same figures in the same refresh."""

    __slots__ = ("_p95", "times", "total", "vals", "version")

    def __init__(self) -> None:
        self.times: deque[int] = deque(maxlen=WINDOW)
        self.vals: deque[float] = deque(maxlen=WINDOW)
        self.total = 0.0
        self.version = 0
        self._p95: tuple[int, int, float] = (-1, -1, 0.0)  # (version, samples counted, p95)

    def add(self, ts_us: int, value: float) -> None:
        if len(self.vals) == WINDOW:
            self.total -= self.vals[0]
        self.times.append(ts_us)
        self.vals.append(value)
        self.total += value
        self.version += 1

    def values(self, since_us: int = 0) -> list[float]:
        n = self.count_since(since_us)
        return list(islice(self.vals, len(self.vals) - n, None))

    def count_since(self, since_us: int) -> int:
        """Samples at or after ``since_us`` (times are appended in order)."""
        if since_us <= 0 or not self.times or self.times[0] >= since_us:
            return len(self.times)
        return len(self.times) - bisect_left(self.times, since_us)

    def p95(self, since_us: int = 0) -> tuple[float, int]:
        """(p95, samples counted) of the samples at or after ``since_us``."""
        n = self.count_since(since_us)
        version, counted, value = self._p95
        if version != self.version or counted != n:
            start = len(self.vals) - n
            ordered = sorted(islice(self.vals, start, None) if start else self.vals)
            value = ordered[min(n - 1, int(n * 0.95))] if n else 0.0
            self._p95 = (self.version, n, value)
        return value, n

    def __len__(self) -> int:
        return len(self.vals)


class Kpis:
    """Counters and recent windows the order path feeds (loop thread)."""

    __slots__ = (
        "canary_placed",
        "denials",
        "errors",
        "first_unacked_us",
        "last_ack_ms",
        "latency",
        "slippage",
        "tick_due_ns",
        "tick_to_submit_us",
        "trades_placed",
    )

    def __init__(self) -> None:
        self.latency: dict[str, Window] = {ALL: Window()}  # submit -> venue ack, ms
        self.errors: dict[str, Window] = {ALL: Window()}  # 1.0 = rejected, 0.0 = clean close
        self.slippage: dict[str, Window] = {ALL: Window()}  # fill vs arrival mid, bps
        self.last_ack_ms = 0.0  # the latest placement latency (the latency sparkline)
        # when the oldest order sent since the last venue acknowledgement left (0: none waiting):
        # the SLO gate's "stale p95" — orders go out and nothing comes back
        self.first_unacked_us = 0
        self.denials = 0
        self.trades_placed = 0  # orders placed this session, all routes (the canary panel)
        self.canary_placed = 0  # ... of which on the challenger route
        # tick -> venue submit latency (µs) when the feed stamps when each tick was due
        self.tick_due_ns = 0
        self.tick_to_submit_us = Samples(2**17)

    # --- the order path feeds these ------------------------------------------------------------

    def note_sent(self, now_us: int) -> None:
        if not self.first_unacked_us:
            self.first_unacked_us = now_us

    def note_ack(self, symbol: str, ts_us: int, ms: float) -> None:
        self.first_unacked_us = 0
        self.last_ack_ms = ms
        _add(self.latency, symbol, ts_us, ms)

    def note_outcome(self, symbol: str, ts_us: int, error: bool) -> None:
        if error:
            self.first_unacked_us = 0  # a rejection is an answer too
        _add(self.errors, symbol, ts_us, 1.0 if error else 0.0)

    def note_slippage(self, symbol: str, ts_us: int, bps: float) -> None:
        _add(self.slippage, symbol, ts_us, bps)

    # --- figures ---------------------------------------------------------------------------------

    def error_rate(self, symbol: str = ALL) -> tuple[float, int]:
        """(share of recent orders rejected, orders in the window)."""
        w = self.errors.get(symbol)
        n = len(w) if w is not None else 0
        return ((w.total / n) if w is not None and n else 0.0), n

    def place_p95_ms(self, symbol: str = ALL, since_us: int = 0) -> tuple[float, int]:
        """(p95 submit→ack latency in ms, acks counted), acks at or after ``since_us`` only."""
        w = self.latency.get(symbol)
        return w.p95(since_us) if w is not None else (0.0, 0)

    def slippage_p95(self, symbol: str = ALL) -> tuple[float, int]:
        """(p95 fill slippage vs arrival mid in bps, fills in the window)."""
        w = self.slippage.get(symbol)
        return w.p95() if w is not None else (0.0, 0)

    def symbols(self) -> list[str]:
        return sorted(k for k in {*self.errors, *self.slippage, *self.latency} if k != ALL)

    def restart_errors(self) -> None:
        self.errors = {ALL: Window()}

    def restart_slippage(self) -> None:
        self.slippage = {ALL: Window()}


def _add(windows: dict[str, Window], symbol: str, ts_us: int, value: float) -> None:
    windows[ALL].add(ts_us, value)
    w = windows.get(symbol)
    if w is None:
        w = windows[symbol] = Window()
    w.add(ts_us, value)
