"""Issue 12 item 2: backup and restore never destroy data (live DB, WAL, key, head, any file)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from engine.runtime.control import call
from engine.store.intent_journal import IntentJournal
from tests.acceptance.helpers import query, run, start, wait_for_log


def _snapshot(d: Path) -> dict[str, tuple[int, bytes]]:
    """Inode and bytes of every file an operator could lose."""
    names = ("cockpit.duckdb", "secrets/audit.key", "audit/head.json")
    return {n: ((d / n).stat().st_ino, (d / n).read_bytes()) for n in names}


def test_backup_when_out_is_the_live_db_while_running_then_refused_and_no_order_lost(
    data_dir: Path, profile: str
) -> None:
    d = data_dir
    p = start("--headless", "--profile", profile, "--data-dir", str(d))
    try:
        wait_for_log(d, "engine running")
        ino = (d / "cockpit.duckdb").stat().st_ino
        res = run("backup", "--data-dir", str(d), "--out", str(d / "cockpit.duckdb"))
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        assert "backups" in res.stderr
        assert (d / "cockpit.duckdb").stat().st_ino == ino
        wait_for_log(d, "order submitted")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    # the next start is not refused, and the run's orders are all there
    again = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert again.returncode == 0, again.stderr
    assert query(d, "SELECT count(*) FROM orders")[0][0] > 0


@pytest.mark.parametrize(
    "target",
    [
        "cockpit.duckdb",
        "cockpit.duckdb.wal",
        "secrets/audit.key",
        "audit/head.json",
        "journal/intents.bin",
        "fresh.duckdb",
        "logs/new.duckdb",
    ],
)
def test_backup_when_out_is_inside_the_data_dir_then_refused_and_nothing_changed(
    data_dir: Path, target: str
) -> None:
    d = data_dir
    before = _snapshot(d)
    res = run("backup", "--data-dir", str(d), "--out", str(d / target))
    assert res.returncode == 2, res.stderr
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1
    assert str(d / "backups") in line
    assert _snapshot(d) == before
    assert not (d / "fresh.duckdb").exists()
    assert not (d / "logs" / "new.duckdb").exists()


def test_backup_when_out_exists_then_refused_and_file_unchanged(
    data_dir: Path, tmp_path: Path
) -> None:
    precious = tmp_path / "precious.duckdb"
    precious.write_bytes(b"someone else's file")
    res = run("backup", "--data-dir", str(data_dir), "--out", str(precious))
    assert res.returncode == 2, res.stderr
    assert "exists" in res.stderr, res.stderr
    assert precious.read_bytes() == b"someone else's file"
    inside = data_dir / "backups" / "b1.duckdb"
    assert run("backup", "--data-dir", str(data_dir), "--out", str(inside)).returncode == 0
    first = inside.read_bytes()
    assert run("backup", "--data-dir", str(data_dir), "--out", str(inside)).returncode == 2
    assert inside.read_bytes() == first


def test_backup_when_control_socket_asked_for_key_or_existing_file_then_refused(
    data_dir: Path, profile: str, tmp_path: Path
) -> None:
    d = data_dir
    p = start("--headless", "--profile", profile, "--data-dir", str(d))
    try:
        wait_for_log(d, "engine running")
        key = (d / "secrets" / "audit.key").read_bytes()
        other = tmp_path / "other.txt"
        other.write_text("keep me")
        for out in (d / "secrets" / "audit.key", d / "audit" / "head.json", other, "rel.duckdb"):
            with pytest.raises(RuntimeError):
                call(d, "backup", {"out": str(out)})
        assert (d / "secrets" / "audit.key").read_bytes() == key
        assert other.read_text() == "keep me"
        ok = call(d, "backup", {"out": str(tmp_path / "new.duckdb")})
        assert ok["backup"] == str(tmp_path / "new.duckdb")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0


@pytest.mark.parametrize("via", ["db", "symlink", "wal"])
def test_restore_when_backup_is_the_live_db_then_refused_before_touching_anything(
    data_dir: Path, tmp_path: Path, via: str
) -> None:
    d = data_dir
    if via == "wal":
        (d / "cockpit.duckdb.wal").write_bytes(b"")
    src = {
        "db": d / "cockpit.duckdb",
        "wal": d / "cockpit.duckdb.wal",
        "symlink": tmp_path / "looks-like-a-backup.duckdb",
    }[via]
    if via == "symlink":
        os.symlink(d / "cockpit.duckdb", src)
    before = _snapshot(d)
    res = run("restore", "--data-dir", str(d), str(src))
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "live" in res.stderr
    assert _snapshot(d) == before
    assert not list(d.glob("cockpit.duckdb.replaced-*"))


def test_restore_when_journal_holds_a_later_session_then_numbering_continues_above_it(
    data_dir: Path, profile: str, tmp_path: Path
) -> None:
    """Intents of a session the backup never saw may be orders at the venue: their client ids
    must never be minted again, and the journal must not make the restored DB unstartable."""
    d = data_dir
    b = tmp_path / "b.duckdb"
    assert run("backup", "--data-dir", str(d), "--out", str(b)).returncode == 0
    j = IntentJournal(d / "journal" / "intents.bin")
    j.append_durable(("ck-2s-1.0", "ck-2s-1", "BTC/USDT", "buy", "market", 1000, 0, 1))
    j.close()
    res = run("restore", "--data-dir", str(d), str(b))
    assert res.returncode == 0, res.stderr
    assert query(d, "SELECT value FROM engine_state WHERE key = 'session'") == [("100",)]
    again = run("--headless", "--profile", profile, "--duration", "1", "--data-dir", str(d))
    assert again.returncode == 0, again.stderr
    assert query(d, "SELECT value FROM engine_state WHERE key = 'session'") == [("101",)]
