"""Execution KPIs of one session: placement latency, outcomes, denials, trade and canary counts.

Role: bounded recent windows and plain counters the engine appends to on the order path; the
telemetry turns them into gauges (p95 latency, error rate) and the snapshot into the SLO and
canary panels. Nothing here is read to make a trading decision.

Invariants: every window is bounded (500 samples; ``tick_to_submit_us`` a 2**17 ring), so a long
session costs the same memory as a short one; ``recent_outcomes`` holds 1 for an error
(rejection) and 0 for a clean close.
"""

from __future__ import annotations

from collections import deque

from engine.core.samples import Samples


class Kpis:
    """Counters and recent windows the order path feeds (loop thread)."""

    __slots__ = (
        "canary_placed",
        "denials",
        "recent_latency_ms",
        "recent_outcomes",
        "tick_due_ns",
        "tick_to_submit_us",
        "trades_placed",
    )

    def __init__(self) -> None:
        self.recent_latency_ms: deque[float] = deque(maxlen=500)  # submit -> venue ack
        self.recent_outcomes: deque[int] = deque(maxlen=500)  # 1 = error
        self.denials = 0
        self.trades_placed = 0  # orders placed this session, all routes (the canary panel)
        self.canary_placed = 0  # ... of which on the challenger route
        # tick -> venue submit latency (µs) when the feed stamps when each tick was due
        self.tick_due_ns = 0
        self.tick_to_submit_us = Samples(2**17)
