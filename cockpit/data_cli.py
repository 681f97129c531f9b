"""``cockpit data backfill|gaps|status``: market data for research (seed 003).

- ``backfill --interval I [--since YYYY-MM-DD] [--symbols S ...] [--venue-url URL]``: fetch what
  ``<data-dir>/market/candles.duckdb`` is missing through ccxt (offline profiles: the loopback
  venue simulator, started for the run unless ``--venue-url`` names one). A progress bar on a
  terminal, plain lines when piped. Exit 0 done; 1 the exchange stayed down beyond the retry
  budget (what was fetched is kept; a re-run resumes), or sent rows that are not candles (text,
  NaN, negative prices, high below close...: refused, named, left missing for the next run); 2
  bad input.
- ``gaps --interval I|all --days N [--json]``: missing candles per symbol and interval with their
  ranges; exit 0 none, 1 gaps found, 2 bad input.
- ``status [--json]``: the last run per interval (time, rows, failures, status) and what is held.

The market DB is not the live DB: these commands run whether or not the engine trades. DuckDB lets
one process hold the file: while a backfill runs, the others exit 3 with one line saying so. DuckDB lets
one process hold the file: while a backfill runs, the others exit 3 with one line saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from engine.config.loader import Config, load_config, resolve_data_dir
from engine.store.candles import INTERVAL_US

EARLIEST = dt.date(2010, 1, 1)  # before any exchange's first candle
MAX_DAYS = 5000  # --days: ~13.7 years, back to before EARLIEST
DEFAULT_DAYS = {"15m": 7, "30m": 14, "1h": 30, "4h": 90, "1d": 365, "1w": 3 * 365}


class Busy(Exception):
    """The market DB is held by another process: exit 3, like a command that finds the engine."""


def _err(msg: str) -> None:
    print(f"cockpit: {msg}", file=sys.stderr)


def add_parsers(sub: Any, common: Any) -> None:
    d = sub.add_parser("data", help="market data: backfill, gaps, status")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    b = dsub.add_parser("backfill", help="fetch missing OHLCV candles through ccxt")
    common(b)
    b.add_argument("--interval", required=True, choices=tuple(INTERVAL_US))
    b.add_argument("--since", help="YYYY-MM-DD (UTC); default a window per interval")
    b.add_argument("--symbols", nargs="+", help="default: the profile's symbols")
    b.add_argument("--venue-url", help="REST base URL of the exchange (default: the profile's)")
    b.add_argument("--json", action="store_true")
    g = dsub.add_parser("gaps", help="missing candles per symbol and interval; exit 1 if any")
    common(g)
    g.add_argument("--interval", required=True, choices=(*INTERVAL_US, "all"))
    g.add_argument("--days", type=int, required=True)
    g.add_argument("--symbols", nargs="+")
    g.add_argument("--json", action="store_true")
    c = dsub.add_parser("curate", help="features into a new versioned Parquet dataset")
    common(c)
    c.add_argument("--interval", required=True, choices=(*INTERVAL_US, "all"))
    c.add_argument("--tag", default="curated", help="version tag (a-z 0-9 - _)")
    c.add_argument("--json", action="store_true")
    v = dsub.add_parser("versions", help="curated versions; archive candidates marked")
    common(v)
    v.add_argument("--json", action="store_true")
    s = dsub.add_parser("status", help="last ingestion run per interval")
    common(s)
    s.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except Busy as exc:
        _err(str(exc))
        return 3


def _run(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    cfg = load_config(args.profile)
    if args.data_cmd == "status":
        return _status(data_dir, args.json)
    if args.data_cmd == "gaps":
        return _gaps(data_dir, cfg, args)
    if args.data_cmd == "curate":
        return _curate(data_dir, args)
    if args.data_cmd == "versions":
        return _versions(data_dir, args.json)
    return _backfill(data_dir, cfg, args)


def _since_us(text: str | None, interval: str, now_us: int) -> int:
    if text is None:
        return now_us - DEFAULT_DAYS[interval] * 86_400_000_000
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: expected YYYY-MM-DD (UTC)") from None
    if day < EARLIEST:
        raise ValueError(f"--since {text}: before {EARLIEST}; no exchange has candles that old")
    since = (day - dt.date(1970, 1, 1)).days * 86_400_000_000
    if since >= now_us:
        raise ValueError(f"--since {text}: in the future")
    return since


def _open_db(data_dir: Path, read_only: bool = False) -> Any:
    import duckdb

    from engine.store.candles import damaged_message, market_db_path, open_market_db

    if read_only and not market_db_path(data_dir).exists():
        return None
    try:
        return open_market_db(data_dir, read_only=read_only)
    except duckdb.IOException as exc:  # a running backfill holds it (DuckDB: one process)
        damaged = damaged_message(market_db_path(data_dir), exc)
        if damaged is not None:
            raise Busy(damaged) from None
        first = (str(exc).splitlines() or [""])[0]
        raise Busy(
            f"{market_db_path(data_dir)}: in use by another process, e.g. a running backfill "
            f"({first}); try again when it ends"
        ) from None


def _backfill(data_dir: Path, cfg: Config, args: argparse.Namespace) -> int:
    from engine.venues.backfill import BackfillFailed, BackfillStats

    now_us = time.time_ns() // 1000
    try:
        since = _since_us(args.since, args.interval, now_us)
    except ValueError as exc:
        _err(str(exc))
        return 2
    con = _open_db(data_dir)
    symbols = list(args.symbols or cfg.symbols)
    run_id = uuid.uuid4().hex[:12]
    status, message, stats = "ok", "", BackfillStats()
    try:
        asyncio.run(_fetch(cfg, data_dir, con, args, symbols, since, now_us, stats))
    except BackfillFailed as exc:
        status, message = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback (unknown symbol, DNS)
        status, message = "failed", " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    if status == "ok" and stats.bad_data():
        status, message = "bad_data", stats.bad_data()
    return _finish(data_dir, con, args, run_id, symbols, now_us, status, message, stats)


def _finish(
    data_dir: Path,
    con: Any,
    args: argparse.Namespace,
    run_id: str,
    symbols: list[str],
    started_us: int,
    status: str,
    message: str,
    stats: Any,
) -> int:
    from engine.store.candles import record_run

    rows, failures = stats.rows, stats.failures
    record_run(con, {"run_id": run_id, "interval": args.interval, "started_us": started_us,
                     "finished_us": time.time_ns() // 1000, "symbols": symbols, "rows": rows,
                     "failures": sum(failures.values()), "status": status, "message": message})  # fmt: skip
    con.close()
    _write_metrics(data_dir, args.interval, failures, rows, status == "ok")
    out = {"status": status, "interval": args.interval, "rows": rows, "failures": failures,
           "message": message, "run_id": run_id, "missing": stats.missing}  # fmt: skip
    if args.json:
        print(json.dumps(out, sort_keys=True))
    elif status == "ok":
        print(f"backfill {args.interval}: {rows} new candles for {', '.join(symbols)}")
        if stats.missing:
            print(f"{stats.missing} candles the exchange did not serve stay missing: "
                  f"`cockpit data gaps --interval {args.interval}` lists them; a later run "
                  "fetches them once the exchange has them")  # fmt: skip
    else:
        _err(f"backfill {args.interval} stopped: {message}")
    return 0 if status == "ok" else 1


async def _fetch(
    cfg: Config, data_dir: Path, con: Any, args: argparse.Namespace, symbols: list[str],
    since: int, now_us: int, stats: Any,
) -> None:  # fmt: skip
    from engine.venues.backfill import Backfill
    from engine.venues.market_source import market_exchange

    async with market_exchange(cfg, data_dir, args.venue_url) as ex:
        with _progress(args.json) as progress:
            await Backfill(ex, con, args.interval, progress=progress, stats=stats).run(
                symbols, since, now_us
            )


class _progress:
    """A rich bar per symbol on a terminal; one plain line per symbol when piped (or --json)."""

    def __init__(self, quiet: bool) -> None:
        self.tty = sys.stdout.isatty() and not quiet
        self.quiet = quiet
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        if self.tty:
            from rich.progress import Progress

            self.bar = Progress()
            self.bar.start()
        return self.update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, symbol: str, done: int, total: int) -> None:
        if self.bar is not None:
            if symbol not in self.tasks:
                self.tasks[symbol] = self.bar.add_task(symbol, total=max(total, 1))
            self.bar.update(self.tasks[symbol], completed=done if total else 1)
        elif not self.quiet and done == total and symbol not in self.tasks:
            self.tasks[symbol] = None  # one line per symbol
            print(f"{symbol}: {total} candles fetched", flush=True)


def _write_metrics(
    data_dir: Path, interval: str, failures: dict[str, int], rows: int, ok: bool
) -> None:
    from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile

    reg = CollectorRegistry()
    fail = Counter("ingestion_failure", "Backfill failures by reason (this run)",
                   ["interval", "reason"], registry=reg)  # fmt: skip
    for reason, n in failures.items():
        fail.labels(interval, reason).inc(n)
    Counter("ingestion_rows", "Candles stored (this run)", ["interval"], registry=reg).labels(
        interval
    ).inc(rows)
    if ok:
        Gauge("ingestion_last_success_timestamp_seconds", "Last successful backfill",
              ["interval"], registry=reg).labels(interval).set(time.time())  # fmt: skip
    path = data_dir / "metrics" / f"ingestion_{interval}.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), reg)
    path.chmod(0o644)  # the textfile is read by node_exporter's collector, on purpose


def _gaps(data_dir: Path, cfg: Config, args: argparse.Namespace) -> int:
    from engine.store.candles import gaps

    if not 0 < args.days <= MAX_DAYS:
        _err(f"--days {args.days}: between 1 and {MAX_DAYS}")
        return 2
    now_us = time.time_ns() // 1000
    since = now_us - args.days * 86_400_000_000
    intervals = list(INTERVAL_US) if args.interval == "all" else [args.interval]
    con = _open_db(data_dir, read_only=True)
    if con is None:
        _err(f"no market data yet in {data_dir} (`cockpit data backfill --interval 1h`)")
        return 1
    if args.interval == "all":  # the intervals that were backfilled, not every one there is
        held = {str(r[0]) for r in con.execute("SELECT DISTINCT interval FROM candles").fetchall()}
        intervals = [i for i in intervals if i in held]
    found = [
        g
        for interval in intervals
        for symbol in args.symbols or cfg.symbols
        for g in gaps(con, symbol, interval, since, now_us)
    ]
    con.close()
    rows = [{"symbol": g.symbol, "interval": g.interval, "from_us": g.start_us,
             "to_us": g.end_us, "candles": g.candles} for g in found]  # fmt: skip
    if args.json:
        print(json.dumps({"gaps": rows, "days": args.days}, sort_keys=True))
    else:
        for g in found:
            print(f"{g.symbol} {g.interval}: {g.candles} missing from "
                  f"{_iso(g.start_us)} to {_iso(g.end_us)}")  # fmt: skip
        print("no gaps" if not rows else f"{len(rows)} gap(s)")
    return 1 if rows else 0


def _iso(ts_us: int) -> str:
    return dt.datetime.fromtimestamp(ts_us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def _status(data_dir: Path, as_json: bool) -> int:
    from engine.store.candles import last_runs

    con = _open_db(data_dir, read_only=True)
    runs = last_runs(con) if con is not None else []
    if con is not None:
        con.close()
    if as_json:
        print(json.dumps({"runs": runs}, sort_keys=True))
        return 0
    if not runs:
        print("no backfill has run yet")
    for r in runs:
        newest = _iso(r["newest"]) if r["newest"] else "-"
        print(f"{r['interval']:>4}: last run {_iso(r['finished_us'])} {r['status']}, {r['rows']} "
              f"new, {r['failures']} failures; {r['candles']} candles held, newest {newest}"
              + (f" — {r['message']}" if r["message"] else ""))  # fmt: skip
    return 0


def _curate(data_dir: Path, args: argparse.Namespace) -> int:
    from engine.store.candles import market_db_path
    from engine.strategy.curate import CurateError, curate

    intervals = list(INTERVAL_US) if args.interval == "all" else [args.interval]
    if args.interval == "all":  # only what was backfilled
        con = _open_db(data_dir, read_only=True) if market_db_path(data_dir).exists() else None
        held = (
            {r[0] for r in con.execute("SELECT DISTINCT interval FROM candles").fetchall()}
            if con
            else set()
        )
        intervals = [i for i in intervals if i in held] or intervals[:1]
        if con is not None:
            con.close()
    today = dt.datetime.now(dt.UTC).date()
    made = []
    try:
        for interval in intervals:
            made.append(curate(data_dir, interval, args.tag, today))
    except CurateError as exc:
        _err(str(exc))
        return 2
    if args.json:
        print(json.dumps({"versions": made}, sort_keys=True))
    for v in [] if args.json else made:
        print(f"curated {v['interval']}: {v['file']} ({v['rows']} rows, {len(v['features'])} "
              f"features, {_iso(v['from_us'])} .. {_iso(v['to_us'])}, sha256 {v['sha256'][:12]})")  # fmt: skip
    return 0


def _versions(data_dir: Path, as_json: bool) -> int:
    from engine.strategy.curate import CurateError, versions

    try:
        found = versions(data_dir)
    except CurateError as exc:
        _err(str(exc))
        return 2
    if as_json:
        print(json.dumps({"versions": found}, sort_keys=True))
        return 0
    if not found:
        print("no curated versions yet (`cockpit data curate --interval 1h`)")
    for v in found:
        mark = "  (archive candidate: older than the newest two)" if v["archive"] else ""
        print(f"{v['interval']:>4} {v['file']}: {v['rows']} rows, sha256 {v['sha256'][:12]}{mark}")
    return 0
