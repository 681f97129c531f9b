#!/usr/bin/env python3
"""Benchmark (PERFORMANCE.md workload 4): the daily report ZIP from 1,000,000 fills. Goal <= 3 s.

Builds a real DuckDB file with the real schema (migrations) holding one UTC day of ``--fills``
fills (one market order each, 20 symbols, buys and sells so PnL realises, orders with three
versions in ``orders_log`` like the engine writes them) plus a smaller previous day, then times
``engine.runtime.reports.write_report`` for that day through a fresh connection, as
``cockpit report`` does on a stopped engine. Prints one JSON line.

    .venv/bin/python scripts/bench_report.py --fills 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.runtime.reports import day_bounds, write_report  # noqa: E402
from engine.store.writer import migrate, open_db  # noqa: E402

DAY = dt.date(2026, 12, 3)


def build_db(path: Path, fills: int) -> None:
    con = open_db(path, memory_limit_mb=2048)
    migrate(con, 1)
    con.execute("SET threads=2")
    start, _ = day_bounds(DAY)
    prev = fills // 10  # a previous day: PnL must replay it, the report must skip its rows
    total = fills + prev
    # ts: previous-day rows first, then the day's rows spread over 24 h
    ts = (
        f"CASE WHEN i < {prev} THEN {start} - 86400000000 + i * (86400000000 // {prev}) "
        f"ELSE {start} + (i - {prev}) * (86400000000 // {fills}) END"
    )
    con.execute(
        f"CREATE TEMP TABLE g AS SELECT i, {ts} AS ts, 'S' || lpad(CAST(i % 20 AS VARCHAR), 2, "
        "'0') || '/USDT' AS sym, CASE WHEN (i // 20) % 3 = 2 THEN 'sell' ELSE 'buy' END AS side, "
        "100000 + (i % 997) * 1000 AS qty, 5000000000000 + ((i * 7919) % 200000) * 100000 AS px "
        f"FROM range({total}) t(i)"
    )
    for rev, status in enumerate(("pending", "submitted", "filled"), start=1):
        con.execute(
            "INSERT INTO orders_log BY NAME SELECT 'ck-1-' || i || '.0' AS client_order_id, "
            "'ck-1-' || i AS decision_id, CASE WHEN ? = 'pending' THEN NULL ELSE CAST(i AS "
            "VARCHAR) END AS venue_order_id, sym AS symbol, side, 'market' AS order_type, "
            "qty AS qty_e8, 0 AS limit_price_e8, CASE WHEN ? = 'filled' THEN qty ELSE 0 END AS "
            "filled_qty_e8, CASE WHEN ? = 'filled' THEN px ELSE 0 END AS avg_price_e8, ? AS "
            "status, '' AS reason, 'trend' AS strategy, 'trend_v1' AS model_id, 'champion' AS "
            "routed, px - 50000 AS arrival_mid_e8, ts - 2000 AS created_us, ts - 1500 AS "
            "submitted_us, ts AS updated_us, CASE WHEN ? = 'pending' THEN NULL ELSE ts - 500 END "
            "AS acked_us, ? AS rev FROM g",
            [status, status, status, status, status, rev],
        )
    con.execute(
        "INSERT INTO fills BY NAME SELECT 'T' || i AS trade_id, 'ck-1-' || i || '.0' AS "
        "client_order_id, CAST(i AS VARCHAR) AS venue_order_id, sym AS symbol, side, qty AS "
        "qty_e8, px AS price_e8, qty * px // 100000000 // 1000 AS fee_e8, 'taker' AS liquidity, "
        "ts AS ts_us, 0.1 * (i % 17) AS slippage_bps, 1.5 + (i % 13) * 0.25 AS place_latency_ms, "
        "0 AS fee_base_e8 FROM g"
    )
    con.execute("CHECKPOINT")
    con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fills", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        db = Path(tmp) / "cockpit.duckdb"
        t0 = time.perf_counter()
        build_db(db, args.fills)
        build_s = time.perf_counter() - t0
        out = Path(tmp) / "reports" / "r.zip"
        t0 = time.perf_counter()
        con = open_db(db, read_only=True)
        res = write_report(con, DAY, out, {"profile": "bench"})
        con.close()
        seconds = time.perf_counter() - t0
        with zipfile.ZipFile(out) as z:
            entries = {i.filename: i.file_size for i in z.infolist()}
        print(
            json.dumps(
                {
                    "bench": "report",
                    "fills": args.fills,
                    "seconds": round(seconds, 3),
                    "goal_seconds": 3.0,
                    "rows": res["rows"],
                    "zip_bytes": out.stat().st_size,
                    "csv_bytes": sum(v for k, v in entries.items() if k.endswith(".csv")),
                    "build_seconds": round(build_s, 1),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
