"""A full disk in the middle of a write (a real, small tmpfs): ``os.write`` then writes what fits
and returns the count. Every writer must raise instead of keeping a cut file: the old file stays
whole (atomic replace), and an append-only file is cut back so no torn record is left behind."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.core.fsutil import append_all, write_private_atomic
from engine.runtime.config_record import append_history, read_history
from engine.store.intent_journal import IntentJournal, quarantine, replay
from tests.conftest import fill_disk

INTENT = ("ck-1-{n}.0", "ck-1-{n}", "BTC/USDT", "buy", "market", 1000, 0, 1)


def _intent(n: int) -> tuple[object, ...]:
    return tuple(f.format(n=n) if isinstance(f, str) else f for f in INTENT)


@pytest.fixture
def full(tmpfs: Callable[..., Path]) -> Path:
    return tmpfs("256k")


def test_atomic_write_when_it_does_not_fit_then_raises_and_old_file_whole(full: Path) -> None:
    head = full / "head.json"
    head.write_bytes(b'{"seq": 7}\n')
    fill_disk(full, leave=16 * 1024)  # room for part of it: os.write returns a short count
    with pytest.raises(OSError, match="No space left"):
        write_private_atomic(head, b"x" * 100_000)
    assert head.read_bytes() == b'{"seq": 7}\n'  # was: a 16 KiB cut file renamed over it
    assert sorted(p.name for p in full.iterdir()) == ["filler", "head.json"]  # no temp left


def test_append_when_it_does_not_fit_then_raises_and_file_cut_back(full: Path) -> None:
    log = full / "history.jsonl"
    log.write_bytes(b'{"a": 1}\n')
    fill_disk(full, leave=8 * 1024)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        with pytest.raises(OSError, match="No space left"):
            append_all(fd, b"y" * 50_000)
    finally:
        os.close(fd)
    assert log.read_bytes() == b'{"a": 1}\n'


def test_config_history_when_disk_fills_then_no_torn_line_swallows_the_next(full: Path) -> None:
    d = full / "d"
    append_history(d, {"key": "risk.max_daily_loss_usd", "n": 1})
    filler = fill_disk(full, leave=8 * 1024)
    with pytest.raises(OSError, match="No space left"):
        append_history(d, {"key": "x", "value": "v" * 40_000})
    filler.unlink()
    append_history(d, {"key": "risk.max_daily_loss_usd", "n": 3})
    assert [e.get("n") for e in read_history(d)] == [1, 3]  # was: [1] (3 glued to a cut line)


def test_intent_journal_when_disk_fills_then_raises_and_no_torn_record(full: Path) -> None:
    path = full / "journal" / "intents.bin"
    j = IntentJournal(path)
    j.append_durable(_intent(1))
    before = path.read_bytes()
    filler = fill_disk(full, leave=4 * 1024)
    with pytest.raises(OSError, match="No space left"):
        j.append_many_durable([_intent(n) for n in range(2, 400)])  # ~24 KiB: only part fits
    assert path.read_bytes() == before  # was: the part that fit, fsynced, and no error
    filler.unlink()
    j.append_durable(_intent(400))
    j.close()
    assert quarantine(path) == (None, 0, "")  # nothing to move aside at the next start
    assert [r[0] for r in replay(path)] == ["ck-1-1.0", "ck-1-400.0"]
