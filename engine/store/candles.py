"""Market data for research: OHLCV candles and ingestion runs, in their own DuckDB file.

Role: ``<data-dir>/market/candles.duckdb`` holds what ``cockpit data backfill`` fetched. It is a
separate file from the live DB on purpose: a backfill or a campaign reads and writes it while the
engine trades, without the engine's lock, memory limit or audit chain being involved.

Invariants:
- One row per (symbol, interval, open time): the primary key makes a re-run idempotent (``INSERT
  OR IGNORE``); the table is bounded by the calendar (one row per candle), so its index is small.
- Prices and volumes are e8 integers (exact), times UTC microseconds, like the live DB.
- Each page of candles is committed as it arrives: an interrupted run keeps what it fetched.
- Intervals are a fixed grid from the epoch (1w on Monday 00:00 UTC, like Binance).
- Only candles that make sense are stored (``bad_candle``): an open time on the grid, finite
  positive prices, high and low around open and close, a finite volume >= 0, every value within
  what an e8 BIGINT holds. An exchange's bad row is refused, never stored or "repaired".
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from engine.core.fsutil import make_private_dir

INTERVAL_US = {
    "15m": 15 * 60_000_000,
    "30m": 30 * 60_000_000,
    "1h": 3_600_000_000,
    "4h": 4 * 3_600_000_000,
    "1d": 86_400_000_000,
    "1w": 7 * 86_400_000_000,
}
_WEEK_OFFSET_US = 4 * 86_400_000_000  # 1970-01-01 was a Thursday; weeks open on Monday

DDL = (
    "CREATE TABLE IF NOT EXISTS candles (symbol VARCHAR NOT NULL, interval VARCHAR NOT NULL, "
    "open_us BIGINT NOT NULL, open_e8 BIGINT NOT NULL, high_e8 BIGINT NOT NULL, low_e8 BIGINT "
    "NOT NULL, close_e8 BIGINT NOT NULL, volume_e8 BIGINT NOT NULL, ingested_us BIGINT NOT NULL, "
    "PRIMARY KEY (symbol, interval, open_us))",
    "CREATE TABLE IF NOT EXISTS ingestion_runs (run_id VARCHAR NOT NULL, interval VARCHAR NOT "
    "NULL, started_us BIGINT NOT NULL, finished_us BIGINT NOT NULL, symbols VARCHAR NOT NULL, "
    "rows BIGINT NOT NULL, failures BIGINT NOT NULL, status VARCHAR NOT NULL, message VARCHAR "
    "NOT NULL)",
)


def market_db_path(data_dir: Path) -> Path:
    return data_dir / "market" / "candles.duckdb"


def open_market_db(data_dir: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = market_db_path(data_dir)
    if not read_only:
        make_private_dir(path.parent)
    con = duckdb.connect(str(path), read_only=read_only)
    if not read_only:
        path.chmod(0o600)
        for sql in DDL:
            con.execute(sql)
    return con


def align(ts_us: int, interval: str) -> int:
    """The open time of the candle holding ``ts_us`` (on or before it)."""
    step = INTERVAL_US[interval]
    offset = _WEEK_OFFSET_US if interval == "1w" else 0
    return (ts_us - offset) // step * step + offset


MAX_VALUE = 90_000_000_000.0  # e8 integers fit a BIGINT (9.2e18) below ~9.2e10
_COLUMNS = ("open", "high", "low", "close", "volume")


def candle_time_us(row: Any) -> int | None:
    """The open time of a ccxt OHLCV row in µs, or None when it has none."""
    try:
        t = row[0]
    except (TypeError, IndexError, KeyError):
        return None
    return t * 1000 if isinstance(t, int) and not isinstance(t, bool) and t >= 0 else None


def bad_candle(row: Any, interval: str) -> str | None:
    """Why a ccxt OHLCV row ``[ms, open, high, low, close, volume]`` is not a candle to store, in
    words with the values shown literally (repr, cut); None when it is one."""
    t_us = candle_time_us(row)
    if t_us is None:
        return f"open time {_show(row[0] if isinstance(row, list | tuple) and row else row)}"
    if align(t_us, interval) != t_us:
        return f"open time {row[0]}: not on the {interval} grid"
    if len(row) < 6:
        return f"{len(row)} columns: expected time, open, high, low, close, volume"
    values = row[1:6]
    for name, x in zip(_COLUMNS, values, strict=True):
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            return f"{name} {_show(x)}"
        if not 0 <= x <= MAX_VALUE or (name != "volume" and x == 0):
            return f"{name} {_show(x)}: out of range"
    o, h, lo, c = values[:4]
    if not lo <= min(o, c) <= max(o, c) <= h:
        return (
            f"high {_show(h)} and low {_show(lo)} do not hold open {_show(o)} and close {_show(c)}"
        )
    return None


def _show(x: Any) -> str:
    text = repr(x)  # untrusted: shown literally, control characters escaped, and cut
    return text if len(text) <= 40 else text[:37] + "..."


def align_up(ts_us: int, interval: str) -> int:
    start = align(ts_us, interval)
    return start if start == ts_us else start + INTERVAL_US[interval]


def insert_candles(
    con: duckdb.DuckDBPyConnection, symbol: str, interval: str, rows: Iterable[Sequence[Any]]
) -> int:
    """Insert ccxt OHLCV rows ``[ms, o, h, l, c, v]``; returns how many were new."""
    now = time.time_ns() // 1000
    values = [
        (symbol, interval, int(r[0]) * 1000, *(round(float(x) * 1e8) for x in r[1:6]), now)
        for r in rows
    ]
    if not values:
        return 0
    before = _count(con, symbol, interval)
    con.executemany("INSERT OR IGNORE INTO candles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
    return _count(con, symbol, interval) - before


def _count(con: duckdb.DuckDBPyConnection, symbol: str, interval: str) -> int:
    row = con.execute(
        "SELECT count(*) FROM candles WHERE symbol = ? AND interval = ?", [symbol, interval]
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class Gap:
    symbol: str
    interval: str
    start_us: int  # first missing open time
    end_us: int  # last missing open time (inclusive)

    @property
    def candles(self) -> int:
        return (self.end_us - self.start_us) // INTERVAL_US[self.interval] + 1


def gaps(
    con: duckdb.DuckDBPyConnection, symbol: str, interval: str, start_us: int, end_us: int
) -> list[Gap]:
    """Missing candles of ``[start_us, end_us)`` (open times on the grid; only closed candles)."""
    step = INTERVAL_US[interval]
    first = align_up(start_us, interval)
    last = align(end_us, interval) - step  # the newest candle that has closed by end_us
    if last < first:
        return []
    have = [
        int(r[0])
        for r in con.execute(
            "SELECT open_us FROM candles WHERE symbol = ? AND interval = ? AND open_us BETWEEN "
            "? AND ? ORDER BY open_us",
            [symbol, interval, first, last],
        ).fetchall()
    ]
    out, expect = [], first
    for ts in [*have, last + step]:
        if ts > expect:
            out.append(Gap(symbol, interval, expect, ts - step))
        expect = max(expect, ts + step)
    return out


def record_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO ingestion_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run["run_id"],
            run["interval"],
            run["started_us"],
            run["finished_us"],
            ",".join(run["symbols"]),
            run["rows"],
            run["failures"],
            run["status"],
            run["message"],
        ],
    )


def last_runs(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The newest run per interval, with the candle count and newest candle per interval."""
    rows = con.execute(
        "SELECT r.interval, r.finished_us, r.rows, r.failures, r.status, r.message, "
        "(SELECT count(*) FROM candles c WHERE c.interval = r.interval), "
        "(SELECT max(open_us) FROM candles c WHERE c.interval = r.interval) "
        "FROM ingestion_runs r QUALIFY row_number() OVER (PARTITION BY r.interval ORDER BY "
        "r.finished_us DESC) = 1 ORDER BY r.interval"
    ).fetchall()
    keys = ("interval", "finished_us", "rows", "failures", "status", "message", "candles", "newest")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def damaged_message(path: Path, exc: Exception) -> str | None:
    """One line for a DuckDB file that is not a database (damaged, or not ours), else None —
    DuckDB raises the same IOException for that and for a file another process holds."""
    text = str(exc)
    if "not a valid DuckDB database file" not in text and "Could not read enough bytes" not in text:
        return None
    return (
        f"{path} is not a readable DuckDB database (damaged?): move it aside under a new name "
        f"(e.g. `mv {path} {path}.damaged`) and run the command again; nothing was changed"
    )
