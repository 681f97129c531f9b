"""Start-up checks of a data dir, made before DuckDB may write to it (nothing lost, ever).

Role: ``boot`` calls ``check_data_dir`` after taking the lock and before opening the DB for
writing. It reads the audit key and external head, keeps a copy of any WAL, then opens the DB
*read-only* (DuckDB replays the WAL in memory and changes no file) and compares what it holds with
the head, the intent journal, the recorded profile and the audit chain. Only a DB that passed is
opened for writing and migrated (``boot``), so a refused start leaves every file as it found it.

Invariants:
- A refusal is one line naming the file and the remedy (``StoreError``: exit 4; ``ConfigError`` for
  the operator's own input such as a bad ``COCKPIT_AUDIT_KEY`` or another profile: exit 2).
- A WAL present at start is copied first; when the start is refused for a storage reason the copy
  stays as ``cockpit.duckdb.wal.corrupt.<utc>`` (DuckDB silently drops a WAL it cannot parse, and
  may delete it at its next checkpoint), else it is removed once the DB is open and migrated.
- A new audit key is created only for a fresh data dir (no DB, no WAL, no head): a new key makes
  every existing row read as forged.
- The audit chain is verified at every start from the last verified checkpoint (``engine_state``
  key ``audit_verified`` = ``seq:hash:mac``; the MAC, keyed with the audit key, stops whoever can
  edit the DB from moving the checkpoint forward over rows they forged). Rows below the checkpoint
  were verified by an earlier start; ``cockpit audit verify`` re-checks the whole chain.
- The profile kind and venue a data dir was created with are recorded (``engine_state``
  ``profile_kind``/``profile_venue``); a start with another one is refused.
"""

from __future__ import annotations

import hmac
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from engine.config.loader import Config, ConfigError
from engine.core.fsutil import others_can_read
from engine.security.audit import (
    GENESIS,
    AuditKeyError,
    HeadFile,
    checkpoint_mac,
    key_path,
    load_key,
    load_or_create_key,
    verify_from,
)
from engine.store.intent_journal import max_session
from engine.store.writer import StoreError, open_db

VERIFIED_KEY = "audit_verified"
PROFILE_KIND, PROFILE_VENUE = "profile_kind", "profile_venue"


def data_dir_mode_problem(data_dir: Path, kind: str) -> str | None:
    """A warning when others may read the data dir (None when private or not created yet);
    raises ``StoreError`` for the live profile, which refuses to start on it."""
    try:
        bits = others_can_read(data_dir)
    except FileNotFoundError:
        return None
    if not bits:
        return None
    mode = bits | 0o700
    text = (
        f"{data_dir}: data dir is readable by others (mode {mode:04o}): they may read "
        f"decisions, orders and audit payloads; `chmod 700 {data_dir}`"
    )
    if kind == "live":
        raise StoreError(f"{text}; the live profile refuses to start until it is private")
    return text


def restore_hint(data_dir: Path, *, capital: bool = False) -> str:
    """The remedy for a damaged or inconsistent data dir, as the end of a one-line error."""
    return (
        f"{'R' if capital else 'r'}estore a backup: `cockpit restore --data-dir {data_dir} BACKUP` "
        f"(see `ls {data_dir}/backups`)"
    )


@dataclass
class DataDirState:
    """What the checks found; ``boot`` records ``verified`` and the profile after migrating."""

    key: bytes
    head: tuple[int, str] | None
    wal_copy: Path | None
    verified: tuple[int, str]
    profile_recorded: bool
    state: dict[str, str]

    def opened(self) -> None:
        """The DB is open and migrated: the WAL copy is no longer needed."""
        if self.wal_copy is not None:
            self.wal_copy.unlink(missing_ok=True)
            self.wal_copy = None


def checkpoint_value(key: bytes, seq: int, last_hash: str) -> str:
    return f"{seq}:{last_hash}:{checkpoint_mac(key, seq, last_hash)}"


def _checkpoint(key: bytes, value: str | None) -> tuple[int, str]:
    """The verified checkpoint, or the chain's start when absent or not ours (a forged MAC)."""
    parts = (value or "").split(":")
    if len(parts) == 3 and parts[0].isdigit():
        seq, h, mac = int(parts[0]), parts[1], parts[2]
        if hmac.compare_digest(mac, checkpoint_mac(key, seq, h)):
            return seq, h
    return 0, GENESIS


def _keep_wal(db: Path) -> Path | None:
    wal = db.with_name(db.name + ".wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return None
    copy = db.with_name(db.name + ".wal.start-copy")
    shutil.copyfile(wal, copy)  # a copy, not a link: DuckDB may truncate the WAL's inode
    os.chmod(copy, 0o600)
    return copy


def _refuse(db: Path, data_dir: Path, wal_copy: Path | None, what: str) -> StoreError:
    kept = ""
    if wal_copy is not None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        corrupt = db.with_name(f"{db.name}.wal.corrupt.{stamp}")
        os.replace(wal_copy, corrupt)
        kept = f" (WAL kept as {corrupt.name})"
    if "cockpit restore" in what:  # open_db's message already names the remedy
        return StoreError(f"{what}{kept}")
    return StoreError(f"{what}; not trading{kept}. {restore_hint(data_dir, capital=True)}")


def _key(data_dir: Path) -> bytes | None:
    try:
        return load_key(data_dir)
    except AuditKeyError as exc:
        if exc.in_env:
            raise ConfigError(str(exc), origin="env COCKPIT_AUDIT_KEY") from None
        raise StoreError(str(exc)) from None
    except OSError as exc:
        raise StoreError(
            f"{key_path(data_dir)}: cannot read the audit key: {exc.strerror}"
        ) from None


def _head(data_dir: Path) -> tuple[int, str] | None:
    head_file = HeadFile(data_dir / "audit" / "head.json")
    try:
        return head_file.read()
    except ValueError as exc:
        raise StoreError(f"{exc}; {restore_hint(data_dir)} (a restore re-anchors it)") from None
    except OSError as exc:
        raise StoreError(f"{head_file.path}: cannot read: {exc.strerror}") from None


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {str(r[0]) for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _read(con: duckdb.DuckDBPyConnection) -> tuple[set[str], int, str, dict[str, str]]:
    tables = _tables(con)
    seq, last = 0, GENESIS
    if "audit_log" in tables:
        row = con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            seq, last = int(row[0]), str(row[1])
    state: dict[str, str] = {}
    if "engine_state" in tables:
        rows = con.execute("SELECT key, value FROM engine_state").fetchall()
        state = {str(k): str(v) for k, v in rows}
    return tables, seq, last, state


def _profile_check(cfg: Config, state: dict[str, str], data_dir: Path) -> bool:
    """False when the DB has no recorded profile yet (it is recorded at this start)."""
    kind, venue = state.get(PROFILE_KIND), state.get(PROFILE_VENUE)
    if kind is None:
        return False
    if (kind, venue) != (cfg.kind, cfg.venue):
        raise ConfigError(
            f"data dir {data_dir} belongs to a {kind} profile (venue {venue}); this start uses "
            f"profile {cfg.name!r} ({cfg.kind}, venue {cfg.venue}): pass `--profile {kind}` "
            "or use a fresh --data-dir",
            origin="profile",
        )
    return True


def check_data_dir(cfg: Config, data_dir: Path, db: Path) -> DataDirState:
    """All checks before the DB is opened for writing (see the module docstring)."""
    key = _key(data_dir)
    head = _head(data_dir)
    journal_session = max_session(data_dir / "journal" / "intents.bin")
    wal = db.with_name(db.name + ".wal")
    fresh = not db.exists() and not (wal.exists() and wal.stat().st_size > 0)
    if fresh:
        if head is not None:
            raise StoreError(
                f"{db}: database missing but the audit head is at seq {head[0]}; "
                f"not trading. {restore_hint(data_dir, capital=True)}"
            )
        if journal_session:
            raise StoreError(
                f"{db}: database missing but the intent journal holds orders of "
                f"session {journal_session}; not trading. "
                f"{restore_hint(data_dir, capital=True)}"
            )
        key = key if key is not None else load_or_create_key(data_dir)
        return DataDirState(key, None, None, (0, GENESIS), False, {})
    wal_copy = _keep_wal(db)
    try:
        return _check_existing(cfg, data_dir, db, key, head, journal_session, wal_copy)
    except StoreError as exc:
        raise _refuse(db, data_dir, wal_copy, str(exc)) from None
    except BaseException:
        if wal_copy is not None:
            wal_copy.unlink(missing_ok=True)
        raise


def _check_existing(
    cfg: Config,
    data_dir: Path,
    db: Path,
    key: bytes | None,
    head: tuple[int, str] | None,
    journal_session: int,
    wal_copy: Path | None,
) -> DataDirState:
    con = open_db(db, read_only=True)
    try:
        tables, seq, last, state = _read(con)
        if key is None and (seq or head is not None):
            raise StoreError(
                f"{key_path(data_dir)}: audit key missing while {db.name} holds {seq} audit rows "
                "(a new key would make all of them read as forged): put the key file back from "
                "your backup of secrets/ (or set COCKPIT_AUDIT_KEY)"
            )
        if head is None and (seq or (wal_copy is not None and "schema_migrations" not in tables)):
            what = f"holds {seq} audit rows" if seq else "has a WAL that did not replay"
            raise StoreError(
                f"{data_dir / 'audit' / 'head.json'}: external audit head missing "
                f"while {db.name} {what}"
            )
        if head is not None and head[0] > seq:
            raise StoreError(
                f"{db}: database is behind the external audit head (head seq {head[0]}, DB ends "
                f"at seq {seq}): committed rows are missing"
            )
        raw_session = state.get("session", "0")
        if not (raw_session.isascii() and raw_session.isdigit()):
            raise StoreError(f"{db}: engine_state.session is {raw_session!r}, not a number")
        session = int(raw_session)
        if journal_session > session:
            raise StoreError(
                f"{db}: database is older than the intent journal (journal holds "
                f"orders of session {journal_session}, DB is at session {session})"
            )
        recorded = _profile_check(cfg, state, data_dir)
        if key is None:  # no rows, no head: a data dir whose first start never committed
            key = load_or_create_key(data_dir)
        start = _checkpoint(key, state.get(VERIFIED_KEY))
        if seq and "audit_log" in tables:
            broken = verify_from(con, key, start, head)
            if broken:
                raise StoreError(f"{db}: audit chain broken: {broken}")
        return DataDirState(key, head, wal_copy, (seq, last), recorded, state)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"{db}: cannot read database: {first}") from None
    finally:
        con.close()


def record_start(con: Any, checked: DataDirState, cfg: Config, now_us: int) -> None:
    """After migrating: remember the verified checkpoint and (once) the profile."""
    seq, last = checked.verified
    rows = [(VERIFIED_KEY, checkpoint_value(checked.key, seq, last))]
    if not checked.profile_recorded:
        rows += [(PROFILE_KIND, cfg.kind), (PROFILE_VENUE, cfg.venue)]
    for k, v in rows:
        con.execute("INSERT OR REPLACE INTO engine_state VALUES (?, ?, ?)", [k, v, now_us])
        checked.state[k] = v


def recorded_profile(db: Path) -> str | None:
    """The profile kind a data dir was created with, or None (no DB, not recorded, locked)."""
    if not db.exists():
        return None
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        row = con.execute("SELECT value FROM engine_state WHERE key = ?", [PROFILE_KIND]).fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return str(row[0]) if row else None
