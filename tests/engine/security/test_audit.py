"""Tests for engine.audit: chain building, tamper detection, DuckDB verification, key and head."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import polars as pl
import pytest

from engine.security.audit import (
    AUDIT_TABLE_DDL,
    GENESIS,
    KEY_ENV,
    AuditChain,
    AuditRecord,
    HeadFile,
    load_or_create_key,
    tail_state,
    verify_db,
    verify_records,
)

KEY = bytes(range(32))
INSERT = "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)"


class Fill(msgspec.Struct):
    order_id: str
    qty_e8: int


def _chain(n: int, key: bytes = KEY) -> list[AuditRecord]:
    chain = AuditChain(key)
    return [
        chain.append(1_700_000_000_000_000 + i, "engine", "order", {"i": i, "sym": "BTC/USDT"})
        for i in range(n)
    ]


def _db(path: Path, records: list[AuditRecord]) -> Path:
    con = duckdb.connect(str(path))
    con.execute(AUDIT_TABLE_DDL)
    if records:
        # executemany costs ~1 ms per row in DuckDB; a frame insert is the realistic batch path.
        frame = pl.DataFrame(records, schema=list(AuditRecord._fields), orient="row")
        con.register("frame", frame)
        con.execute("INSERT INTO audit_log SELECT * FROM frame")
    con.close()
    return path


def test_append_when_first_record_then_links_genesis_and_hash_is_documented_hmac() -> None:
    rec = AuditChain(KEY).append(123, "alice", "risk.reset", {"b": 2, "a": "x"})
    assert rec.seq == 1
    assert rec.prev_hash == GENESIS
    # Keys are sorted, so the hash does not depend on dict insertion order.
    assert rec.payload == '{"a":"x","b":2}'
    msg = b"1|123|alice|risk.reset|" + GENESIS.encode() + b"|" + rec.payload.encode()
    assert rec.hash == hmac.digest(KEY, msg, "sha256").hex()


@pytest.mark.parametrize("key_len", [32, 64, 65, 200])
def test_append_when_key_of_any_length_then_matches_stdlib_hmac(key_len: int) -> None:
    key = hashlib.sha512(str(key_len).encode()).digest() * 4
    key = key[:key_len]
    rec = AuditChain(key).append(5, "a", "k", [1, 2])
    msg = f"1|5|a|k|{GENESIS}|".encode() + b"[1,2]"
    assert rec.hash == hmac.digest(key, msg, "sha256").hex()


def test_append_when_payloads_equal_but_dict_order_differs_then_same_hash() -> None:
    r1 = AuditChain(KEY).append(1, "a", "k", {"x": 1, "y": 2})
    r2 = AuditChain(KEY).append(1, "a", "k", {"y": 2, "x": 1})
    assert r1.hash == r2.hash


def test_append_when_struct_payload_then_encoded_as_json_object() -> None:
    rec = AuditChain(KEY).append(1, "engine", "fill", Fill("o-1", 5))
    assert msgspec.json.decode(rec.payload) == {"order_id": "o-1", "qty_e8": 5}


def test_append_when_many_then_seq_contiguous_and_each_links_previous() -> None:
    recs = _chain(50)
    assert [r.seq for r in recs] == list(range(1, 51))
    for prev, cur in itertools.pairwise(recs):
        assert cur.prev_hash == prev.hash
    assert verify_records(recs, KEY) == (True, 50, None, "ok: 50 rows, chain ends at seq 50")


def test_append_when_continuing_from_tail_then_chain_verifies_whole() -> None:
    first = _chain(3)
    chain = AuditChain(KEY, last_seq=first[-1].seq, last_hash=first[-1].hash)
    more = [chain.append(10 + i, "op", "x", {"i": i}) for i in range(2)]
    assert chain.last_seq == 5
    assert chain.last_hash == more[-1].hash
    assert verify_records(first + more, KEY).ok


def test_append_when_actor_contains_separator_then_rejected_without_advancing() -> None:
    chain = AuditChain(KEY)
    with pytest.raises(ValueError, match="may not contain"):
        chain.append(1, "a|b", "k", {})
    assert chain.last_seq == 0
    assert chain.last_hash == GENESIS


def test_append_when_payload_unencodable_then_raises_and_chain_unchanged() -> None:
    chain = AuditChain(KEY)
    with pytest.raises(TypeError):
        chain.append(1, "a", "k", object())
    assert chain.last_seq == 0


def test_init_when_key_too_short_then_value_error() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AuditChain(b"short")


def _tamper(recs: list[AuditRecord], idx: int, **changes: Any) -> list[tuple]:
    rows: list[tuple] = list(recs)
    rows[idx] = recs[idx]._replace(**changes)
    return rows


def test_verify_when_payload_edited_then_names_that_row() -> None:
    recs = _chain(20)
    res = verify_records(_tamper(recs, 16, payload='{"i":999,"sym":"BTC/USDT"}'), KEY)
    assert res == (False, 16, 17, "row seq=17: hash mismatch (payload or fields altered)")


@pytest.mark.parametrize("field", ["ts_us", "actor", "kind"])
def test_verify_when_field_edited_then_hash_mismatch(field: str) -> None:
    recs = _chain(5)
    value = {"ts_us": 1, "actor": "mallory", "kind": "noop"}[field]
    res = verify_records(_tamper(recs, 2, **{field: value}), KEY)
    assert not res.ok
    assert res.first_bad_seq == 3
    assert "hash mismatch" in res.reason


def test_verify_when_row_deleted_then_reports_missing_seq() -> None:
    recs = _chain(12)
    del recs[8]
    res = verify_records(recs, KEY)
    assert res == (False, 8, 9, "row seq=9: missing (seq jumps 8 -> 10)")


def test_verify_when_row_rehashed_without_key_then_next_link_breaks() -> None:
    recs = _chain(6)
    # An attacker edits row 3 and recomputes its hash with a guessed key; row 3 fails on HMAC.
    forged = AuditChain(b"\x01" * 32, last_seq=2, last_hash=recs[1].hash).append(
        recs[2].ts_us, "engine", "order", {"i": 1000}
    )
    rows: list[tuple] = [*recs[:2], forged, *recs[3:]]
    res = verify_records(rows, KEY)
    assert res.first_bad_seq == 3
    assert "hash mismatch" in res.reason


def test_verify_when_prev_hash_edited_then_chain_broken() -> None:
    recs = _chain(4)
    res = verify_records(_tamper(recs, 2, prev_hash="f" * 64), KEY)
    assert res.first_bad_seq == 3
    assert res.reason == "row seq=3: prev_hash does not match hash of row seq=2 (chain broken)"


def test_verify_when_first_row_not_seq_1_then_missing() -> None:
    res = verify_records(_chain(3)[1:], KEY)
    assert res == (False, 0, 1, "row seq=1: missing (seq jumps 0 -> 2)")


def test_verify_when_duplicate_row_then_reported() -> None:
    recs = _chain(3)
    res = verify_records([recs[0], recs[1], recs[1], recs[2]], KEY)
    assert not res.ok
    assert res.first_bad_seq == 2
    assert "duplicate" in res.reason


def test_verify_when_wrong_key_then_first_row_fails() -> None:
    res = verify_records(_chain(3), b"\xff" * 32)
    assert res.first_bad_seq == 1
    assert not res.ok


def test_verify_db_when_intact_with_matching_head_then_ok(tmp_path: Path) -> None:
    recs = _chain(25_000)  # more than one fetchmany chunk
    db = _db(tmp_path / "c.duckdb", recs)
    res = verify_db(db, KEY, (recs[-1].seq, recs[-1].hash))
    assert res.ok
    assert res.checked == 25_000
    # Head may lag the DB (written after commit): an older head that matches is fine.
    assert verify_db(db, KEY, (recs[100].seq, recs[100].hash)).ok


def test_verify_db_when_payload_updated_in_place_then_names_row(tmp_path: Path) -> None:
    db = _db(tmp_path / "c.duckdb", _chain(30))
    con = duckdb.connect(str(db))
    con.execute("UPDATE audit_log SET payload = '{\"i\":0}' WHERE seq = 17")
    con.close()
    res = verify_db(db, KEY, None)
    assert (res.ok, res.first_bad_seq) == (False, 17)
    assert res.reason == "row seq=17: hash mismatch (payload or fields altered)"


def test_verify_db_when_tail_truncated_then_head_detects_it(tmp_path: Path) -> None:
    recs = _chain(10)
    db = _db(tmp_path / "c.duckdb", recs)
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM audit_log WHERE seq > 7")
    con.close()
    # the chain alone cannot see a cut tail (a data dir's verify requires the head: see below)
    assert verify_db(db, KEY, None, require_head=False).ok
    assert not verify_db(db, KEY, None).ok
    res = verify_db(db, KEY, (10, recs[-1].hash))
    assert not res.ok
    assert res.reason == "DB lost its tail: external head at seq 10, DB ends at seq 7"


def test_verify_db_when_hash_at_head_seq_differs_then_names_seq(tmp_path: Path) -> None:
    recs = _chain(5)
    db = _db(tmp_path / "c.duckdb", recs)
    res = verify_db(db, KEY, (4, "a" * 64))
    assert (res.ok, res.first_bad_seq) == (False, 4)
    assert "seq=4" in res.reason
    assert "external head" in res.reason


def test_verify_db_when_no_table_then_clear_failure(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    res = verify_db(path, KEY, None)
    assert not res.ok
    assert "no audit_log table" in res.reason


def test_verify_db_when_empty_chain_and_no_head_then_ok(tmp_path: Path) -> None:
    res = verify_db(_db(tmp_path / "c.duckdb", []), KEY, None)
    assert res.ok
    assert res.checked == 0


def test_verify_db_when_empty_chain_but_head_ahead_then_lost_tail(tmp_path: Path) -> None:
    res = verify_db(_db(tmp_path / "c.duckdb", []), KEY, (3, "b" * 64))
    assert not res.ok
    assert "DB ends at seq 0" in res.reason


def _hold_db(db: Path, read_only: bool) -> subprocess.Popen[str]:
    """A second process holding a connection, like another verifier or the running engine."""
    code = (
        "import sys, duckdb\n"
        f"con = duckdb.connect({str(db)!r}, read_only={read_only})\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_verify_db_when_other_process_reads_then_still_verifies_read_only(tmp_path: Path) -> None:
    db = _db(tmp_path / "c.duckdb", _chain(10))
    before = db.read_bytes()
    # A read-only holder takes DuckDB's shared file lock: only another read-only open succeeds.
    proc = _hold_db(db, read_only=True)
    try:
        res = verify_db(db, KEY, None, require_head=False)
    finally:
        proc.communicate("\n", timeout=10)
    assert res.ok, res.reason
    assert db.read_bytes() == before


def test_verify_db_when_engine_holds_db_then_cannot_open_one_line(tmp_path: Path) -> None:
    db = _db(tmp_path / "c.duckdb", _chain(3))
    proc = _hold_db(db, read_only=False)
    try:
        res = verify_db(db, KEY, None)
    finally:
        proc.communicate("\n", timeout=10)
    assert not res.ok
    assert res.reason.startswith("cannot open")
    assert "\n" not in res.reason


def test_verify_db_when_file_missing_then_not_ok(tmp_path: Path) -> None:
    res = verify_db(tmp_path / "nope.duckdb", KEY, None)
    assert not res.ok
    assert "cannot open" in res.reason
    assert "\n" not in res.reason


def test_tail_state_when_empty_then_genesis_else_last_row(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    con.execute(AUDIT_TABLE_DDL)
    assert tail_state(con) == (0, GENESIS)
    recs = _chain(4)
    con.executemany(INSERT, recs)
    assert tail_state(con) == (4, recs[-1].hash)
    con.close()


def test_load_key_when_absent_then_creates_private_file_and_reuses_it(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, env={})
    path = tmp_path / "secrets" / "audit.key"
    assert len(key) == 32
    assert path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_key(tmp_path, env={}) == key
    assert [p.name for p in path.parent.iterdir()] == ["audit.key"]  # no temp left


def test_load_key_when_created_under_permissive_umask_then_still_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_key(tmp_path, env={})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secrets" / "audit.key").stat().st_mode) == 0o600


def test_load_key_when_file_group_readable_then_value_error_names_file(tmp_path: Path) -> None:
    load_or_create_key(tmp_path, env={})
    path = tmp_path / "secrets" / "audit.key"
    os.chmod(path, 0o640)
    with pytest.raises(ValueError, match=r"audit\.key has mode 0640"):
        load_or_create_key(tmp_path, env={})


def test_load_key_when_env_hex_then_used_and_no_file(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, env={KEY_ENV: "ab" * 32})
    assert key == b"\xab" * 32
    assert not (tmp_path / "secrets").exists()


@pytest.mark.parametrize(
    ("value", "match"),
    [("zz" * 32, "not valid hex"), ("ab" * 16, "at least 32 bytes")],
)
def test_load_key_when_env_bad_then_one_line_error_without_secret(
    tmp_path: Path, value: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match) as info:
        load_or_create_key(tmp_path, env={KEY_ENV: value})
    msg = str(info.value)
    assert KEY_ENV in msg
    assert value not in msg
    assert "\n" not in msg


def test_head_when_missing_then_none_and_after_write_round_trips(tmp_path: Path) -> None:
    head = HeadFile(tmp_path / "audit" / "head.json")
    assert head.read() is None
    head.write(7, "c" * 64)
    assert head.read() == (7, "c" * 64)
    head.write(8, "d" * 64)
    assert head.read() == (8, "d" * 64)
    assert stat.S_IMODE(head.path.stat().st_mode) == 0o600
    assert [p.name for p in head.path.parent.iterdir()] == ["head.json"]


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"seq": "3", "hash": "' + "a" * 64 + '"}', '{"seq": 3, "hash": "xyz"}']
)
def test_head_when_malformed_then_value_error_names_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "head.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"malformed audit head file .*head\.json"):
        HeadFile(path).read()


def test_load_key_when_processes_race_to_create_then_all_get_the_same_key(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path\n"
        "from engine.security.audit import load_or_create_key\n"
        "sys.stdin.readline()\n"  # released together to maximise the race
        "print(load_or_create_key(Path(sys.argv[1]), env={}).hex())\n"
    )
    root = str(Path(__file__).resolve().parents[3])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": root},
        )
        for _ in range(8)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    keys = {p.communicate(timeout=30)[0].strip() for p in procs}
    assert keys == {(tmp_path / "secrets" / "audit.key").read_bytes().hex()}
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == ["audit.key"]


def test_load_key_when_secrets_dir_world_readable_then_value_error(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir(mode=0o755)
    os.chmod(tmp_path / "secrets", 0o755)
    with pytest.raises(ValueError, match="secrets has mode 0755"):
        load_or_create_key(tmp_path, env={})
