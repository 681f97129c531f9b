"""GC pause watch and the GC pacer: collections counted and timed; cycles that reached the old
generation are still reclaimed (memory bounded), with automatic collection left on."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from engine.obs import gcwatch
from engine.obs.gcwatch import GcPacer


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> Node:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


@pytest.fixture
def quiet_gc() -> Iterator[None]:
    """Automatic collections off for the test's duration so counts are the test's own."""
    was = gc.isenabled()
    gc.disable()
    gc.collect()
    try:
        yield
    finally:
        if was:
            gc.enable()


def test_watch_when_collections_run_then_counted_per_generation_and_reset(quiet_gc) -> None:
    gcwatch.install()
    gcwatch.install()  # idempotent: one hook, not two
    assert gc.callbacks.count(gcwatch._hook) == 1
    gcwatch.reset()
    gc.collect(0)
    gc.collect(0)
    gc.collect(2)
    s = gcwatch.stats()
    assert s["gen0"]["count"] == 2
    assert s["gen1"]["count"] == 0
    assert s["gen2"]["count"] == 1
    assert s["gen2"]["max_ms"] >= 0.0
    assert s["recent_p99_ms"] >= 0.0
    gcwatch.reset()
    assert gcwatch.stats()["gen2"]["count"] == 0
    gcwatch.uninstall()
    assert gcwatch._hook not in gc.callbacks
    gc.collect(0)
    assert gcwatch.stats()["gen0"]["count"] == 0


def test_pacer_when_young_objects_accumulate_then_young_collection(quiet_gc) -> None:
    clock = [0.0]
    p = GcPacer(young=500, middle_every=3, full_every_s=60.0, now=lambda: clock[0])
    assert p.step() == -1  # just collected by the fixture: nothing due
    keep = [[i] for i in range(1000)]  # noqa: F841 - young, alive container objects
    assert p.step() == 0
    assert gc.get_count()[0] < 500


def test_pacer_when_young_collections_add_up_then_middle_one(quiet_gc) -> None:
    p = GcPacer(young=10_000, middle_every=3, full_every_s=60.0, now=lambda: 0.0)
    for _ in range(3):
        gc.collect(0)
    assert gc.get_count()[1] >= 3
    assert p.step() == 1
    assert p.collections == [0, 1, 0]


def test_pacer_when_cycles_reached_old_generation_then_full_collection_frees_them(
    quiet_gc,
) -> None:
    clock = [0.0]
    p = GcPacer(young=10_000, middle_every=1000, full_every_s=60.0, now=lambda: clock[0])
    alive = [_cycle() for _ in range(100)]
    refs = [weakref.ref(a) for a in alive]
    gc.collect(1)  # they survive: promoted to the old generation
    alive.clear()  # now garbage that reference counting cannot free (cycles)
    gc.collect(0)
    gc.collect(1)
    assert all(r() is not None for r in refs)  # young and middle collections never look there
    clock[0] = 61.0
    assert p.step() == 2
    assert all(r() is None for r in refs)  # reclaimed: memory stays bounded


def test_pacer_never_disables_automatic_collection() -> None:
    was = gc.isenabled()
    p = GcPacer(young=1, middle_every=1, full_every_s=0.0)
    for _ in range(3):
        p.step()
    assert gc.isenabled() == was


def test_watch_when_cycles_freed_then_counted_and_saved_garbage_named_by_type(quiet_gc) -> None:
    gcwatch.install()
    gcwatch.reset()
    cycles = [_cycle() for _ in range(50)]
    del cycles
    gc.collect(0)
    s = gcwatch.stats()["gen0"]
    assert s["collected"] >= 100  # 50 cycles of two nodes each
    assert s["young_max"] >= 100
    assert s["young_avg"] > 0
    with gcwatch.saving_garbage() as saved:
        cycles = [_cycle() for _ in range(30)]
        del cycles
        gc.collect(0)
    top = dict(saved.top())
    assert top.get("Node") == 60
    assert not gc.garbage
    assert gc.get_debug() == 0
    gcwatch.uninstall()


def test_saving_garbage_when_window_fails_then_debug_flags_restored(quiet_gc) -> None:
    try:
        with gcwatch.saving_garbage():
            assert gc.get_debug() & gc.DEBUG_SAVEALL
            raise ValueError("the window was cut short")
    except ValueError:
        pass
    assert gc.get_debug() == 0
    assert not gc.garbage


def test_saving_garbage_when_a_probe_already_runs_then_refused_and_flags_restored(quiet_gc) -> None:
    with gcwatch.saving_garbage():
        with pytest.raises(RuntimeError, match="already running"), gcwatch.saving_garbage():
            pass
        assert gc.get_debug() & gc.DEBUG_SAVEALL  # the first window is still saving
    assert gc.get_debug() == 0
