"""Operator operations shared by the running engine (control socket) and the stopped-engine CLI.

- ``healthcheck``: venue connectivity, outbox backlog and oldest pending age, clock skew, age of the
  last reconciliation, kill switch / halt. Exit code 0 ok, 1 degraded, 2 failing.
- ``backup``: a consistent copy of the DB (CHECKPOINT, then copy while nothing else writes).
- ``restore``: replace the DB with a verified backup, move the old file aside, re-anchor the
  external audit head on the restored chain and audit the restore itself.
The same report dicts and renderers serve both paths, so the output is identical either way.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb

from engine.audit import AuditChain, HeadFile, load_or_create_key, tail_state, verify_connection

UNRESOLVED = ("pending", "submitted", "unknown")
_RANK = {"ok": 0, "degraded": 1, "failing": 2}


def _report(checks: list[dict[str, str]], running: bool) -> dict[str, Any]:
    worst = max((_RANK[c["status"]] for c in checks), default=0)
    status = [k for k, v in _RANK.items() if v == worst][0]
    return {"status": status, "exit_code": worst, "engine_running": running, "checks": checks}


def _check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"name": name, "status": status, "detail": detail}


def _outbox_check(count: int, oldest_s: float) -> dict[str, str]:
    status = "failing" if oldest_s > 120 else "degraded" if oldest_s > 30 else "ok"
    return _check("outbox", status, f"{count} unresolved, oldest {oldest_s:.1f}s")


def _recon_check(age_s: float | None, interval_s: float, ok: bool | None) -> dict[str, str]:
    if age_s is None:
        return _check("reconciliation", "degraded", "never run")
    status = "degraded" if age_s > 3 * interval_s else "ok"
    if ok is False:
        status = "failing"
    return _check("reconciliation", status, f"last {age_s:.0f}s ago" + ("" if ok else ", ALERT"))


def _ntp_check(engine: Any) -> dict[str, str]:
    """A configured NTP_SERVER that does not answer usefully is a warning (its readiness signal,
    published by the runtime, is red and holds trading where ``ntp`` is required)."""
    if not engine.cfg.clock.ntp_server:
        return _check("ntp", "ok", "not configured (venue time only)")
    sig = engine.readiness.get("ntp")
    if sig is None:
        return _check("ntp", "degraded", f"{engine.cfg.clock.ntp_server}: no answer yet")
    return _check("ntp", "ok" if sig[0] else "degraded", sig[2])


def healthcheck_online(engine: Any, reconciler: Any, venue_ready: bool) -> dict[str, Any]:
    cfg = engine.cfg
    now = engine.clock.now_us()
    pending = [o for o in engine.open_orders.values() if o.status in UNRESOLVED]
    oldest = max(((now - (o.submitted_us or o.created_us)) / 1e6 for o in pending), default=0.0)
    skew = engine.clock.skew_ms()
    limit = cfg.risk.max_time_skew_ms
    skew_status = "failing" if abs(skew) > limit else "degraded" if abs(skew) > limit / 2 else "ok"
    last = reconciler.last if reconciler is not None else None
    checks = [
        _check("engine", "failing" if engine.halted_reason else "ok",
               f"halted: {engine.halted_reason}" if engine.halted_reason else "running"),
        _check("venue", "ok" if venue_ready else "failing",
               f"{engine.venue.name}: {'connected' if venue_ready else 'user stream down'}"),
        _outbox_check(len(pending), oldest),
        _check("clock_skew", skew_status, f"{skew:+.1f} ms (limit {limit:g})"),
        _ntp_check(engine),
        _recon_check((now - last["ts_us"]) / 1e6 if last else None,
                     cfg.oms.reconcile_interval_s, last["ok"] if last else None),
        _check("kill_switch", "degraded" if engine.risk.kill_switch else "ok",
               engine.risk.kill_reason or "disarmed"),
    ]  # fmt: skip
    return _report(checks, True)


def healthcheck_offline(db_path: Path, cfg: Any) -> dict[str, Any]:
    """No engine: read the DB (read-only) and say what a running engine would need to know."""
    checks = [_check("engine", "failing", "not running")]
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error as exc:
        checks.append(_check("database", "failing", f"{db_path}: {str(exc).splitlines()[0]}"))
        return _report(checks, False)
    try:
        now = int(time.time() * 1e6)
        n, oldest = con.execute(
            "SELECT count(*), min(coalesce(nullif(submitted_us, 0), created_us)) FROM orders "
            "WHERE status IN ('pending','submitted','unknown')"
        ).fetchone() or (0, None)
        checks.append(_outbox_check(int(n), (now - oldest) / 1e6 if oldest else 0.0))
        row = con.execute(
            "SELECT ts_us, ok FROM reconciliation_runs ORDER BY ts_us DESC LIMIT 1"
        ).fetchone()
        checks.append(_recon_check((now - row[0]) / 1e6 if row else None,
                                   cfg.oms.reconcile_interval_s, row[1] if row else None))  # fmt: skip
        ks = con.execute("SELECT value FROM engine_state WHERE key='kill_switch'").fetchone()
        armed = bool(ks and ks[0] == "1")
        checks.append(_check("kill_switch", "degraded" if armed else "ok",
                             "armed" if armed else "disarmed"))  # fmt: skip
        checks.append(_check("venue", "failing", f"{cfg.venue}: not connected (engine stopped)"))
    finally:
        con.close()
    return _report(checks, False)


def render_health(report: dict[str, Any]) -> str:
    lines = [f"health: {report['status'].upper()}"
             + ("" if report["engine_running"] else " (engine not running)")]  # fmt: skip
    lines += [f"  {c['status']:<8} {c['name']:<15} {c['detail']}" for c in report["checks"]]
    return "\n".join(lines)


# --- backup / restore --------------------------------------------------------------------------


def copy_db(con: duckdb.DuckDBPyConnection, db_path: Path, out: Path) -> dict[str, Any]:
    """CHECKPOINT (WAL folded into the file), then copy it atomically (temp + rename, 0600).

    The caller guarantees nothing writes meanwhile (the writer thread runs this itself)."""
    con.execute("CHECKPOINT")
    seq, _ = tail_state(con)
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.copyfile(db_path, tmp)
    os.chmod(tmp, 0o600)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return {"backup": str(out), "bytes": out.stat().st_size, "audit_seq": seq}


def default_backup_path(data_dir: Path) -> Path:
    return data_dir / "backups" / time.strftime("cockpit-%Y%m%dT%H%M%SZ.duckdb", time.gmtime())


def restore(data_dir: Path, db_path: Path, backup: Path, actor: str) -> dict[str, Any]:
    """Replace ``db_path`` by ``backup`` (engine stopped: the caller holds the data-dir lock)."""
    key = load_or_create_key(data_dir)
    try:
        src = duckdb.connect(str(backup), read_only=True)
    except duckdb.Error as exc:
        raise ValueError(
            f"{backup}: not a readable DuckDB file: {str(exc).splitlines()[0]}"
        ) from exc
    try:
        result = verify_connection(src, key, None, name=str(backup))
    finally:
        src.close()
    if not result.ok:
        raise ValueError(f"{backup}: audit chain broken, refusing to restore: {result.reason}")
    head_file = HeadFile(data_dir / "audit" / "head.json")
    old_head = head_file.read()
    moved = None
    if db_path.exists():
        moved = db_path.with_name(f"{db_path.name}.replaced-{time.strftime('%Y%m%dT%H%M%SZ')}")
        os.replace(db_path, moved)
        wal = db_path.with_name(db_path.name + ".wal")
        if wal.exists():
            os.replace(wal, moved.with_name(moved.name + ".wal"))
    tmp = db_path.with_name(f".{db_path.name}.restore.tmp")
    shutil.copyfile(backup, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, db_path)
    con = duckdb.connect(str(db_path))
    try:
        seq, last = tail_state(con)
        rec = AuditChain(key, seq, last).append(
            int(time.time() * 1e6), actor, "restored",
            {"backup": str(backup), "previous_head_seq": old_head[0] if old_head else None,
             "replaced_file": str(moved) if moved else None},
        )  # fmt: skip
        con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)", list(rec))
    finally:
        con.close()
    head_file.write(rec.seq, rec.hash)  # the operator accepted the restored ledger: re-anchor
    return {"restored_from": str(backup), "replaced_file": str(moved) if moved else None,
            "audit_seq": rec.seq, "previous_head_seq": old_head[0] if old_head else None}  # fmt: skip
