"""The embedded simulator feed: market-simulator steps delivered to the engine in real time.

Role: stands in for a venue's market-data stream on the paper profile. Each step (one tick per
symbol) has a due time on the monotonic clock; the engine stamps ``tick_due_ns`` with it so
tick → submit latency is measured from when the tick was due, not from when the loop got to it.

Invariants:
- Steps are delivered from a kernel timer (Linux ``timerfd``) that the event loop watches like a
  socket: the loop wakes when the step is due, exactly as it would for bytes arriving on a feed
  connection. asyncio's own timers round every wait up to a whole millisecond (epoll), which would
  add up to 1 ms of simulator-made delay to every tick. Without timerfd (not Linux) the feed falls
  back to ``asyncio.sleep`` pacing.
- A late loop catches up: every step whose due time has passed is delivered, in order, none
  skipped and none doubled (the step count follows the clock, not the number of timer wake-ups).
- ``after_burst`` (e.g. the GC pacer) runs right after a burst of steps is handled, when the next
  step is furthest away: housekeeping placed where it delays no tick.
- The engine is called directly: no queue hop on the hot path.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable
from typing import Any

from engine.core.events import QuoteTick
from engine.core.samples import Samples
from engine.sim.marketsim import MarketSimulator

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.timerfd_create  # noqa: B018 - raises AttributeError where timerfd does not exist
        return lib
    except (OSError, AttributeError):
        return None


def _read_holding_gil() -> Any:
    """libc ``read`` called without releasing the GIL (``ctypes.PyDLL``), or ``os.read``-based
    fallback where libc cannot be loaded that way."""
    try:
        fn = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6").read
    except (OSError, AttributeError):

        def fallback(fd: int, buf: Any, size: int) -> int:
            try:
                data = os.read(fd, size)
            except BlockingIOError:
                return -1
            buf.value = int.from_bytes(data, "little")
            return len(data)

        return fallback
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
    fn.restype = ctypes.c_ssize_t
    return fn  # a c_uint64 passed for the POINTER argument goes by reference


_LIBC: list[Any] = []  # libc, loaded once on first use


def _shared_libc() -> Any:
    if not _LIBC:
        _LIBC.append(_libc())
    return _LIBC[0]


class PeriodicTimerFd:
    """A periodic kernel timer as a readable file descriptor (``timerfd_create(2)``)."""

    def __init__(self, interval_s: float, first_ns: int) -> None:
        """Fires at ``first_ns`` (``time.monotonic_ns`` clock) and every ``interval_s`` after."""
        lib = _shared_libc()
        if lib is None:
            raise OSError("timerfd is not available on this platform")
        fd = lib.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        sec, nsec = divmod(max(1, int(interval_s * 1e9)), 1_000_000_000)
        fsec, fnsec = divmod(first_ns, 1_000_000_000)
        spec = _Itimerspec(_Timespec(sec, nsec), _Timespec(fsec, fnsec))
        # absolute first expiry: the phase follows the feed's t0, not when this call happened
        if lib.timerfd_settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, "timerfd_settime failed")
        self.fd = fd
        self._buf = ctypes.c_uint64(0)
        self._read = _read_holding_gil()

    def fileno(self) -> int:
        return int(self.fd)

    def drain(self) -> int:
        """Expirations since the last drain (0 when none: a spurious wake-up).

        Read through a GIL-holding call: ``os.read`` releases the GIL, and on a busy process
        (the cockpit's UI thread) taking it back costs up to a switch interval (1 ms) on every
        wake-up. A non-blocking read of a timerfd never blocks, so holding the GIL is free."""
        n = self._read(self.fd, self._buf, 8)
        return int(self._buf.value) if n == 8 else 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SimFeed:
    """Delivers simulator steps at ``ticks_per_second`` steps per second until cancelled."""

    def __init__(
        self,
        engine: Any,
        sim: MarketSimulator,
        ticks_per_second: float,
        *,
        after_burst: Callable[[], object] | None = None,
    ) -> None:
        self.engine = engine
        self.sim = sim
        self.interval_ns = int(1e9 / ticks_per_second)
        self.after_burst = after_burst
        self.steps = 0
        self.wake_us = Samples(2**17)
        self.pacing = "asyncio"
        self._t0_ns = 0

    def _deliver_due(self) -> None:
        engine = self.engine
        since_t0 = time.monotonic_ns() - self._t0_ns
        due = since_t0 // self.interval_ns + 1
        if self.steps >= due:
            return
        # how late this burst starts against its first step's due time: the scheduling part of
        # tick→submit (timer, loop, GIL hand-off), apart from the engine's own work
        self.wake_us.append((since_t0 - self.steps * self.interval_ns) // 1000)
        while self.steps < due:
            engine.kpis.tick_due_ns = self._t0_ns + self.steps * self.interval_ns
            self.steps += 1
            now_ns = engine.clock.now_ns()
            for tick in self.sim.step():
                if isinstance(tick, QuoteTick):
                    engine.on_quote(
                        tick.symbol,
                        tick.bid_e8,
                        tick.ask_e8,
                        tick.bid_size_e8,
                        tick.ask_size_e8,
                        now_ns,
                    )
                else:
                    engine.on_trade(tick.symbol, tick.price_e8, tick.qty_e8, now_ns)
        if self.after_burst is not None:
            self.after_burst()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._t0_ns = time.monotonic_ns()
        try:
            timer = PeriodicTimerFd(self.interval_ns / 1e9, self._t0_ns + self.interval_ns)
        except OSError:
            timer = None
        if timer is None:
            await self._run_sleeping()
            return
        self.pacing = "timerfd"

        def on_timer() -> None:
            timer.drain()
            self._deliver_due()

        self._deliver_due()  # step 1 is due at t0
        loop.add_reader(timer.fileno(), on_timer)
        try:
            await loop.create_future()  # runs until the task is cancelled
        finally:
            loop.remove_reader(timer.fileno())
            timer.close()

    async def _run_sleeping(self) -> None:
        while True:
            self._deliver_due()
            next_due_ns = self._t0_ns + self.steps * self.interval_ns
            await asyncio.sleep(max(0.0, (next_due_ns - time.monotonic_ns()) / 1e9))
