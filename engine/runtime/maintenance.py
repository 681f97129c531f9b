"""Operator operations shared by the running engine (control socket) and the stopped-engine CLI.

- ``healthcheck``: venue connectivity, outbox backlog and oldest pending age, clock skew, age of the
  last reconciliation, kill switch / halt. Exit code 0 ok, 1 degraded, 2 failing.
- ``backup``: a consistent copy of the DB (CHECKPOINT, then copy while nothing else writes) to a
  new file outside the data dir or in its ``backups/`` folder (``backup_target``).
- ``restore``: replace the DB with a verified backup, move the old file aside, re-anchor the
  external audit head on the restored chain, continue the session numbering above anything the
  data dir has seen (client ids are never reused) and audit the restore itself.
The same report dicts and renderers serve both paths, so the output is identical either way.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb

from engine.core.fsutil import fsync_dir, make_private_dir
from engine.runtime.datacheck import restore_hint
from engine.security.audit import (
    KEY_ENV,
    AuditChain,
    HeadFile,
    load_key,
    tail_state,
    verify_connection,
)
from engine.store.intent_journal import max_session
from engine.store.writer import StoreError

UNRESOLVED = ("pending", "submitted", "unknown")
_RANK = {"ok": 0, "degraded": 1, "failing": 2}


def _report(checks: list[dict[str, str]], running: bool) -> dict[str, Any]:
    worst = max((_RANK[c["status"]] for c in checks), default=0)
    status = next(k for k, v in _RANK.items() if v == worst)
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
    sig = engine.market.readiness.get("ntp")
    if sig is None:
        return _check("ntp", "degraded", f"{engine.cfg.clock.ntp_server}: no answer yet")
    return _check("ntp", "ok" if sig[0] else "degraded", sig[2])


def _trading_checks(engine: Any, alerts: Any) -> list[dict[str, str]]:
    """What stops or endangers trading right now: safe mode, breakers, blocking gates, the error
    rate, firing alerts. A healthy process that cannot trade is not OK."""
    r = engine.risk
    tripped = engine.breakers.tripped()
    blocking = {
        g.name: g.reason
        for g in engine.gates.states.values()
        if g.active and g.standing and g.name not in ("kill_switch", "safe_mode", *tripped)
    }
    rate, n = engine.kpis.error_rate()
    limit = engine.cfg.risk.max_error_rate
    firing = alerts.current() if alerts is not None else []
    firing = [a for a in firing if a.state == "firing"]
    pages = [a for a in firing if a.severity == "page"]
    return [
        _check("safe_mode", "degraded" if r.safe_mode else "ok", "on" if r.safe_mode else "off"),
        _check(
            "breakers",
            "failing" if tripped else "ok",
            "; ".join(f"{k} {v}" for k, v in tripped.items()) or "armed, none tripped",
        ),
        _check(
            "gates",
            "degraded" if blocking else "ok",
            "; ".join(f"{k}: {v}" for k, v in sorted(blocking.items())) or "none active",
        ),
        _check(
            "error_rate",
            "failing" if n and rate > limit else "ok",
            f"{rate:.1%} of the last {n} orders (MAX_ERROR_RATE {limit:.1%})",
        ),
        _check(
            "alerts",
            "failing" if pages else "degraded" if firing else "ok",
            ", ".join(a.describe() for a in firing) or "none firing",
        ),
    ]


def healthcheck_online(
    engine: Any, reconciler: Any, venue_ready: bool, alerts: Any = None
) -> dict[str, Any]:
    cfg = engine.cfg
    now = engine.clock.now_us()
    pending = [o for o in engine.order_cache.open_orders.values() if o.status in UNRESOLVED]
    oldest = max(((now - (o.submitted_us or o.created_us)) / 1e6 for o in pending), default=0.0)
    skew = engine.clock.skew_ms()
    limit = cfg.risk.max_time_skew_ms
    skew_status = "failing" if abs(skew) > limit else "degraded" if abs(skew) > limit / 2 else "ok"
    last = reconciler.last if reconciler is not None else None
    checks = [
        _check(
            "engine",
            "failing" if engine.halted_reason else "ok",
            f"halted: {engine.halted_reason}" if engine.halted_reason else "running",
        ),
        _check(
            "venue",
            "ok" if venue_ready else "failing",
            f"{engine.venue.name}: {'connected' if venue_ready else 'user stream down'}",
        ),
        _outbox_check(len(pending), oldest),
        _check("clock_skew", skew_status, f"{skew:+.1f} ms (limit {limit:g})"),
        _ntp_check(engine),
        _recon_check(
            (now - last.ts_us) / 1e6 if last else None,
            cfg.oms.reconcile_interval_s,
            last.ok if last else None,
        ),
        _check(
            "kill_switch",
            "degraded" if engine.risk.kill_switch else "ok",
            engine.risk.kill_reason or "disarmed",
        ),
        *_trading_checks(engine, alerts),
    ]
    return _report(checks, True)


def healthcheck_offline(db_path: Path, cfg: Any) -> dict[str, Any]:
    """No engine: read the DB (read-only) and say what a running engine would need to know.
    A DB that cannot be opened or read (damaged, truncated) is a failing ``database`` check."""
    checks = [_check("engine", "failing", "not running")]
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error as exc:
        checks.append(_db_failing(db_path, exc))
        return _report(checks, False)
    try:
        checks += _offline_checks(con, cfg)
    except duckdb.Error as exc:
        checks.append(_db_failing(db_path, exc))
    finally:
        con.close()
    return _report(checks, False)


def _db_failing(db_path: Path, exc: Exception) -> dict[str, str]:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _check("database", "failing", f"{db_path}: {first}; {restore_hint(db_path.parent)}")


def _offline_checks(con: duckdb.DuckDBPyConnection, cfg: Any) -> list[dict[str, str]]:
    now = int(time.time() * 1e6)
    n, oldest = con.execute(
        "SELECT count(*), min(coalesce(nullif(submitted_us, 0), created_us)) FROM orders "
        "WHERE status IN ('pending','submitted','unknown')"
    ).fetchone() or (0, None)
    checks = [_outbox_check(int(n), (now - oldest) / 1e6 if oldest else 0.0)]
    row = con.execute(
        "SELECT ts_us, ok FROM reconciliation_runs ORDER BY ts_us DESC LIMIT 1"
    ).fetchone()
    checks.append(
        _recon_check(
            (now - row[0]) / 1e6 if row else None,
            cfg.oms.reconcile_interval_s,
            row[1] if row else None,
        )
    )
    ks = con.execute("SELECT value FROM engine_state WHERE key='kill_switch'").fetchone()
    armed = bool(ks and ks[0] == "1")
    checks.append(
        _check("kill_switch", "degraded" if armed else "ok", "armed" if armed else "disarmed")
    )
    checks.append(_check("venue", "failing", f"{cfg.venue}: not connected (engine stopped)"))
    return checks


def render_health(report: dict[str, Any]) -> str:
    lines = [
        f"health: {report['status'].upper()}"
        + ("" if report["engine_running"] else " (engine not running)")
    ]
    lines += [f"  {c['status']:<8} {c['name']:<15} {c['detail']}" for c in report["checks"]]
    return "\n".join(lines)


# --- backup / restore --------------------------------------------------------------------------

BACKUPS_DIR = "backups"


class UnsafeTarget(ValueError):
    """A backup or restore request that could destroy data; refused before anything is touched."""


def backup_target(data_dir: Path, out: Path | str | None) -> Path:
    """Where a backup may be written: outside the data dir or in its ``backups/`` folder, never
    over an existing file (the live DB, its WAL, the audit key and head all live in the data dir).

    Symlinks and ``..`` are resolved before the check: a link in ``backups/`` pointing at the
    live DB is refused like the live DB itself."""
    if out is None or out == "":
        return default_backup_path(data_dir)
    raw = Path(out)
    if not raw.is_absolute():
        raise UnsafeTarget(f"backup path {str(raw)!r} must be absolute")
    target = Path(os.path.realpath(raw.parent)) / raw.name
    home = Path(os.path.realpath(data_dir))
    backups = Path(os.path.realpath(data_dir / BACKUPS_DIR))
    inside = target.is_relative_to(home) or raw.is_relative_to(data_dir)
    if inside and not (target.is_relative_to(backups) and target != backups):
        raise UnsafeTarget(
            f"{raw}: refusing to write a backup inside the data dir {data_dir} (it holds the live "
            f"DB, WAL, audit key and head); use {data_dir / BACKUPS_DIR}/NAME or a path outside it"
        )
    if os.path.lexists(raw) or os.path.lexists(target):
        raise UnsafeTarget(f"{raw}: file exists; a backup never replaces a file, choose a new name")
    return target


def read_everything(db_path: Path) -> None:
    """Read every column of every table (read-only): a damaged or truncated file fails here, as a
    one-line ``StoreError`` with the restore command, before anything opens it for writing."""
    try:
        con = duckdb.connect(str(db_path), read_only=True)
        try:
            tables = [
                str(r[0])
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE NOT internal"
                ).fetchall()
            ]
            for table in tables:
                # table names come from duckdb_tables() of this file, quoted: not user input
                q = f'SELECT count(*), max(hash(COLUMNS(*))) FROM "{table}"'  # noqa: S608
                con.execute(q).fetchall()
        finally:
            con.close()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(
            f"{db_path}: database damaged or unreadable: {first}; {restore_hint(db_path.parent)}"
        ) from None


def copy_db(con: duckdb.DuckDBPyConnection, db_path: Path, out: Path) -> dict[str, Any]:
    """CHECKPOINT (WAL folded into the file), then copy it to a new file ``out`` (0600).

    The caller guarantees nothing writes meanwhile (the writer thread runs this itself) and has
    checked ``out`` with ``backup_target``. The copy is published with ``os.link``, which fails on
    an existing name instead of replacing it, so even a file created since the check survives."""
    con.execute("CHECKPOINT")
    seq, _ = tail_state(con)
    make_private_dir(out.parent)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(db_path, tmp)
        os.chmod(tmp, 0o600)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.link(tmp, out)
        except FileExistsError:
            raise UnsafeTarget(f"{out}: file exists; a backup never replaces a file") from None
        fsync_dir(out.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return {"backup": str(out), "bytes": out.stat().st_size, "audit_seq": seq}


def default_backup_path(data_dir: Path) -> Path:
    name = time.strftime("cockpit-%Y%m%dT%H%M%SZ.duckdb", time.gmtime())
    return data_dir / BACKUPS_DIR / name


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_restore_source(db_path: Path, backup: Path) -> None:
    """Refuse a "backup" that is the live DB or its WAL (by path, symlink or hard link): the
    restore would move it aside and then have nothing to copy."""
    for live in (db_path, db_path.with_name(db_path.name + ".wal")):
        if _same_file(backup, live) or os.path.realpath(backup) == os.path.realpath(live):
            raise UnsafeTarget(
                f"{backup}: this is the live database file ({live}), not a backup; nothing was "
                f"changed. Restore from a file in {db_path.parent / BACKUPS_DIR}"
            )


def _keep_as(src: Path, dst: Path) -> None:
    """A second name for ``src`` (a hard link; a private copy where links are not supported)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o600)


def _session_floor(data_dir: Path, db_path: Path) -> int:
    """The highest session the data dir has seen (the DB being replaced, the intent journal): the
    restored DB continues above it, so client order ids of sessions the backup never saw (orders
    that may be at the venue) are never minted again."""
    floor = max_session(data_dir / "journal" / "intents.bin")
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error:
        return floor  # missing or unreadable: the journal is all we know
    try:
        row = con.execute("SELECT value FROM engine_state WHERE key = 'session'").fetchone()
        return max(floor, int(row[0])) if row else floor
    except (duckdb.Error, ValueError):
        return floor
    finally:
        con.close()


def restore(data_dir: Path, db_path: Path, backup: Path, actor: str) -> dict[str, Any]:
    """Replace ``db_path`` by ``backup`` (engine stopped: the caller holds the data-dir lock).

    Order: refuse the live file, verify the backup, copy it next to the DB, keep the old DB (and
    WAL) under a ``.replaced-<utc>`` name (hard links), take the WAL off its live name, then
    rename the copy over the DB. A failure or kill at any step leaves the old DB reachable; the
    worst case (killed after the WAL was moved) is a DB behind the audit head, refused at start,
    with both files kept."""
    check_restore_source(db_path, backup)
    key = load_key(data_dir)
    if key is None:
        raise ValueError(
            f"{data_dir / 'secrets' / 'audit.key'}: audit key missing (and {KEY_ENV} unset): "
            "cannot verify the backup; put the key back first"
        )
    try:
        src = duckdb.connect(str(backup), read_only=True)
    except duckdb.Error as exc:
        raise ValueError(
            f"{backup}: not a readable DuckDB file: {str(exc).splitlines()[0]}"
        ) from exc
    try:
        result = verify_connection(src, key, None, name=str(backup), require_head=False)
    except duckdb.Error as exc:
        raise ValueError(f"{backup}: cannot read: {str(exc).splitlines()[0]}") from exc
    finally:
        src.close()
    if not result.ok:
        raise ValueError(f"{backup}: audit chain broken, refusing to restore: {result.reason}")
    head_file = HeadFile(data_dir / "audit" / "head.json")
    try:
        old_head = head_file.read()
    except ValueError:
        old_head = None  # a malformed head is what a restore re-anchors
    floor = _session_floor(data_dir, db_path)
    tmp = db_path.with_name(f".{db_path.name}.restore.tmp")
    shutil.copyfile(backup, tmp)
    os.chmod(tmp, 0o600)
    moved = None
    if db_path.exists():  # kept by a second name first: a kill -9 anywhere below loses nothing
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        moved = db_path.with_name(f"{db_path.name}.replaced-{stamp}")
        _keep_as(db_path, moved)
        wal = db_path.with_name(db_path.name + ".wal")
        if wal.exists():  # off the live name before the swap: never replayed onto the backup
            _keep_as(wal, moved.with_name(moved.name + ".wal"))
            wal.unlink()
    os.replace(tmp, db_path)  # atomic: there is a DB at db_path at every instant
    fsync_dir(db_path.parent)
    con = duckdb.connect(str(db_path))
    try:
        now = int(time.time() * 1e6)
        con.execute(
            "INSERT OR REPLACE INTO engine_state SELECT 'session', ?, ? WHERE ? > "
            "(SELECT coalesce(max(value::BIGINT), 0) FROM engine_state "
            "WHERE key = 'session')",
            [str(floor), now, floor],
        )
        seq, last = tail_state(con)
        rec = AuditChain(key, seq, last).append(
            now,
            actor,
            "restored",
            {
                "backup": str(backup),
                "previous_head_seq": old_head[0] if old_head else None,
                "replaced_file": str(moved) if moved else None,
                "session_floor": floor,
            },
        )
        con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)", list(rec))
    finally:
        con.close()
    head_file.write(rec.seq, rec.hash)  # the operator accepted the restored ledger: re-anchor
    return {
        "restored_from": str(backup),
        "replaced_file": str(moved) if moved else None,
        "audit_seq": rec.seq,
        "previous_head_seq": old_head[0] if old_head else None,
    }
