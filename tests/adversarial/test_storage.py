"""Issue 12 items 3 and 9 (storage): a damaged WAL, DB, head, key or journal is refused or kept
aside with one line naming the file and the remedy, never silently dropped; a full disk is exit 4
and a halt survives the restart."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.runtime.control import call
from engine.store.intent_journal import _HEADER, IntentJournal
from tests.acceptance.helpers import query, run, start, wait_for_log
from tests.conftest import fill_disk

RESTORE = "cockpit restore --data-dir"


def _one_line(res: subprocess.CompletedProcess[str]) -> str:
    err = res.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    return err


def _killed_mid_run(d: Path, profile: str) -> bytes:
    """SIGKILL an engine that committed rows since its last checkpoint: the WAL holds them."""
    p = start("--headless", "--profile", profile, "--data-dir", str(d))
    wait_for_log(d, "order submitted")
    time.sleep(1.0)  # several 50 ms batches committed
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    wal = d / "cockpit.duckdb.wal"
    assert wal.exists()
    assert wal.stat().st_size > 0
    return wal.read_bytes()


def _damage_header(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    data[:16] = b"X" * 16
    path.write_bytes(bytes(data))
    return bytes(data)


def test_start_when_wal_header_damaged_then_refused_wal_kept_and_nothing_lost(
    data_dir: Path, profile: str
) -> None:
    d = data_dir
    good = _killed_mid_run(d, profile)
    damaged = _damage_header(d / "cockpit.duckdb.wal")
    res = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert res.returncode == 4, res.stderr
    line = _one_line(res)
    assert RESTORE in line
    assert "cockpit.duckdb" in line
    kept = list(d.glob("cockpit.duckdb.wal.corrupt.*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == damaged
    assert kept[0].name in line
    # the refused start changed nothing: with the good WAL back, every committed row is there
    (d / "cockpit.duckdb.wal").write_bytes(good)
    ok = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert ok.returncode == 0, ok.stderr
    assert run("audit", "verify", "--data-dir", str(d)).returncode == 0


def test_start_when_wal_damaged_and_head_missing_then_refused_not_started_empty(
    data_dir: Path, profile: str
) -> None:
    d = data_dir
    _killed_mid_run(d, profile)
    _damage_header(d / "cockpit.duckdb.wal")
    (d / "audit" / "head.json").unlink()
    res = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert res.returncode == 4, res.stderr
    line = _one_line(res)
    assert "head.json" in line
    assert RESTORE in line
    assert list(d.glob("cockpit.duckdb.wal.corrupt.*"))


def test_start_when_db_older_than_intent_journal_then_refused(data_dir: Path, profile: str) -> None:
    d = data_dir
    j = IntentJournal(d / "journal" / "intents.bin")
    j.append_durable(("ck-2s-1.0", "ck-2s-1", "BTC/USDT", "buy", "market", 1000, 0, 1))
    j.close()
    before = (d / "cockpit.duckdb").read_bytes()
    res = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert res.returncode == 4, res.stderr
    line = _one_line(res)
    assert "intent journal" in line
    assert RESTORE in line
    assert (d / "cockpit.duckdb").read_bytes() == before


@pytest.mark.parametrize(
    ("damage", "code", "names"),
    [
        ("key_0644", 4, "audit.key"),
        ("head_malformed", 4, "head.json"),
        ("head_binary", 4, "head.json"),
        ("env_key_zz", 2, "COCKPIT_AUDIT_KEY"),
    ],
)
def test_start_when_key_or_head_damaged_then_one_line_with_code(
    data_dir: Path, profile: str, damage: str, code: int, names: str
) -> None:
    d = data_dir
    env = {}
    if damage == "key_0644":
        os.chmod(d / "secrets" / "audit.key", 0o644)
    elif damage == "head_malformed":
        (d / "audit" / "head.json").write_text('{"seq": 3, "hash": ')
    elif damage == "head_binary":
        (d / "audit" / "head.json").write_bytes(b"\xff\xfe\x00garbage")
    else:
        env["COCKPIT_AUDIT_KEY"] = "zz"
    res = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d), **env)
    assert res.returncode == code, res.stderr
    assert names in _one_line(res)


def _corrupt_blocks(db: Path, chunks: int = 24) -> None:
    rnd = random.Random(12)
    size = db.stat().st_size
    with open(db, "r+b") as f:
        for _ in range(chunks):
            f.seek(rnd.randrange(3 * 4096, size - 4096) // 4096 * 4096)
            f.write(rnd.randbytes(4096))


@pytest.mark.parametrize("damage", ["truncated", "blocks"])
def test_commands_when_db_damaged_then_one_line_with_restore_and_code(
    data_dir: Path, profile: str, tmp_path: Path, damage: str
) -> None:
    d = data_dir
    db = d / "cockpit.duckdb"
    if damage == "truncated":
        os.truncate(db, db.stat().st_size // 2)
    else:
        _corrupt_blocks(db)
    started = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert started.returncode == 4, started.stderr
    assert RESTORE in _one_line(started)
    for cmd in (["reconcile"], ["backup", "--out", str(tmp_path / "b.duckdb")]):
        res = run(*cmd, "--data-dir", str(d))
        assert res.returncode == 4, (cmd, res.stderr)
        assert RESTORE in _one_line(res)
    health = run("healthcheck", "--data-dir", str(d))
    assert health.returncode == 2, health.stderr
    assert "Traceback" not in health.stderr
    assert "database" in health.stdout


def test_start_when_journal_has_crc_valid_malformed_record_then_quarantined_and_started(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    first = run("--headless", "--profile", "testnet", "--duration", "2", "--data-dir", str(d))
    assert first.returncode == 0, first.stderr
    jpath = d / "journal" / "intents.bin"
    import zlib

    import msgspec

    payload = msgspec.msgpack.encode(["ck-1-zz.0", 42])  # CRC-valid, not an intent
    jpath.write_bytes(
        jpath.read_bytes() + _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
    )
    res = run("--headless", "--profile", "testnet", "--duration", "2", "--data-dir", str(d))
    assert res.returncode == 0, res.stderr
    line = [ln for ln in res.stderr.splitlines() if "intents.bin" in ln]
    assert len(line) == 1, res.stderr
    assert "moved to" in line[0], res.stderr
    aside = list(d.glob("journal/intents.bin.corrupt.*"))
    assert len(aside) == 1
    assert payload in aside[0].read_bytes()
    again = run("--headless", "--profile", "testnet", "--duration", "1", "--data-dir", str(d))
    assert again.returncode == 0, again.stderr
    assert "intents.bin" not in again.stderr, again.stderr


# --- a full disk (a real, small tmpfs) -------------------------------------------------------


@pytest.fixture
def small_fs(tmpfs: Callable[..., Path]) -> Path:
    return tmpfs("24m")


def test_start_when_disk_full_then_exit4_naming_file(small_fs: Path, profile: str) -> None:
    d = small_fs / "d"
    first = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert first.returncode == 0, first.stderr
    fill_disk(small_fs)
    res = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert res.returncode == 4, res.stderr
    line = _one_line(res)
    assert str(d) in line
    assert "space" in line.lower()
    assert "cannot rollback" not in line


def test_run_when_disk_fills_then_halts_quietly_and_restart_comes_up_armed(
    small_fs: Path, profile: str
) -> None:
    d = small_fs / "d"
    p = start("--headless", "--profile", profile, "--data-dir", str(d))
    try:
        wait_for_log(d, "order submitted")
        filler = fill_disk(small_fs)
        deadline = time.monotonic() + 30
        while not call(d, "status")["kill_switch"]:
            assert time.monotonic() < deadline, "no halt after the disk filled"
            time.sleep(0.2)
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert err.count("Traceback") == 0, err[:2000]
    assert len(err.splitlines()) <= 3, err[:2000]
    filler.unlink()
    again = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert again.returncode == 0, again.stderr
    state = dict(query(d, "SELECT key, value FROM engine_state"))
    assert state["kill_switch"] == "1"
    assert "halted" in state["kill_reason"]
