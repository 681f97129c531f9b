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

from collections import deque

from engine.core.samples import Samples
from engine.trading.windows import p95

WINDOW = 500
ALL = ""  # the key of the engine-wide window


class Window:
    """Recent (time µs, value) samples, newest last, at most ``WINDOW`` of them."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: deque[tuple[int, float]] = deque(maxlen=WINDOW)

    def values(self, since_us: int = 0) -> list[float]:
        return [v for ts, v in self.samples if ts >= since_us]

    def __len__(self) -> int:
        return len(self.samples)


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
        vals = w.values() if w is not None else []
        return (sum(vals) / len(vals) if vals else 0.0), len(vals)

    def place_p95_ms(self, symbol: str = ALL, since_us: int = 0) -> tuple[float, int]:
        """(p95 submit→ack latency in ms, acks counted), acks at or after ``since_us`` only."""
        w = self.latency.get(symbol)
        vals = w.values(since_us) if w is not None else []
        return p95(vals), len(vals)

    def slippage_p95(self, symbol: str = ALL) -> tuple[float, int]:
        """(p95 fill slippage vs arrival mid in bps, fills in the window)."""
        w = self.slippage.get(symbol)
        vals = w.values() if w is not None else []
        return p95(vals), len(vals)

    def symbols(self) -> list[str]:
        return sorted(k for k in {*self.errors, *self.slippage, *self.latency} if k != ALL)

    def restart_errors(self) -> None:
        self.errors = {ALL: Window()}

    def restart_slippage(self) -> None:
        self.slippage = {ALL: Window()}


def _add(windows: dict[str, Window], symbol: str, ts_us: int, value: float) -> None:
    windows[ALL].samples.append((ts_us, value))
    w = windows.get(symbol)
    if w is None:
        w = windows[symbol] = Window()
    w.samples.append((ts_us, value))
