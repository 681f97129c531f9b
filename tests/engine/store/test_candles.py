"""The market DB: interval grid, idempotent inserts, and gap ranges on a real DuckDB file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.store.candles import INTERVAL_US, align, gaps, insert_candles, open_market_db

H = INTERVAL_US["1h"]
T0 = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp() * 1e6)  # a Monday 00:00 UTC


def _row(open_us: int) -> list[float]:
    return [open_us // 1000, 100.0, 101.5, 99.25, 100.75, 12.5]


def test_align_when_week_then_monday_and_hours_on_grid() -> None:
    assert align(T0 + 3 * 86_400_000_000 + 5, "1w") == T0
    assert align(T0 + H + 7, "1h") == T0 + H
    assert align(T0 + 7 * H + 1, "4h") == T0 + 4 * H


def test_insert_when_rerun_then_idempotent_and_exact(tmp_path: Path) -> None:
    con = open_market_db(tmp_path)
    rows = [_row(T0 + i * H) for i in range(5)]
    assert insert_candles(con, "BTC/USDT", "1h", rows) == 5
    assert insert_candles(con, "BTC/USDT", "1h", rows) == 0  # the same candles again: nothing new
    got = con.execute(
        "SELECT open_e8, high_e8, low_e8, close_e8, volume_e8 FROM candles"
    ).fetchone()
    assert got == (10_000_000_000, 10_150_000_000, 9_925_000_000, 10_075_000_000, 1_250_000_000)
    assert (tmp_path / "market" / "candles.duckdb").stat().st_mode & 0o777 == 0o600


def test_gaps_when_holes_then_ranges_and_counts(tmp_path: Path) -> None:
    con = open_market_db(tmp_path)
    have = [0, 1, 4, 5, 9]  # missing 2-3, 6-8, and 10-11 at the end
    insert_candles(con, "ETH/USDT", "1h", [_row(T0 + i * H) for i in have])
    now = T0 + 12 * H + 5  # candles up to 11 have closed; 12 is still open
    found = gaps(con, "ETH/USDT", "1h", T0, now)
    assert [(g.start_us, g.end_us, g.candles) for g in found] == [
        (T0 + 2 * H, T0 + 3 * H, 2),
        (T0 + 6 * H, T0 + 8 * H, 3),
        (T0 + 10 * H, T0 + 11 * H, 2),
    ]
    assert gaps(con, "SOL/USDT", "1h", T0, now)[0].candles == 12  # nothing held: one range


@pytest.mark.parametrize("interval", list(INTERVAL_US))
def test_gaps_when_complete_then_none(tmp_path: Path, interval: str) -> None:
    con = open_market_db(tmp_path)
    step = INTERVAL_US[interval]
    start = align(T0, interval)
    insert_candles(con, "BTC/USDT", interval, [_row(start + i * step) for i in range(6)])
    assert gaps(con, "BTC/USDT", interval, start, start + 6 * step) == []
