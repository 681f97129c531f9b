"""The simulator feed: kernel-timer pacing, catch-up without skips or doubles, the fallback."""

from __future__ import annotations

import asyncio
import itertools
import select
import time

import pytest

from engine.sim import simfeed
from engine.sim.marketsim import MarketSimulator
from engine.sim.simfeed import PeriodicTimerFd, SimFeed

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def test_timerfd_when_interval_elapses_then_readable_and_counts_expirations() -> None:
    # periods long enough that a loaded machine cannot slip one in between two drains
    t = PeriodicTimerFd(0.05, time.monotonic_ns() + 200_000_000)  # first expiry in 200 ms
    try:
        assert t.drain() == 0  # nothing expired yet: a spurious wake-up reads zero, not an error
        ready, _, _ = select.select([t], [], [], 1.0)
        assert ready == [t]
        time.sleep(0.12)
        n = t.drain()
        assert n >= 2  # several periods passed: one read reports all of them
        assert t.drain() == 0
    finally:
        t.close()
    assert t.fd == -1


async def _run_for(feed: SimFeed, seconds: float, block_s: float = 0.0) -> None:
    task = asyncio.create_task(feed.run())
    await asyncio.sleep(seconds / 2)
    if block_s:
        time.sleep(block_s)  # the loop is stuck (a long callback): steps fall due meanwhile  # noqa: ASYNC251 - deliberately blocks the loop to simulate a stall
    await asyncio.sleep(seconds / 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("pacing", ["timerfd", "asyncio"])
async def test_feed_when_loop_blocked_then_catches_up_in_order_without_skips_or_doubles(
    make_booted, monkeypatch, pacing: str
) -> None:
    if pacing == "asyncio":  # as on a platform without timerfd

        def unavailable(*a: object, **k: object) -> None:
            raise OSError("timerfd is not available on this platform")

        monkeypatch.setattr(simfeed, "PeriodicTimerFd", unavailable)
    b = make_booted()
    e = b.engine
    dues: list[tuple[int, int]] = []  # (steps delivered, due stamp of the last one) per burst
    sim = MarketSimulator(SYMBOLS, seed=7, ticks_per_second=200.0, trade_prob=0.0)
    feed = SimFeed(e, sim, 200.0, after_burst=lambda: dues.append((feed.steps, e.kpis.tick_due_ns)))
    t0 = time.monotonic_ns()
    await _run_for(feed, 0.3, block_s=0.08)
    elapsed_steps = (time.monotonic_ns() - t0) // feed.interval_ns
    assert feed.pacing == pacing
    assert e.market.ticks == feed.steps * len(SYMBOLS)  # every step reached the engine, once
    # the step count follows the clock, so the 80 ms stall did not lose steps (≥ 16 of them)
    assert elapsed_steps - 3 <= feed.steps <= elapsed_steps + 1
    assert any(b - a >= 10 for (a, _), (b, _) in itertools.pairwise(dues))
    for (n, due), (n2, due2) in itertools.pairwise(dues):
        assert n2 > n
        assert due2 - due == (n2 - n) * feed.interval_ns
    assert dues[0][1] == feed._t0_ns + (dues[0][0] - 1) * feed.interval_ns


async def test_feed_when_cancelled_then_timer_released(make_booted) -> None:
    b = make_booted()
    sim = MarketSimulator(SYMBOLS, seed=1, ticks_per_second=100.0)
    feed = SimFeed(b.engine, sim, 100.0)
    selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    before = set(selector.get_map())
    await _run_for(feed, 0.05)
    assert feed.steps > 0
    n = feed.steps
    await asyncio.sleep(0.05)
    assert feed.steps == n  # nothing delivered after cancellation
    assert set(selector.get_map()) == before  # the timer's reader is gone


def test_timerfd_when_read_through_fallback_then_same_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where libc cannot be called holding the GIL, ``os.read`` gives the same answers."""

    def no_pydll(*args: object, **kwargs: object) -> object:
        raise OSError("no PyDLL here")

    monkeypatch.setattr(simfeed.ctypes, "PyDLL", no_pydll)
    t = PeriodicTimerFd(0.05, time.monotonic_ns())
    try:
        assert t._read is not None
        assert not hasattr(t._read, "argtypes")
        time.sleep(0.12)
        assert t.drain() >= 2
        assert t.drain() == 0
    finally:
        t.close()
