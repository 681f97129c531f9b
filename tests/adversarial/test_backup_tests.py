"""Backups under attack: a damaged backup fails its restore test (and the preflight record says
so), a damaged DB fails `cockpit db check` with the remedy, and retention never touches an
operator's own backups."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from engine.runtime.backups import (
    SCHEDULED_PREFIX,
    prune_scheduled,
    record_restore_test,
    recorded_restore_test,
)
from tests.acceptance.helpers import run
from tests.adversarial.test_storage import _corrupt_blocks


def _backup(d: Path) -> Path:
    res = run("backup", "--data-dir", str(d), "--json")
    assert res.returncode == 0, res.stderr
    return Path(json.loads(res.stdout)["backup"])


@pytest.mark.parametrize("damage", ["truncated", "blocks", "tampered"])
def test_restore_test_when_backup_damaged_then_exit_1_recorded_and_live_db_untouched(
    data_dir: Path, damage: str
) -> None:
    import duckdb

    d = data_dir
    backup = _backup(d)
    if damage == "truncated":
        os.truncate(backup, backup.stat().st_size // 2)
    elif damage == "blocks":
        _corrupt_blocks(backup)
    else:
        con = duckdb.connect(str(backup))
        con.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        con.close()
    live = (d / "cockpit.duckdb").read_bytes()
    res = run("restore", "--test", "--data-dir", str(d), "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    result = json.loads(res.stdout)
    assert not result["ok"]
    assert result["reason"]
    assert recorded_restore_test(backup) == result  # the preflight reads this verdict
    assert (d / "cockpit.duckdb").read_bytes() == live


def test_db_check_when_blocks_damaged_then_exit_1_names_newest_backup(data_dir: Path) -> None:
    d = data_dir
    backup = _backup(d)
    _corrupt_blocks(d / "cockpit.duckdb")
    res = run("db", "check", "--data-dir", str(d))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "DAMAGED" in res.stdout
    assert f"cockpit restore --test {backup}" in res.stdout
    assert "Traceback" not in res.stderr
    ok = run("db", "check", "--data-dir", str(d), "--json")
    assert json.loads(ok.stdout)["remedy"]


def test_restore_test_record_when_backup_replaced_then_not_trusted(tmp_path: Path) -> None:
    b = tmp_path / "scheduled-x.duckdb"
    b.write_bytes(b"x" * 10)
    st = b.stat()
    record_restore_test({"backup": str(b), "ok": True, "reason": "fine", "backup_size": st.st_size,
                         "backup_mtime_ns": st.st_mtime_ns})  # fmt: skip
    assert recorded_restore_test(b) is not None
    b.write_bytes(b"y" * 11)  # another file under the same name: its old verdict does not count
    assert recorded_restore_test(b) is None


def test_prune_when_more_scheduled_than_kept_then_only_oldest_scheduled_go(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "backups").mkdir(parents=True)
    names = [f"{SCHEDULED_PREFIX}2026120{i}T000000Z.duckdb" for i in range(1, 6)]
    for i, name in enumerate([*names, "cockpit-20261201T000000Z.duckdb", "mine.duckdb"]):
        p = d / "backups" / name
        p.write_bytes(b"b")
        os.utime(p, (1_000_000 + i, 1_000_000 + i))
    gone = prune_scheduled(d, 2)
    assert [p.name for p in gone] == names[:3]
    left = sorted(p.name for p in (d / "backups").iterdir())
    assert left == sorted([*names[3:], "cockpit-20261201T000000Z.duckdb", "mine.duckdb"])
    shutil.rmtree(d)
