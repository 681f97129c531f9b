"""Append-only, hash-chained audit log keyed with HMAC-SHA256, and its verifier.

Role: every decision, order, fill, gate change and operator action becomes one ``AuditRecord``.
``AuditChain`` assigns the sequence number and chains each record to the previous one; the
persistence layer stores the records in ``audit_log`` (``AUDIT_TABLE_DDL``) and, after each commit,
writes the last ``(seq, hash)`` to an external ``HeadFile``. ``verify_db`` names the first broken row.

Invariants:
- ``seq`` starts at 1 and is contiguous; row 1 links to ``GENESIS``; row n's ``prev_hash`` is row
  n-1's ``hash``.
- ``hash = HMAC-SHA256(key, f"{seq}|{ts_us}|{actor}|{kind}|{prev_hash}|" + payload_utf8)`` in lower
  hex. ``payload`` is stored exactly as encoded (msgspec JSON text), so the verifier re-hashes the
  stored text and never re-encodes. ``actor`` and ``kind`` may not contain ``|``: with a separator
  inside a field two different rows would hash the same.
- The key is never stored in the DB (env ``COCKPIT_AUDIT_KEY`` or ``<data_dir>/secrets/audit.key``,
  mode 0600): whoever can rewrite the DB cannot recompute valid hashes. The external head catches
  the one attack the chain alone cannot see: cutting rows off the tail.
- Verification only reads: the DB is opened read-only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import duckdb
import msgspec

from engine.core.envvars import COCKPIT_AUDIT_KEY
from engine.core.fsutil import fsync_dir, make_private_dir, write_all, write_private_atomic

GENESIS = "0" * 64
KEY_ENV = COCKPIT_AUDIT_KEY
KEY_BYTES = 32

AUDIT_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS audit_log (seq BIGINT PRIMARY KEY, ts_us BIGINT NOT NULL, "
    "actor VARCHAR NOT NULL, kind VARCHAR NOT NULL, payload VARCHAR NOT NULL, "
    "prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL)"
)

_SELECT_ROWS = (
    "SELECT seq, ts_us, actor, kind, payload, prev_hash, hash FROM audit_log ORDER BY seq"
)
_FETCH_CHUNK = 10_000
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SHA256_BLOCK = 64

# "deterministic" sorts dict keys, so the same logical payload always yields the same text (and
# hash) whatever the insertion order; Structs keep their declared field order.
_ENCODER = msgspec.json.Encoder(order="deterministic")


class AuditRecord(NamedTuple):
    """One audit row; a plain tuple in table column order, so it goes straight to executemany."""

    seq: int
    ts_us: int
    actor: str
    kind: str
    payload: str
    prev_hash: str
    hash: str


_new_record = tuple.__new__


class VerifyResult(NamedTuple):
    """Outcome of a verification; ``checked`` counts rows that passed before any failure."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str


class _Keyed:
    """HMAC-SHA256 with the key schedule done once.

    ``hmac.digest`` redoes the ipad/opad compressions on every call (~1.5 us here); copying two
    precomputed sha256 states is the same RFC 2104 computation at ~0.55 us, which is most of the
    append budget. Output is byte-identical to ``hmac.digest(key, msg, "sha256")`` (tested).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def hexdigest(self, msg: bytes) -> str:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


class AuditChain:
    """Builds chained records in memory; the caller persists them (in batches) in order."""

    __slots__ = ("_hash", "_mac", "_seq")

    def __init__(self, key: bytes, last_seq: int = 0, last_hash: str = GENESIS) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"audit key must be at least {KEY_BYTES} bytes (got {len(key)})")
        self._mac = _Keyed(key)
        self._seq = last_seq
        self._hash = last_hash

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def last_hash(self) -> str:
        return self._hash

    def append(self, ts_us: int, actor: str, kind: str, payload: object) -> AuditRecord:
        """Chain one event. Raises before advancing the chain if the payload cannot be encoded."""
        if "|" in actor or "|" in kind:
            raise ValueError(f"audit actor/kind may not contain '|': {actor!r}, {kind!r}")
        body = _ENCODER.encode(payload)
        seq = self._seq + 1
        prev = self._hash
        h = self._mac.hexdigest(f"{seq}|{ts_us}|{actor}|{kind}|{prev}|".encode() + body)
        self._seq = seq
        self._hash = h
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (~100 ns on the order path).
        return _new_record(AuditRecord, (seq, ts_us, actor, kind, body.decode(), prev, h))


class _Verifier:
    """Incremental checker so a DB can be streamed in chunks without holding all rows."""

    __slots__ = (
        "checked",
        "expected_seq",
        "failure",
        "mac",
        "prev_hash",
        "watch_hash",
        "watch_seq",
    )

    def __init__(self, key: bytes, watch_seq: int | None = None) -> None:
        self.mac = _Keyed(key)
        self.expected_seq = 1
        self.prev_hash = GENESIS
        self.checked = 0
        self.failure: VerifyResult | None = None
        # The hash found at the external head's seq, captured in passing.
        self.watch_seq = watch_seq
        self.watch_hash: str | None = None

    def _fail(self, seq: int, reason: str) -> bool:
        self.failure = VerifyResult(False, self.checked, seq, reason)
        return False

    def feed(self, rows: Iterable[tuple[int, int, str, str, str, str, str]]) -> bool:
        """Check rows in order; returns False (and sets ``failure``) at the first bad row."""
        mac = self.mac
        for seq, ts_us, actor, kind, payload, prev_hash, row_hash in rows:
            expected = self.expected_seq
            if seq != expected:
                if seq > expected:
                    last = expected - 1
                    return self._fail(
                        expected, f"row seq={expected}: missing (seq jumps {last} -> {seq})"
                    )
                return self._fail(
                    seq, f"row seq={seq}: out of order or duplicate (expected seq={expected})"
                )
            if prev_hash != self.prev_hash:
                what = "GENESIS" if seq == 1 else f"hash of row seq={seq - 1}"
                return self._fail(
                    seq, f"row seq={seq}: prev_hash does not match {what} (chain broken)"
                )
            if "|" in actor or "|" in kind:
                return self._fail(
                    seq, f"row seq={seq}: actor/kind contains '|' (forged field split)"
                )
            want = mac.hexdigest(
                f"{seq}|{ts_us}|{actor}|{kind}|{prev_hash}|".encode() + payload.encode()
            )
            if not hmac.compare_digest(want, row_hash):
                return self._fail(seq, f"row seq={seq}: hash mismatch (payload or fields altered)")
            if seq == self.watch_seq:
                self.watch_hash = row_hash
            self.prev_hash = row_hash
            self.expected_seq = seq + 1
            self.checked += 1
        return True

    def result(self) -> VerifyResult:
        if self.failure is not None:
            return self.failure
        last = self.expected_seq - 1
        return VerifyResult(
            True, self.checked, None, f"ok: {self.checked} rows, chain ends at seq {last}"
        )


def verify_records(
    records: Iterable[tuple[int, int, str, str, str, str, str]], key: bytes
) -> VerifyResult:
    """Verify rows given in seq order: contiguity from 1, prev_hash linkage, HMAC."""
    v = _Verifier(key)
    v.feed(records)
    return v.result()


def verify_db(
    db_path: Path, key: bytes, head: tuple[int, str] | None, *, require_head: bool = True
) -> VerifyResult:
    """Verify ``audit_log`` in a DuckDB file (read-only) and compare it with the external head."""
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except (duckdb.Error, OSError) as exc:
        # DuckDB refuses a read-only open while another process holds the write lock.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return VerifyResult(False, 0, None, f"cannot open {db_path} read-only: {first}")
    try:
        return verify_connection(con, key, head, name=str(db_path), require_head=require_head)
    finally:
        con.close()


def verify_connection(
    con: duckdb.DuckDBPyConnection,
    key: bytes,
    head: tuple[int, str] | None,
    name: str = "DB",
    *,
    require_head: bool = True,
) -> VerifyResult:
    """Verify through an open connection (a running engine verifies its own DB this way).

    A data dir's chain needs its external head: without it a cut-off tail is undetectable, so a
    missing head with rows is a failure (``require_head=False`` for a backup file, which has none).
    """
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit_log'"
    ).fetchone()
    if not found or found[0] == 0:
        return VerifyResult(False, 0, None, f"{name}: no audit_log table")
    head_seq = head[0] if head is not None else None
    v = _Verifier(key, watch_seq=head_seq)
    cur = con.execute(_SELECT_ROWS)
    while True:
        chunk = cur.fetchmany(_FETCH_CHUNK)
        if not chunk or not v.feed(chunk):
            break
    if v.failure is not None:
        return v.failure
    db_end = v.expected_seq - 1
    if head is None and require_head and db_end > 0:
        return VerifyResult(
            False,
            v.checked,
            None,
            f"{name}: external audit head (audit/head.json) missing while the chain holds "
            f"{db_end} rows: tail truncation cannot be ruled out; restore a backup "
            "(`cockpit restore`), which re-anchors the head",
        )
    if head is not None:
        seq, want = head
        if seq > db_end:
            return VerifyResult(
                False,
                v.checked,
                db_end + 1,
                f"DB lost its tail: external head at seq {seq}, DB ends at seq {db_end}",
            )
        got = GENESIS if seq == 0 else v.watch_hash
        if got is None or not hmac.compare_digest(got, want):
            return VerifyResult(
                False,
                v.checked,
                seq,
                f"row seq={seq}: hash differs from the external head (rows rewritten)",
            )
    return v.result()


def verify_from(
    con: duckdb.DuckDBPyConnection, key: bytes, start: tuple[int, str], head: tuple[int, str] | None
) -> str | None:
    """Verify the rows after the checkpoint ``start`` = (seq, hash) of a row verified earlier,
    and the head's row if it lies beyond it: the failure text (naming the row), or None."""
    seq0, hash0 = start
    if seq0:
        row = con.execute("SELECT hash FROM audit_log WHERE seq = ?", [seq0]).fetchone()
        if row is None or not hmac.compare_digest(str(row[0]), hash0):
            return f"row seq={seq0}: differs from the last verified checkpoint (rows rewritten)"
    v = _Verifier(key, watch_seq=head[0] if head is not None and head[0] > seq0 else None)
    v.expected_seq, v.prev_hash = seq0 + 1, hash0
    cur = con.execute(
        "SELECT seq, ts_us, actor, kind, payload, prev_hash, hash FROM audit_log "
        "WHERE seq > ? ORDER BY seq",
        [seq0],
    )
    while True:
        chunk = cur.fetchmany(_FETCH_CHUNK)
        if not chunk or not v.feed(chunk):
            break
    if v.failure is not None:
        return v.failure.reason
    if (head is not None and v.watch_seq is not None) and (
        v.watch_hash is None or not hmac.compare_digest(v.watch_hash, head[1])
    ):
        return f"row seq={head[0]}: hash differs from the external audit head (rows rewritten)"
    return None


def checkpoint_mac(key: bytes, seq: int, last_hash: str) -> str:
    """MAC of a "verified up to (seq, hash)" checkpoint: only the key holder can move it."""
    return _Keyed(key).hexdigest(f"verified|{seq}|{last_hash}".encode())


def tail_state(db_conn: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """Last ``(seq, hash)`` in ``audit_log``, or ``(0, GENESIS)`` when empty: where to continue."""
    row = db_conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return 0, GENESIS
    return int(row[0]), str(row[1])


# --- key --------------------------------------------------------------------------------------


def _check_private(path: Path, allowed: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~allowed & 0o077:
        raise AuditKeyError(
            f"{path} has mode {mode:04o}: group/other may not access it; `chmod {allowed:o} "
            f"{path}` (and consider the key exposed: see docs/DESIGN.md, audit key)"
        )


class AuditKeyError(ValueError):
    """The audit key cannot be used. ``in_env``: the operator's input (``COCKPIT_AUDIT_KEY``) is at
    fault (bad input), else a file in the data dir (storage). The message never holds the key."""

    def __init__(self, message: str, *, in_env: bool = False) -> None:
        super().__init__(message)
        self.in_env = in_env


def key_path(data_dir: Path) -> Path:
    return data_dir / "secrets" / "audit.key"


def _env_key(raw: str) -> bytes:
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        # Never echo the value: it is a secret.
        raise AuditKeyError(
            f"{KEY_ENV} is not valid hex (expected {2 * KEY_BYTES} hex digits); fix or unset it",
            in_env=True,
        ) from None
    if len(key) < KEY_BYTES:
        raise AuditKeyError(
            f"{KEY_ENV} must decode to at least {KEY_BYTES} bytes (got {len(key)})", in_env=True
        )
    return key


def load_key(data_dir: Path, env: Mapping[str, str] | None = None) -> bytes | None:
    """The audit HMAC key from env ``COCKPIT_AUDIT_KEY`` (hex) or ``<data_dir>/secrets/audit.key``;
    None when neither exists (nothing is created: see ``create_key``)."""
    environ = os.environ if env is None else env
    raw = environ.get(KEY_ENV, "").strip()
    if raw:
        return _env_key(raw)
    path = key_path(data_dir)
    if not path.exists():
        return None
    _check_private(path.parent, 0o700)
    _check_private(path, 0o600)
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise AuditKeyError(
            f"{path} holds {len(key)} bytes; an audit key needs {KEY_BYTES}: restore the key "
            "file from your backup of secrets/"
        )
    return key


def load_or_create_key(data_dir: Path, env: Mapping[str, str] | None = None) -> bytes:
    """``load_key``, creating the key file when there is none. Only a fresh data dir may get a new
    key (a new key makes every existing row read as forged): callers check that first.

    The file is created once (32 random bytes, 0600, in a 0700 dir). Creation publishes the file
    with ``os.link`` rather than ``os.replace`` so two processes starting together can never
    overwrite each other's key: the loser reads the winner's.
    """
    key = load_key(data_dir, env)
    if key is not None:
        return key
    sdir = key_path(data_dir).parent
    if not sdir.exists():
        make_private_dir(sdir)
    _check_private(sdir, 0o700)
    path = key_path(data_dir)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=sdir, prefix=".audit.key.", suffix=".tmp")  # 0600
        try:
            os.fchmod(fd, 0o600)
            write_all(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
            os.close(fd)
            fd = -1
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won the race; use its key
            except OSError:
                # Filesystem without hard links: still atomic, last writer wins.
                os.replace(tmp, path)
            fsync_dir(sdir)
        finally:
            if fd >= 0:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
    key = load_key(data_dir, env)
    if key is None:  # not an assert: python -O would drop it
        raise RuntimeError("key is not set: used before start")
    return key


# --- external head ----------------------------------------------------------------------------


class HeadFile:
    """The last committed ``(seq, hash)``, kept outside the DB to detect tail truncation.

    Written after each audit commit (per batch, not per record: every write costs two fsyncs).
    """

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[int, str] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise ValueError(f"malformed audit head file {self.path}: not UTF-8 text") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"malformed audit head file {self.path}: {exc}") from None
        # A non-object document reads as "no seq" and is reported as malformed below.
        fields = data if isinstance(data, dict) else {}
        seq, h = fields.get("seq"), fields.get("hash")
        if type(seq) is not int or seq < 0:
            raise ValueError(f"malformed audit head file {self.path}: bad seq {seq!r}")
        if not isinstance(h, str) or not _HEX64.fullmatch(h):
            raise ValueError(f"malformed audit head file {self.path}: bad hash")
        return seq, h

    def write(self, seq: int, hash: str) -> None:
        directory = self.path.parent
        if not directory.exists():
            make_private_dir(directory)
        write_private_atomic(self.path, json.dumps({"seq": seq, "hash": hash}).encode() + b"\n")
