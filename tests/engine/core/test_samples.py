"""Samples ring: bounded, allocation-free measurement store read oldest first."""

from __future__ import annotations

import sys

import pytest

from engine.core.samples import Samples


def test_samples_when_under_capacity_then_all_kept_in_order() -> None:
    s = Samples(4)
    for v in (5, -3, 7):
        s.append(v)
    assert len(s) == 3
    assert list(s) == [5, -3, 7]


def test_samples_when_wrapped_then_oldest_overwritten_and_order_kept() -> None:
    s = Samples(4)
    for v in range(10):
        s.append(v)
    assert len(s) == 4
    assert list(s) == [6, 7, 8, 9]
    s.clear()
    assert len(s) == 0
    assert list(s) == []
    s.append(42)
    assert list(s) == [42]


def test_samples_when_appending_then_no_python_objects_are_kept() -> None:
    s = Samples(100_000)
    before = sys.getallocatedblocks()
    for v in range(1_000_000, 1_100_000):  # ints above the small-int cache
        s.append(v)
    assert sys.getallocatedblocks() - before < 1_000  # a deque would hold 100,000 int objects


def test_samples_when_capacity_not_positive_then_clear_error() -> None:
    with pytest.raises(ValueError, match="capacity must be positive, got 0"):
        Samples(0)
