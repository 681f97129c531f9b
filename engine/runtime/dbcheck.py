"""``cockpit db check``: is the database sound? (seed 003 "base de datos corrupta").

Role: DuckDB's own checks — every block of every table is read, so a checksum or storage error
surfaces here rather than mid-trade — plus the audit chain against its external head, the schema
version, and row counts. The running engine runs it on a cursor of its own (the writer keeps
writing); a stopped engine's DB is checked read-only under the data-dir lock.

Invariants: read-only, always; a failing check names the remedy (the newest backup, tested, then
``cockpit restore``); nothing is repaired or deleted automatically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from engine.runtime.backups import backups
from engine.security.audit import verify_connection


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def remedy(data_dir: Path) -> str:
    found = backups(data_dir)
    newest = found[-1] if found else None
    which = str(newest) if newest else "BACKUP"
    return (
        f"stop the engine, `cockpit restore --test {which} --data-dir {data_dir}`, then "
        f"`cockpit restore --data-dir {data_dir} {which}` (the damaged file is kept aside)"
        + ("" if newest else f"; no backup in {data_dir / 'backups'}")
    )


def _blocks(con: Any) -> tuple[dict[str, str], dict[str, int]]:
    tables = [
        str(r[0])
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND "
            "database_name = current_database() ORDER BY 1"
        ).fetchall()
    ]
    counts: dict[str, int] = {}
    for t in tables:
        # names come from duckdb_tables() of this very file, quoted: not user input
        row = con.execute(f'SELECT count(*), max(hash(COLUMNS(*))) FROM "{t}"').fetchone()  # noqa: S608
        counts[t] = int(row[0])
    return {"name": "duckdb_blocks", "status": "ok", "detail": f"{len(tables)} tables read"}, counts


def check_connection(
    con: Any, key: bytes, head: tuple[int, str] | None, data_dir: Path
) -> dict[str, Any]:
    """Every check over an open connection; ``ok`` only when all pass."""
    checks: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    try:
        blocks, counts = _blocks(con)
        checks.append(blocks)
    except duckdb.Error as exc:
        checks.append({"name": "duckdb_blocks", "status": "fail", "detail": _first_line(exc)})
    try:
        res = verify_connection(con, key, head, str(data_dir / "cockpit.duckdb"))
        status = "ok" if res.ok else "fail"
        detail = f"{res.checked} rows verified" if res.ok else str(res.reason)
    except duckdb.Error as exc:
        status, detail = "fail", _first_line(exc)
    checks.append({"name": "audit_chain", "status": status, "detail": detail})
    try:
        row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
        checks.append({"name": "schema", "status": "ok", "detail": f"version {row[0]}"})
    except duckdb.Error as exc:
        checks.append({"name": "schema", "status": "fail", "detail": _first_line(exc)})
    ok = all(c["status"] == "ok" for c in checks)
    return {"ok": ok, "checks": checks, "rows": counts, "remedy": None if ok else remedy(data_dir)}


def unopenable(data_dir: Path, exc: BaseException) -> dict[str, Any]:
    check = {"name": "duckdb_open", "status": "fail", "detail": _first_line(exc)}
    return {"ok": False, "checks": [check], "rows": {}, "remedy": remedy(data_dir)}


def render(report: dict[str, Any]) -> str:
    lines = [f"database: {'OK' if report['ok'] else 'DAMAGED'}"]
    lines += [f"  {c['status']:<5} {c['name']:<14} {c['detail']}" for c in report["checks"]]
    if report["rows"]:
        lines.append("  rows: " + ", ".join(f"{t} {n}" for t, n in report["rows"].items()))
    if report["remedy"]:
        lines.append(f"remedy: {report['remedy']}")
    return "\n".join(lines)
