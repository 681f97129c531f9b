"""The record of configuration changes: the running engine's answer, the stopped-engine audit
rows, and the ``config_history.jsonl`` file.

Role: ``cockpit config set`` asks a running engine :func:`running_config` (which file it runs,
where each key comes from), and records a change through its ``RecordConfigChange`` command.
With no engine running the CLI holds the data-dir lock and calls :func:`check_offline` before it
writes the profile, then :func:`record_offline`, which appends the same rows the engine would —
``config_changed`` and ``incident`` in the audit chain, one ``incidents`` row — and moves the
external head. Either way the CLI then appends one line to ``<data-dir>/config_history.jsonl``
(:func:`append_history`), which ``cockpit config history`` reads without opening the DB.

Invariants:
- Offline rows are appended only to a DB whose chain reaches the external head (the row at the
  head's seq has the head's hash) and that has no WAL left by an unclean stop (the engine's own
  start checks and replays that one); otherwise nothing is written (``StoreError``, exit 4).
- The history file is append-only, 0600, one JSON object per line, fsynced; a torn last line (a
  crash mid-append) is skipped when read, never rewritten.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import duckdb

from engine.config.profiles import profile_file
from engine.config.render import render_config
from engine.core.events import RecordConfigChange
from engine.core.fsutil import append_all, fsync_dir, make_private_dir
from engine.runtime.boot import db_path
from engine.runtime.datacheck import restore_hint
from engine.security.audit import KEY_ENV, AuditChain, HeadFile, load_key, tail_state
from engine.store.writer import StoreError
from engine.trading.config_change import audit_payload, journal_note

HISTORY_NAME = "config_history.jsonl"


async def running_config(engine: Any) -> dict[str, Any]:
    """What ``cockpit config set`` / ``config show --running`` ask a running engine: its profile,
    the file it was loaded from (absolute, in the engine's own cwd), each key's source, and its
    effective configuration as ``config show`` renders it (hot changes included)."""
    cfg = engine.cfg
    path = profile_file(cfg.sources)
    return {
        "profile": cfg.name,
        "file": str(path) if path is not None else None,
        "sources": dict(cfg.sources),
        "text": render_config(cfg),
    }


def check_offline(data_dir: Path) -> tuple[bytes, tuple[int, str]] | None:
    """Before the profile is written (caller holds the lock): can the change be recorded in this
    data dir's DB? Returns the audit key and the chain's tail; None when there is no DB yet."""
    db = db_path(data_dir)
    if not db.exists():
        return None
    if db.with_name(db.name + ".wal").exists():
        raise StoreError(
            f"{db}.wal: the engine did not stop cleanly; start it once (it checks the data dir), "
            "then retry: nothing was changed"
        )
    key = load_key(data_dir)
    if key is None:
        raise StoreError(f"{data_dir / 'secrets' / 'audit.key'}: audit key missing ({KEY_ENV})")
    try:
        head = HeadFile(data_dir / "audit" / "head.json").read()
        con = duckdb.connect(str(db), read_only=True)
    except (ValueError, duckdb.Error) as exc:
        raise StoreError(f"{db}: {str(exc).splitlines()[0]}; {restore_hint(data_dir)}") from exc
    try:
        tail = tail_state(con)
        at_head = (
            con.execute("SELECT hash FROM audit_log WHERE seq = ?", [head[0]]).fetchone()
            if head is not None and head[0] > 0
            else None
        )
    finally:
        con.close()
    reached = tail[0] == 0 if head is None or head[0] == 0 else at_head == (head[1],)
    if not reached:
        raise StoreError(
            f"{db}: the audit chain does not reach the external head; nothing was changed; "
            f"{restore_hint(data_dir)}"
        )
    return key, tail


def record_offline(
    data_dir: Path, cmd: RecordConfigChange, outcome: str, ready: tuple[bytes, tuple[int, str]]
) -> int:
    """Append the change (audit ``config_changed`` + ``incident``, one ``incidents`` row) in one
    transaction, then move the external head; returns the last audit seq. Lock held."""
    key, (seq, last) = ready
    now = int(time.time() * 1e6)
    note = journal_note(cmd, outcome)
    context = {
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1e6)),
        "engine": "stopped",
        "profile": cmd.profile,
    }
    chain = AuditChain(key, seq, last)
    rows = [
        chain.append(now, cmd.actor, "config_changed", audit_payload(cmd, outcome)),
        chain.append(now, cmd.actor, "incident", {"note": note, "context": context}),
    ]
    con = duckdb.connect(str(db_path(data_dir)))
    try:
        con.execute("BEGIN TRANSACTION")
        con.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)", [*map(list, rows)])
        con.execute(
            "INSERT INTO incidents (ts_us, actor, note, context) VALUES (?, ?, ?, ?)",
            [now, cmd.actor, note, json.dumps(context)],
        )
        con.execute("COMMIT")
    finally:
        con.close()
    HeadFile(data_dir / "audit" / "head.json").write(rows[-1].seq, rows[-1].hash)
    return rows[-1].seq


def history_path(data_dir: Path) -> Path:
    return data_dir / HISTORY_NAME


def append_history(data_dir: Path, entry: dict[str, Any]) -> Path:
    """One line appended (0600, fsynced); the file and the data dir are created when missing."""
    path = history_path(data_dir)
    make_private_dir(data_dir)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        append_all(fd, (json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(data_dir)
    return path


def read_history(data_dir: Path) -> list[dict[str, Any]]:
    """Every recorded change, oldest first; unreadable lines (a torn tail) are skipped."""
    try:
        text = history_path(data_dir).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out
