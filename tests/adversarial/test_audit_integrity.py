"""Issue 12 item 5: the engine never trades on an audit chain it cannot vouch for."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.acceptance.helpers import query, run

RESTORE = "cockpit restore --data-dir"


def _start(d: Path, profile: str, duration: str = "1"):
    return run("--headless", "--profile", profile, "--duration", duration, "--data-dir", str(d))


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def _sql(d: Path, sql: str) -> None:
    con = duckdb.connect(str(d / "cockpit.duckdb"))
    try:
        con.execute(sql)
    finally:
        con.close()


def test_start_when_audit_row_tampered_then_refused_naming_the_row(
    data_dir: Path, profile: str
) -> None:
    d = data_dir
    n = query(d, "SELECT count(*) FROM orders")[0][0]
    _sql(
        d,
        "UPDATE audit_log SET payload = replace(payload, 'buy', 'sell') "
        "WHERE seq = (SELECT min(seq) FROM audit_log WHERE kind = 'order_submitted')",
    )
    bad = query(d, "SELECT min(seq) FROM audit_log WHERE kind = 'order_submitted'")[0][0]
    res = _start(d, profile)
    assert res.returncode == 4, res.stderr
    line = _one_line(res.stderr)
    assert f"seq={bad}" in line
    assert RESTORE in line
    assert query(d, "SELECT count(*) FROM orders")[0][0] == n  # it did not trade


def test_start_when_checkpoint_forged_past_tampered_row_then_still_refused(
    data_dir: Path, profile: str
) -> None:
    d = data_dir
    assert _start(d, profile).returncode == 0  # a start verified everything: checkpoint set
    last = query(d, "SELECT max(seq), max_by(hash, seq) FROM audit_log")[0]
    _sql(d, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    _sql(
        d,
        f"UPDATE engine_state SET value = '{last[0]}:{last[1]}:{'0' * 64}' "
        "WHERE key = 'audit_verified'",
    )
    res = _start(d, profile)
    assert res.returncode == 4, res.stderr
    assert "seq=3" in _one_line(res.stderr), res.stderr


def test_verify_and_start_when_head_deleted_then_error_not_intact(
    data_dir: Path, profile: str
) -> None:
    d = data_dir
    (d / "audit" / "head.json").unlink()
    verify = run("audit", "verify", "--data-dir", str(d))
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "intact" not in verify.stdout
    assert "head" in verify.stdout
    res = _start(d, profile)
    assert res.returncode == 4, res.stderr
    line = _one_line(res.stderr)
    assert "head.json" in line
    assert RESTORE in line
    assert not (d / "audit" / "head.json").exists()


@pytest.mark.parametrize("mode", ["--headless", "tui"])
def test_start_when_audit_key_deleted_then_refused_and_no_new_key(
    data_dir: Path, profile: str, mode: str
) -> None:
    d = data_dir
    (d / "secrets" / "audit.key").unlink()
    args = ["--profile", profile, "--duration", "1", "--data-dir", str(d)]
    res = run(*args, *([mode] if mode == "--headless" else []))
    assert res.returncode == 4, res.stderr
    line = _one_line(res.stderr)
    assert "audit.key" in line
    assert "Error:" not in line
    assert not (d / "secrets" / "audit.key").exists()


def test_start_when_fresh_data_dir_then_key_created_and_restart_verifies(
    tmp_path: Path, profile: str
) -> None:
    d = tmp_path / "fresh"
    assert _start(d, profile).returncode == 0
    assert (d / "secrets" / "audit.key").exists()
    assert _start(d, profile).returncode == 0
    state = dict(query(d, "SELECT key, value FROM engine_state"))
    seq = int(state["audit_verified"].split(":")[0])
    assert 0 < seq < query(d, "SELECT max(seq) FROM audit_log")[0][0]
