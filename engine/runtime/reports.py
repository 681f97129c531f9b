"""Daily report ZIP: one UTC day's orders, fills, PnL, TCA and metadata (seed 000 "Reportes
diarios", seed 002 "Reporte diario").

Role: ``write_report(con, day, out, meta)`` runs on a DB connection — the running engine's writer
thread (``Writer.call`` through the control socket) or a stopped engine's DB under the data-dir
lock — and publishes ``out`` atomically (temp file in the same directory, fsync, ``os.replace``).

Invariants:
- Only the chosen UTC day's rows: orders *created* that day, fills *executed* that day
  (``[00:00, 24:00)`` UTC, µs). PnL replays every fill up to the day's end with the engine's own
  average-cost ``Position`` (so the report and the engine cannot disagree) and reports that day's
  realised part; unrealised is marked at the symbol's last fill price at or before the day's end.
- Deterministic: the same DB gives byte-identical CSV entries (ordered with a unique tie-breaker,
  fixed ZIP entry times); ``metadata.json`` differs only in ``generated_at_us``. Each CSV's sha256 is
  in the metadata so a copy can be checked.
- Amounts are exact decimals (e8 integers scaled by SQL ``DECIMAL(38,8)``), never floats.
- No secret is ever read: the tables written hold none, and the metadata's config hash skips them.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.config.loader import Config
from engine.config.render import config_hash
from engine.core.fsutil import fsync_dir, make_private_dir
from engine.core.units import SCALE
from engine.security.audit import tail_state
from engine.trading.positions import avg_cost_step

DAY_US = 86_400_000_000
REPORT_MEMORY_MB = 1024  # DuckDB spills to disk beyond this; the engine's own limit is restored
CSV_NAMES = ("orders.csv", "fills.csv", "pnl.csv", "tca.csv", "tca_summary.csv")
_ZIP_COMPRESSLEVEL = 1  # ~4x faster than the default 6 for ~15 % more bytes (bench_report.py)


def e8(col: str) -> str:
    """SQL for an exact decimal of an e8 integer column (``DECIMAL(38,0) * 1e-8`` stays exact)."""
    return f"CAST({col} AS DECIMAL(38,0)) * 0.00000001"


def parse_day(text: str, today: dt.date) -> dt.date:
    """``YYYY-MM-DD``, ``today`` or ``yesterday`` (UTC) → a date; ValueError names the value."""
    low = text.strip().lower()
    if low == "today":
        return today
    if low == "yesterday":
        return today - dt.timedelta(days=1)
    try:
        return dt.date.fromisoformat(low)
    except ValueError:
        raise ValueError(
            f"--date {text!r}: expected YYYY-MM-DD, today or yesterday (UTC)"
        ) from None


def utc_today(now_us: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=now_us // DAY_US)


def day_bounds(day: dt.date) -> tuple[int, int]:
    start = (day - dt.date(1970, 1, 1)).days * DAY_US
    return start, start + DAY_US


# Temp tables on the report's connection (dropped after): the latest version of every order the
# day touches (created that day, or filled that day), read once from the log — the ``orders`` view
# aggregates every column of every order ever written (~6x slower at 1M orders) — and the day's
# fills joined to them, which the per-fill TCA and its per-symbol summary both read.
PREPARE_SQL = (
    # latest rev per order: a GROUP BY + join is ~6x faster than a window (QUALIFY) or IN (...)
    "CREATE OR REPLACE TEMP TABLE _report_orders AS SELECT l.* EXCLUDE (rev) FROM orders_log l "
    "JOIN (SELECT client_order_id, max(rev) AS rev FROM orders_log WHERE created_us >= $start "
    "AND created_us < $end GROUP BY 1 UNION ALL SELECT client_order_id, max(rev) FROM orders_log "
    "WHERE created_us < $start AND client_order_id IN (SELECT client_order_id FROM fills WHERE "
    "ts_us >= $start AND ts_us < $end) GROUP BY 1) m USING (client_order_id, rev)",
    "CREATE OR REPLACE TEMP TABLE _report_tca AS SELECT f.ts_us, f.trade_id, f.symbol, f.qty_e8, "
    "f.slippage_bps, f.place_latency_ms, o.arrival_mid_e8, o.filled_qty_e8 / nullif(o.qty_e8, 0) "
    "AS fill_ratio FROM fills f LEFT JOIN _report_orders o USING (client_order_id) "
    "WHERE f.ts_us >= $start AND f.ts_us < $end",
)
CLEANUP_SQL = ("DROP TABLE IF EXISTS _report_tca", "DROP TABLE IF EXISTS _report_orders")
ORDERS_SQL = (
    "SELECT client_order_id, decision_id, venue_order_id, symbol, side, order_type, "
    f"{e8('qty_e8')} AS qty, {e8('limit_price_e8')} AS limit_price, "
    f"{e8('filled_qty_e8')} AS filled_qty, {e8('avg_price_e8')} AS avg_price, status, reason, "
    f"strategy, model_id, routed, {e8('arrival_mid_e8')} AS arrival_mid, created_us, "
    "submitted_us, acked_us, updated_us FROM _report_orders WHERE created_us >= $start AND "
    "created_us < $end ORDER BY created_us, client_order_id"
)
FILLS_SQL = (
    "SELECT ts_us, trade_id, client_order_id, venue_order_id, symbol, side, "
    f"{e8('qty_e8')} AS qty, {e8('price_e8')} AS price, {e8('fee_e8')} AS fee_quote, "
    f"{e8('fee_base_e8')} AS fee_base, liquidity FROM fills WHERE ts_us >= $start AND "
    "ts_us < $end ORDER BY ts_us, trade_id"
)
# per fill, keyed by trade_id (side, qty and price are in fills.csv: not repeated)
TCA_SQL = (
    f"SELECT ts_us, trade_id, symbol, {e8('arrival_mid_e8')} AS arrival_mid, "
    "round(slippage_bps, 4) AS slippage_bps, round(place_latency_ms, 3) AS place_latency_ms, "
    "round(fill_ratio, 6) AS fill_ratio FROM _report_tca ORDER BY ts_us, trade_id"
)
TCA_SUMMARY_SQL = (
    f"SELECT symbol, count(*) AS fills, {e8('sum(CAST(qty_e8 AS HUGEINT))')} AS qty, "
    "round(sum(slippage_bps * qty_e8) / nullif(sum(qty_e8), 0), 4) AS slippage_bps_qty_weighted, "
    "round(quantile_disc(slippage_bps, 0.5), 4) AS slippage_bps_p50, "
    "round(quantile_disc(slippage_bps, 0.95), 4) AS slippage_bps_p95, "
    "round(quantile_disc(place_latency_ms, 0.5), 3) AS place_latency_ms_p50, "
    "round(quantile_disc(place_latency_ms, 0.95), 3) AS place_latency_ms_p95, "
    "round(avg(fill_ratio), 6) AS fill_ratio_mean FROM _report_tca GROUP BY symbol ORDER BY symbol"
)
PNL_COLUMNS = (
    "date",
    "symbol",
    "fills",
    "position_qty",
    "avg_price",
    "mark_price",
    "realized_pnl",
    "unrealized_pnl",
    "fees_quote",
    "fees_base",
    "turnover",
)


def fmt_e8(value: int) -> str:
    """An e8 integer as an exact decimal string (``-0.00000001``), the same text SQL writes."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), SCALE)
    return f"{sign}{whole}.{frac:08d}"


def _pnl_rows(con: Any, day: dt.date, start: int, end: int) -> list[list[str]]:
    """Replay every fill up to the day's end with the engine's average-cost step."""
    reader = con.sql(
        "SELECT symbol, side = 'buy', qty_e8, price_e8, fee_e8, coalesce(fee_base_e8, 0), ts_us "
        "FROM fills WHERE ts_us < $end ORDER BY ts_us, trade_id",
        params={"end": end},
    ).to_arrow_reader(200_000)
    book: dict[str, list[int]] = {}  # symbol -> qty, avg, last price
    day_stats: dict[str, list[int]] = {}  # fills, realised, fees, fees_base, turnover
    step = avg_cost_step
    for batch in reader:  # Arrow columns -> lists: ~5x faster than fetching row tuples
        for sym, buy, qty, px, fee, fee_base, ts in zip(
            *(c.to_pylist() for c in batch.columns), strict=True
        ):
            b = book.get(sym) or book.setdefault(sym, [0, 0, 0])
            b[0], b[1], realized = step(b[0], b[1], qty if buy else -qty, px)
            b[2] = px
            if ts >= start:
                st = day_stats.get(sym) or day_stats.setdefault(sym, [0, 0, 0, 0, 0])
                st[0] += 1
                st[1] += realized
                st[2] += fee
                st[3] += fee_base
                st[4] += qty * px // SCALE
    rows = []
    for sym in sorted(set(day_stats) | {s for s, b in book.items() if b[0]}):
        qty, avg, mark = book[sym]
        n, realized, fees, fees_base, turnover = day_stats.get(sym, [0, 0, 0, 0, 0])
        unrealized = (mark - avg) * qty // SCALE if qty and mark > 0 else 0  # Position's rule
        values = (qty, avg, mark, realized, unrealized, fees, fees_base, turnover)
        rows.append([day.isoformat(), sym, str(n), *map(fmt_e8, values)])
    return rows


def prepare_day(con: Any, bounds: dict[str, int]) -> None:
    """The day's temp tables (``_report_orders``, ``_report_tca``); dropped by ``report_settings``."""
    has_ack = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'orders_log' "
        "AND column_name = 'acked_us'"
    ).fetchone()[0]
    for sql in PREPARE_SQL:
        if not has_ack:  # a DB of an older build, read without migrating it: no ack times yet
            sql = sql.replace(
                "SELECT l.* EXCLUDE (rev)", "SELECT l.* EXCLUDE (rev), NULL::BIGINT AS acked_us"
            )
        con.execute(sql, bounds)


def copy_csv(con: Any, sql: str, path: Path, bounds: dict[str, Any]) -> int:
    # the target is a bound parameter, never spliced into the SQL: a path may hold any character
    params = {k: v for k, v in bounds.items() if f"${k}" in sql}  # DuckDB refuses unused ones
    row = con.execute(
        f"COPY ({sql}) TO $path (HEADER, DELIMITER ',')", {**params, "path": str(path)}
    ).fetchone()
    return int(row[0])


def _write_pnl(con: Any, day: dt.date, bounds: dict[str, int], path: Path) -> int:
    rows = _pnl_rows(con, day, bounds["start"], bounds["end"])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(PNL_COLUMNS)
        w.writerows(rows)
    return len(rows)


def model_summary(con: Any) -> dict[str, Any]:
    """Model ids by role and the canary share, as the engine last persisted them."""
    rows = con.execute("SELECT model_id, role FROM models ORDER BY model_id").fetchall()
    row = con.execute("SELECT value FROM engine_state WHERE key = 'models'").fetchone()
    state = json.loads(row[0]) if row else {}
    out = {"models": {str(mid): str(role) for mid, role in rows}, "pinned": state.get("pinned")}
    if state.get("canary_share") is not None:  # else the profile's share (report_meta) stands
        out["canary_share"] = state["canary_share"]
    return out


@contextlib.contextmanager
def report_settings(con: Any) -> Iterator[None]:
    """Room for a report on the engine's lean connection (64 MB, one thread), restored after:
    the writer thread is the one running it, so nothing else uses the connection meanwhile."""
    old = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads')"
    ).fetchone()
    con.execute(f"SET memory_limit='{REPORT_MEMORY_MB}MB'")
    con.execute(f"SET threads={max(2, os.cpu_count() or 1)}")
    try:
        yield
    finally:
        for sql in CLEANUP_SQL:
            con.execute(sql)
        con.execute(f"SET memory_limit='{old[0]}'")
        con.execute(f"SET threads={int(old[1])}")


def publish(part: Path, out: Path) -> None:
    """Make the finished temp file ``part`` the file ``out``, durably (fsync, rename, dir fsync)."""
    with part.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(part, out)
    fsync_dir(out.parent)


def write_report(con: Any, day: dt.date, out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the day's report ZIP to ``out`` atomically; returns its path and row counts."""
    make_private_dir(out.parent)
    part = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with report_settings(con), tempfile.TemporaryDirectory(dir=out.parent, prefix=".r-") as tmp:
            counts, meta_full = _build(con, day, Path(tmp), part, meta)
        publish(part, out)
    finally:
        part.unlink(missing_ok=True)
    return {"report": str(out), "date": day.isoformat(), "rows": counts, "meta": meta_full}


def _build(
    con: Any, day: dt.date, tmp: Path, part: Path, meta: dict[str, Any]
) -> tuple[dict[str, int], dict[str, Any]]:
    """DuckDB writes each CSV (its own threads, no GIL) while one thread zips and hashes the one
    before: the two overlap instead of adding up."""
    start, end = day_bounds(day)
    bounds = {"start": start, "end": end}
    steps: tuple[tuple[str, Callable[[Path], int]], ...] = (
        ("orders.csv", lambda p: copy_csv(con, ORDERS_SQL, p, bounds)),
        ("fills.csv", lambda p: copy_csv(con, FILLS_SQL, p, bounds)),
        ("tca.csv", lambda p: copy_csv(con, TCA_SQL, p, bounds)),
        ("tca_summary.csv", lambda p: copy_csv(con, TCA_SUMMARY_SQL, p, bounds)),
    )
    counts: dict[str, int] = {}
    prepare_day(con, bounds)
    # the PnL replay is Python (holds the GIL) while DuckDB and zlib release it: run it alongside
    # on a cursor of its own
    pnl_cur = con.cursor()
    with (
        ThreadPoolExecutor(1, thread_name_prefix="report-pnl") as pool,
        _Zipper(part, day) as zipper,
    ):
        pnl = pool.submit(_write_pnl, pnl_cur, day, bounds, tmp / "pnl.csv")
        for name, make in steps:
            counts[name] = make(tmp / name)
            zipper.add(name, tmp / name)
        counts["pnl.csv"] = pnl.result()
        zipper.add("pnl.csv", tmp / "pnl.csv")
        pnl_cur.close()
        digests = zipper.digests()
        seq, head = tail_state(con)
        full = {
            **meta,
            **model_summary(con),
            "date": day.isoformat(),
            "window_us": [start, end],
            "audit_head": {"seq": seq, "hash": head},
            "rows": counts,
            "sha256": digests,
            "amounts": "exact decimals (e8 integers / 1e8); times are UTC microseconds",
        }
        zipper.add_text("metadata.json", json.dumps(full, indent=2, sort_keys=True) + "\n")
    return counts, full


class _Zipper:
    """Appends files to one ZIP on a background thread, in the order given, hashing each."""

    def __init__(self, path: Path, day: dt.date) -> None:
        self._stamp = (day.year, day.month, day.day, 0, 0, 0)  # fixed: same DB, same bytes
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="report-zip")
        self._pending: list[tuple[str, Future[str]]] = []

    def __enter__(self) -> _Zipper:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)
        self._zip.close()

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        # zipfile takes the level from a ZipInfo it is given (``compress_level`` from 3.13 on)
        setattr(
            info,
            "compress_level" if hasattr(info, "compress_level") else "_compresslevel",
            _ZIP_COMPRESSLEVEL,
        )
        return info

    def _copy(self, name: str, path: Path) -> str:
        h = hashlib.sha256()
        with path.open("rb") as src, self._zip.open(self._info(name), "w") as dst:
            while chunk := src.read(1 << 22):
                h.update(chunk)
                dst.write(chunk)
        path.unlink()  # the temp copy is no longer needed: keep disk use to one CSV at a time
        return h.hexdigest()

    def add(self, name: str, path: Path) -> None:
        self._pending.append((name, self._pool.submit(self._copy, name, path)))

    def digests(self) -> dict[str, str]:
        return {name: fut.result() for name, fut in self._pending}

    def add_text(self, name: str, text: str) -> None:
        self.digests()  # every file before it is in
        self._zip.writestr(self._info(name), text)


def report_target(data_dir: Path, out: str | None, default: Path) -> Path:
    """Where a report or export may be written: ``<data-dir>/reports/`` (a same-day rerun
    replaces it), or a new file outside the data dir. Never over the DB, its WAL, the audit key
    or head, a backup: anything else in the data dir is refused, as is an existing file outside."""
    if not out:
        return default
    raw = Path(out)
    if not raw.is_absolute():
        raise ValueError(f"--out {out!r}: must be an absolute path")
    target = Path(os.path.realpath(raw))
    reports = Path(os.path.realpath(data_dir / "reports"))
    if target.is_relative_to(reports) and target != reports:
        return target
    if target.is_relative_to(Path(os.path.realpath(data_dir))):
        raise ValueError(
            f"--out {out}: inside the data dir {data_dir} only reports/ may be written "
            "(it holds the live database, its WAL, the audit key and head)"
        )
    if target.exists() or raw.is_symlink():
        raise ValueError(f"--out {out}: file exists; a report never replaces a file there")
    return target


def default_report_path(data_dir: Path, day: dt.date) -> Path:
    return data_dir / "reports" / f"report-{day.isoformat()}.zip"


def versions() -> dict[str, str]:
    """Installed versions of the program and what it trades through (no import: ccxt is slow)."""
    out = {"python": platform.python_version()}
    for dist in ("trading-cockpit", "duckdb", "ccxt"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def report_meta(cfg: Config, venue: str, generated_at_us: int) -> dict[str, Any]:
    """The metadata fields the DB does not hold: profile, venue, versions, config hash."""
    return {
        "profile": cfg.name,
        "kind": cfg.kind,
        "venue": venue,
        "versions": versions(),
        "config_hash": config_hash(cfg),
        "canary_share": cfg.models.canary_share,
        "generated_at_us": generated_at_us,
    }
