"""Samples: a fixed-size ring of integer measurements (latencies in µs) for percentiles.

Role: the engine keeps its recent tick→submit latencies, loop lags and feed wake-ups so the
benchmark and the status screens can read percentiles. A ``deque`` of Python ints grows the heap by
one int object per sample until it fills (a 200k deque at 100 samples/s keeps growing for half an
hour, which reads as a leak); this ring allocates its whole store once, 8 bytes a sample, so the
process's memory for it is flat from the first second.

Invariants: ``append`` is O(1) and allocates nothing; iteration yields the kept samples oldest
first; at most ``capacity`` samples are kept (the oldest are overwritten).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator


class Samples:
    """A fixed-size ring of int samples (latencies): constant memory, no allocation per append."""

    __slots__ = ("_buf", "_n", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"Samples capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._buf = array("q", [0]) * capacity
        self._n = 0  # samples ever appended since the last clear

    def append(self, value: int) -> None:
        self._buf[self._n % self.capacity] = value
        self._n += 1

    def clear(self) -> None:
        self._n = 0

    def __len__(self) -> int:
        return min(self._n, self.capacity)

    def __iter__(self) -> Iterator[int]:
        n, cap, buf = self._n, self.capacity, self._buf
        if n <= cap:
            return iter(buf[:n])
        i = n % cap
        return iter(buf[i:] + buf[:i])
