"""Backups the engine takes on its own, their retention, and restore tests with a record.

Role:
- ``scheduled_backup`` (the running engine, every ``ops.backup_interval_min``): a consistent copy
  through the writer (``maintenance.copy_db``: CHECKPOINT, copy, publish with ``os.link``) into
  ``<data-dir>/backups/scheduled-<utc>.duckdb``; orders keep flowing meanwhile (they are durable in
  the intent journal before they are sent; the DB rows follow when the copy is done).
- ``prune_scheduled``: keeps the newest ``ops.backup_keep`` *scheduled* backups. A backup an
  operator took (``cockpit backup``) is never deleted by the program.
- ``restore_test``: restores a backup into a temp dir (a copy, never the original), opens it,
  reads every column of every table (DuckDB's block checksums), verifies its audit chain and
  counts the rows; ``record_restore_test`` keeps the result
  next to the backup (``<backup>.tested.json``), which the preflight reads.

Invariants: nothing here touches the live DB, its WAL, the audit key or head; records are
owner-only files written atomically.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from engine.core.fsutil import write_private_atomic
from engine.runtime.maintenance import BACKUPS_DIR
from engine.security.audit import verify_connection

SCHEDULED_PREFIX = "scheduled-"
TESTED_SUFFIX = ".tested.json"


def scheduled_backup_path(data_dir: Path, now_s: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now_s is None else now_s))
    return data_dir / BACKUPS_DIR / f"{SCHEDULED_PREFIX}{stamp}.duckdb"


def backups(data_dir: Path) -> list[Path]:
    """Every backup file in ``<data-dir>/backups``, oldest first (by modification time)."""
    folder = data_dir / BACKUPS_DIR
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.duckdb"), key=lambda p: (p.stat().st_mtime, p.name))


def prune_scheduled(data_dir: Path, keep: int) -> list[Path]:
    """Delete the scheduled backups beyond the newest ``keep`` (and their records)."""
    scheduled = [p for p in backups(data_dir) if p.name.startswith(SCHEDULED_PREFIX)]
    gone = scheduled[: max(0, len(scheduled) - keep)]
    for path in gone:
        path.unlink(missing_ok=True)
        path.with_name(path.name + TESTED_SUFFIX).unlink(missing_ok=True)
    return gone


def restore_test(backup: Path, key: bytes) -> dict[str, Any]:
    """Restore ``backup`` into a temp dir, open it, verify its audit chain, count its rows."""
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="cockpit-restore-test-") as tmp:
        copy = Path(tmp) / "restored.duckdb"
        shutil.copyfile(backup, copy)
        try:
            con = duckdb.connect(str(copy), read_only=True)
        except duckdb.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return _result(backup, False, f"does not open: {first}"[:200], 0, {}, started)
        try:
            res = verify_connection(con, key, None, backup.name, require_head=False)
            # every column of every table is read (not only counted): a damaged block in any
            # table fails its checksum here, not on the day the backup is needed
            counts = {
                str(t): int(
                    con.execute(f'SELECT count(*), max(hash(COLUMNS(*))) FROM "{t}"').fetchone()[0]  # type: ignore[index]  # noqa: S608 - names from the file itself
                )
                for (t,) in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE NOT internal ORDER BY 1"
                ).fetchall()
            }
        except duckdb.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return _result(backup, False, f"unreadable: {first}"[:200], 0, {}, started)
        finally:
            con.close()
    if not res.ok:
        return _result(backup, False, f"audit chain: {res.reason}", res.checked, counts, started)
    why = f"{res.checked} audit rows verified, {sum(counts.values())} rows"
    return _result(backup, True, why, res.checked, counts, started)


def _result(
    backup: Path, ok: bool, reason: str, audit_rows: int, counts: dict[str, int], started: float
) -> dict[str, Any]:
    st = backup.stat()
    return {
        "backup": str(backup),
        "ok": ok,
        "reason": reason,
        "audit_rows": audit_rows,
        "rows": counts,
        "tested_at_s": round(started, 3),
        "backup_size": st.st_size,
        "backup_mtime_ns": st.st_mtime_ns,
    }


def record_restore_test(result: dict[str, Any]) -> Path:
    path = Path(result["backup"])
    record = path.with_name(path.name + TESTED_SUFFIX)
    write_private_atomic(record, (json.dumps(result, sort_keys=True) + "\n").encode())
    return record


def recorded_restore_test(backup: Path) -> dict[str, Any] | None:
    """The kept restore-test result of ``backup``, if it was taken of this very file."""
    record = backup.with_name(backup.name + TESTED_SUFFIX)
    try:
        result: dict[str, Any] = json.loads(record.read_text())
        st = backup.stat()
    except (OSError, ValueError):
        return None
    same = result.get("backup_size") == st.st_size and result.get("backup_mtime_ns") == (
        st.st_mtime_ns
    )
    return result if same else None
