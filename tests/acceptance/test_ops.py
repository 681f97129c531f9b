"""Operator commands against a running engine (control socket) and a stopped one (direct)."""

from __future__ import annotations

import json
import signal
import socket
import stat
import time
from pathlib import Path

import duckdb

from tests.acceptance.helpers import fast_profile, query, run, start, wait_for_log


def _stop(p) -> None:
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 0


def _settled_healthcheck(d: Path, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        res = run("healthcheck", "--data-dir", str(d), "--json")
        if res.returncode == 0 or time.monotonic() > deadline:
            return res
        time.sleep(0.5)


def test_ops_when_engine_running_and_stopped_then_same_answers(tmp_path: Path) -> None:
    d = tmp_path / "d"
    # this test is about the ops answers: on a loaded CI box a quote can be a second late or an
    # ack slow, and healthcheck rightly turns degraded for the gate that then stands
    calm = {"MAX_DATA_STALENESS_MS": "10000", "MAX_P95_PLACE_MS": "60000"}
    p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d), **calm)
    try:
        wait_for_log(d, "engine running")
        sock = d / "control.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        live = {"reconcile": run("reconcile", "--data-dir", str(d), "--json")}
        # "engine running" is logged before the first quote; until one arrives the stale_data gate
        # rightly stands, so wait (bounded) for healthcheck to settle before reading its answer
        live["healthcheck"] = _settled_healthcheck(d)
        verify_live = run("audit", "verify", "--data-dir", str(d))
        backup = run("backup", "--data-dir", str(d), "--out", str(tmp_path / "b.duckdb"))
    finally:
        _stop(p)
    assert live["reconcile"].returncode == 0, live["reconcile"].stderr
    rec = json.loads(live["reconcile"].stdout)
    assert rec["ok"]
    assert rec["source"] == "manual"
    assert set(rec["mismatches"]) >= {
        "missing_in_db",
        "missing_in_broker",
        "status_mismatch",
        "orphan",
    }
    health = json.loads(live["healthcheck"].stdout)
    not_ok = [c for c in health["checks"] if c["status"] != "ok"]
    assert live["healthcheck"].returncode == 0, not_ok
    assert health["engine_running"]
    assert {c["name"] for c in health["checks"]} >= {
        "venue",
        "outbox",
        "clock_skew",
        "reconciliation",
    }
    assert verify_live.returncode == 0
    assert "intact" in verify_live.stdout
    assert backup.returncode == 0
    assert (tmp_path / "b.duckdb").exists()

    # stopped: same commands, same shapes, answered from the DB
    rec2 = run("reconcile", "--data-dir", str(d), "--json")
    assert rec2.returncode == 0
    assert json.loads(rec2.stdout)["mismatches"] == rec["mismatches"]
    h2 = run("healthcheck", "--data-dir", str(d), "--json")
    assert h2.returncode == 2
    assert not json.loads(h2.stdout)["engine_running"]
    assert run("audit", "verify", "--data-dir", str(d)).returncode == 0
    runs = query(d, "SELECT source FROM reconciliation_runs ORDER BY ts_us")
    assert [r[0] for r in runs][:1] == ["startup"]
    assert ("manual",) in runs


def test_restore_when_backup_verified_then_db_replaced_and_engine_starts(tmp_path: Path) -> None:
    d = tmp_path / "d"
    prof = str(fast_profile(tmp_path))
    assert (
        run("--headless", "--profile", prof, "--duration", "2", "--data-dir", str(d)).returncode
        == 0
    )
    assert run("backup", "--data-dir", str(d), "--out", str(tmp_path / "b.duckdb")).returncode == 0
    assert (
        run("--headless", "--profile", prof, "--duration", "2", "--data-dir", str(d)).returncode
        == 0
    )
    # tamper with a copy: restore must refuse it
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes((tmp_path / "b.duckdb").read_bytes())
    con = duckdb.connect(str(bad))
    con.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    con.close()
    refused = run("restore", "--data-dir", str(d), str(bad))
    assert refused.returncode == 2
    assert "audit chain broken" in refused.stderr
    ok = run("restore", "--data-dir", str(d), str(tmp_path / "b.duckdb"))
    assert ok.returncode == 0, ok.stderr
    assert list(d.glob("cockpit.duckdb.replaced-*"))
    assert run("audit", "verify", "--data-dir", str(d)).returncode == 0
    assert (
        run("--headless", "--profile", prof, "--duration", "1.5", "--data-dir", str(d)).returncode
        == 0
    )
    kinds = [r[0] for r in query(d, "SELECT kind FROM audit_log WHERE kind='restored'")]
    assert kinds == ["restored"]


def test_restore_when_engine_running_then_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    # this test is about the ops answers: on a loaded CI box a quote can be a second late or an
    # ack slow, and healthcheck rightly turns degraded for the gate that then stands
    calm = {"MAX_DATA_STALENESS_MS": "10000", "MAX_P95_PLACE_MS": "60000"}
    p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d), **calm)
    try:
        wait_for_log(d, "engine running")
        res = run("restore", "--data-dir", str(d), str(tmp_path / "whatever.duckdb"))
        assert res.returncode == 3
        assert "stop the engine" in res.stderr
    finally:
        _stop(p)


def test_control_socket_when_malformed_request_then_error_line_and_engine_lives(tmp_path):
    d = tmp_path / "d"
    # this test is about the ops answers: on a loaded CI box a quote can be a second late or an
    # ack slow, and healthcheck rightly turns degraded for the gate that then stands
    calm = {"MAX_DATA_STALENESS_MS": "10000", "MAX_P95_PLACE_MS": "60000"}
    p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d), **calm)
    try:
        wait_for_log(d, "engine running")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(str(d / "control.sock"))
        f = s.makefile("rwb")
        for raw in (b"not json\n", b'{"cmd": "rm -rf"}\n', b'{"cmd": "status"}\n'):
            f.write(raw)
            f.flush()
            answers = json.loads(f.readline())
            if raw.startswith(b'{"cmd": "status"'):
                assert answers["ok"]
                assert "ticks" in answers["result"]
            else:
                assert not answers["ok"]
                assert answers["error"]
        s.close()
        assert p.poll() is None
    finally:
        _stop(p)


def test_start_when_wal_corrupt_then_exit4_naming_file_and_restore_command(tmp_path: Path):
    d = tmp_path / "d"
    p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d))
    wait_for_log(d, "order submitted")
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    wal = d / "cockpit.duckdb.wal"
    if not wal.exists():
        wal.write_bytes(b"")
    wal.write_bytes(b"\x00garbage-not-a-wal" * 64)
    res = run(
        "--headless",
        "--profile",
        str(fast_profile(tmp_path)),
        "--duration",
        "1",
        "--data-dir",
        str(d),
    )
    assert res.returncode == 4, res.stderr
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "cockpit.duckdb" in line
    assert f"cockpit restore --data-dir {d}" in line
