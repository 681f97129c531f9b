"""``cockpit report`` and ``cockpit export regulatory``: the day's report ZIP and regulatory CSV.

Engine running → the request goes over its control socket (the engine reads its DB on a cursor of
its own, so trading never waits). Engine stopped → the data-dir lock is taken (no engine can start
meanwhile) and the same code runs here, on a read-only connection. Same files either way.

Exit codes: 0 written; 2 bad input (date, path, no DB); 3 the engine holds the lock but its socket
does not answer; 4 storage problem (damaged DB, full disk).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from engine.config.loader import resolve_data_dir
from engine.runtime.control import NotRunning, call

COMMANDS = ("report", "export")


def add_parsers(sub: Any, common: Any) -> None:
    r = sub.add_parser("report", help="the day's report ZIP (orders, fills, pnl, tca, metadata)")
    common(r)
    r.add_argument("--date", default="today", help="YYYY-MM-DD, today or yesterday (UTC)")
    r.add_argument("--out", help="ZIP file (default <data-dir>/reports/report-DATE.zip)")
    r.add_argument("--json", action="store_true")
    e = sub.add_parser("export", help="exports")
    esub = e.add_subparsers(dest="export_cmd", required=True)
    g = esub.add_parser("regulatory", help="the day's order and execution records as CSV")
    common(g)
    g.add_argument("--date", default="today", help="YYYY-MM-DD, today or yesterday (UTC)")
    g.add_argument("--out", help="CSV file (default <data-dir>/reports/regulatory-DATE.csv)")
    g.add_argument("--json", action="store_true")


def _err(msg: str) -> None:
    print(f"cockpit: {msg}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    kind = "report" if args.cmd == "report" else "regulatory"
    out = str(Path(args.out).absolute()) if args.out else None
    request = {"date": args.date, "out": out}
    try:
        result = call(data_dir, kind, request)
    except NotRunning:
        result = None
    except RuntimeError as exc:  # the engine answered with an error line
        _err(str(exc))
        return 2
    if result is None:
        try:
            result = _offline(args, data_dir, kind, request)
        except SystemExit as exc:
            return int(exc.code or 0)
    _print(kind, result, args.json)
    return 0


def _offline(args: argparse.Namespace, data_dir: Path, kind: str, req: dict[str, Any]) -> Any:
    from engine.config.loader import load_config
    from engine.runtime.boot import recorded_profile
    from engine.runtime.daily import plan, produce
    from engine.store.lockfile import AlreadyRunning, acquire
    from engine.store.writer import StoreError, open_db

    db = data_dir / "cockpit.duckdb"
    now_us = time.time_ns() // 1000
    try:
        request = plan(kind, data_dir, req["date"], req["out"], now_us)
    except ValueError as exc:
        _err(str(exc))
        raise SystemExit(2) from None
    if not db.exists():
        _err(f"{db}: no database here (wrong --data-dir?)")
        raise SystemExit(2)
    cfg = load_config(args.profile or recorded_profile(data_dir))
    try:
        lock = acquire(data_dir)
    except AlreadyRunning as exc:
        _err(f"{exc}, but its control socket does not answer ({data_dir / 'control.sock'})")
        raise SystemExit(3) from None
    try:
        con = open_db(db, read_only=True)
        try:
            return produce(con, request, cfg, _recorded_venue(con, cfg.venue), now_us)
        finally:
            con.close()
    except StoreError as exc:
        _err(str(exc))
        raise SystemExit(4) from None
    finally:
        lock.release()


def _recorded_venue(con: Any, fallback: str) -> str:
    row = con.execute("SELECT value FROM engine_state WHERE key = 'profile_venue'").fetchone()
    return str(row[0]) if row else fallback


def _print(kind: str, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return
    if kind == "report":
        rows = ", ".join(f"{k} {v}" for k, v in result["rows"].items())
        print(f"report written: {result['report']} ({result['date']} UTC; rows: {rows})")
    else:
        print(
            f"regulatory export written: {result['export']} ({result['date']} UTC; "
            f"{result['rows']} records)"
        )
