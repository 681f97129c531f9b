"""Operator subcommands that work whether or not the engine runs.

Engine running → the request goes over its control socket (the engine owns the DB file).
Engine stopped → we take the data-dir lock (so no engine can start meanwhile) and do the same work
ourselves, printing the same output. Exit codes: 0 ok, 1 check failed / degraded, 2 bad input /
failing, 3 the engine holds the lock but its socket does not answer, 4 storage problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from engine.config.loader import load_config, resolve_data_dir
from engine.core.envvars import EXEC_PROFILE
from engine.runtime.control import NotRunning, call


def add_parsers(sub: Any, common: Any) -> None:
    r = sub.add_parser("reconcile", help="reconcile DB and venue; exit 0 ok, 1 alerts")
    common(r)
    r.add_argument("--json", action="store_true")
    h = sub.add_parser("healthcheck", help="exit 0 ok, 1 degraded, 2 failing")
    common(h)
    h.add_argument("--json", action="store_true")
    b = sub.add_parser("backup", help="consistent copy of the DB")
    common(b)
    b.add_argument("--out", help="backup file (default <data-dir>/backups/cockpit-<utc>.duckdb)")
    b.add_argument("--json", action="store_true")
    rs = sub.add_parser(
        "restore",
        help="replace the DB with a verified backup (engine stopped); --test: restore into a temp "
        "dir and verify, touching nothing",
    )
    common(rs)
    rs.add_argument("backup", nargs="?", help="backup file (--test: default the newest)")
    rs.add_argument("--test", action="store_true", help="restore test only; exit 0 passed, 1 not")
    rs.add_argument("--json", action="store_true")
    db = sub.add_parser("db", help="database tools")
    dsub = db.add_subparsers(dest="db_cmd", required=True)
    dc = dsub.add_parser("check", help="DuckDB block checks + audit chain; exit 0 ok, 1 damaged")
    common(dc)
    dc.add_argument("--json", action="store_true")


def _err(msg: str) -> None:
    print(f"cockpit: {msg}", file=sys.stderr)


def _running_call(data_dir: Path, cmd: str, args: dict[str, Any] | None = None) -> Any:
    """Result from the running engine, or None when no engine runs (lock is then free)."""
    try:
        return call(data_dir, cmd, args)
    except NotRunning:
        return None


def _lock_or_exit(data_dir: Path) -> Any:
    from engine.store.lockfile import AlreadyRunning, acquire

    try:
        return acquire(data_dir)
    except AlreadyRunning as exc:
        _err(f"{exc}, but its control socket does not answer ({data_dir / 'control.sock'})")
        raise SystemExit(3) from None


def run(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    if args.cmd == "reconcile":
        return _reconcile(args, data_dir)
    if args.cmd == "healthcheck":
        return _healthcheck(args, data_dir)
    if args.cmd == "backup":
        return _backup(args, data_dir)
    if args.cmd == "db":
        return _db_check(args, data_dir)
    if args.test:
        return _restore_test(args, data_dir)
    if not args.backup:
        _err("restore needs the backup file (or --test to test the newest)")
        return 2
    return _restore(args, data_dir)


def _restore_test(args: argparse.Namespace, data_dir: Path) -> int:
    """Restore into a temp dir, verify, record next to the backup: the live DB is never touched,
    so it runs with the engine up too."""
    from engine.runtime.backups import backups, record_restore_test, restore_test
    from engine.security.audit import load_or_create_key

    if args.backup:
        backup = Path(args.backup).absolute()
        if not backup.is_file():
            _err(f"{backup}: no such backup file")
            return 2
    else:
        found = backups(data_dir)
        if not found:
            _err(f"no backup in {data_dir / 'backups'} (`cockpit backup` takes one)")
            return 2
        backup = found[-1]
    result = restore_test(backup, load_or_create_key(data_dir))
    record_restore_test(result)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        verdict = "passed" if result["ok"] else "FAILED"
        print(f"restore test {verdict}: {backup}: {result['reason']}")
    return 0 if result["ok"] else 1


def _db_check(args: argparse.Namespace, data_dir: Path) -> int:
    from engine.runtime import dbcheck

    report = _running_call(data_dir, "db_check")
    if report is None:
        report = _db_check_offline(data_dir)
        if report is None:
            return 2
    print(json.dumps(report, sort_keys=True) if args.json else dbcheck.render(report))
    return 0 if report["ok"] else 1


def _db_check_offline(data_dir: Path) -> Any:
    import duckdb

    from engine.runtime import dbcheck
    from engine.security.audit import HeadFile, load_or_create_key

    db = data_dir / "cockpit.duckdb"
    if not db.exists():
        _err(f"{db}: no database here (wrong --data-dir?)")
        return None
    lock = _lock_or_exit(data_dir)
    try:
        key = load_or_create_key(data_dir)
        head = HeadFile(data_dir / "audit" / "head.json").read()
        try:
            con = duckdb.connect(str(db), read_only=True)
        except duckdb.Error as exc:
            return dbcheck.unopenable(data_dir, exc)
        try:
            return dbcheck.check_connection(con, key, head, data_dir)
        finally:
            con.close()
    finally:
        lock.release()


def _config(args: argparse.Namespace, data_dir: Path) -> Any:
    """The profile given (``--profile`` or env EXEC_PROFILE), else the one the data dir was
    created with, else paper: an offline command must talk to the data dir's own venue."""
    from engine.runtime.boot import recorded_profile

    if args.profile or os.environ.get(EXEC_PROFILE):
        return load_config(args.profile)
    return load_config(recorded_profile(data_dir))


def _reconcile(args: argparse.Namespace, data_dir: Path) -> int:
    from engine.core.events import ReconReport
    from engine.runtime.recon_report import from_wire, render, to_json
    from engine.store.writer import StoreError

    report = _running_call(data_dir, "reconcile")
    if report is None:
        if not (data_dir / "cockpit.duckdb").exists():
            _err(f"{data_dir / 'cockpit.duckdb'}: no database here (wrong --data-dir?)")
            return 2
        cfg = _config(args, data_dir)
        lock = _lock_or_exit(data_dir)
        from engine.obs.logs import setup_logging
        from engine.runtime.runner import reconcile_once

        setup_logging(data_dir, "INFO", stdout=False)
        try:
            report = asyncio.run(reconcile_once(cfg, data_dir, lock))
        except StoreError as exc:
            _err(str(exc))
            return 4
    typed = report if isinstance(report, ReconReport) else from_wire(report)
    print(to_json(typed) if args.json else render(typed))
    return 0 if typed.ok else 1


def _healthcheck(args: argparse.Namespace, data_dir: Path) -> int:
    from engine.runtime.maintenance import healthcheck_offline, render_health

    report = _running_call(data_dir, "healthcheck")
    if report is None:
        report = healthcheck_offline(data_dir / "cockpit.duckdb", _config(args, data_dir))
    print(json.dumps(report, sort_keys=True) if args.json else render_health(report))
    return int(report["exit_code"])


def _backup(args: argparse.Namespace, data_dir: Path) -> int:
    from engine.runtime.maintenance import UnsafeTarget, backup_target, copy_db, read_everything
    from engine.store.writer import StoreError, open_db

    try:  # refused here, before the running engine or the DB is touched
        out = backup_target(data_dir, str(Path(args.out).absolute()) if args.out else None)
        result = _running_call(data_dir, "backup", {"out": str(out)})
    except (UnsafeTarget, RuntimeError) as exc:
        _err(str(exc))
        return 2
    if result is None:
        db = data_dir / "cockpit.duckdb"
        if not db.exists():
            _err(f"{db}: no database here (wrong --data-dir?)")
            return 2
        lock = _lock_or_exit(data_dir)
        try:
            read_everything(db)  # a damaged DB is refused before DuckDB may write to it
            con = open_db(db)
            try:
                result = copy_db(con, db, out)
            finally:
                con.close()
        except UnsafeTarget as exc:
            _err(str(exc))
            return 2
        except StoreError as exc:
            _err(str(exc))
            return 4
        finally:
            lock.release()
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    print(
        f"backup written: {result['backup']} ({result['bytes']} bytes, audit seq "
        f"{result['audit_seq']})"
    )
    return 0


def _restore(args: argparse.Namespace, data_dir: Path) -> int:
    from engine.runtime.maintenance import check_restore_source, restore

    if _running_call(data_dir, "status") is not None:
        _err("stop the engine before restoring (it owns the database)")
        return 3
    backup = Path(args.backup).absolute()
    db = data_dir / "cockpit.duckdb"
    try:
        check_restore_source(db, backup)  # before the lock: nothing is touched at all
    except ValueError as exc:
        _err(str(exc))
        return 2
    if not backup.is_file():
        _err(f"{backup}: no such backup file")
        return 2
    lock = _lock_or_exit(data_dir)
    try:
        result = restore(data_dir, db, backup, actor="operator")
    except ValueError as exc:
        _err(str(exc))
        return 2
    finally:
        lock.release()
    print(
        f"restored {result['restored_from']}; previous file kept as {result['replaced_file']}; "
        f"audit head re-anchored at seq {result['audit_seq']}"
    )
    return 0
