"""The real `cockpit --headless` process: runs, stops cleanly, survives SIGKILL, refuses twins."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.acceptance.helpers import (
    SIGNED_FILLS,
    fast_profile,
    query,
    run,
    start,
    wait_for_log,
)


def _positions(d: Path) -> dict[str, int]:
    return {s: q for s, q in query(d, "SELECT symbol, qty_e8 FROM positions") if q}


def _fills(d: Path) -> dict[str, int]:
    return {s: q for s, q in query(d, SIGNED_FILLS) if q}


def test_headless_paper_when_duration_elapses_then_exit0_with_db_textfile_and_audit(tmp_path):
    d = tmp_path / "d"
    res = run(
        "--headless",
        "--profile",
        str(fast_profile(tmp_path)),
        "--duration",
        "6",
        "--data-dir",
        str(d),
        "--seed",
        "3",
    )
    assert res.returncode == 0, res.stderr
    counts = {
        t: query(d, f"SELECT count(*) FROM {t}")[0][0]
        for t in ("decisions", "orders", "fills", "audit_log", "models")
    }
    assert counts["decisions"] > 0, counts
    assert counts["orders"] > 0, counts
    assert counts["fills"] > 0, counts
    assert _positions(d) == _fills(d)
    assert _fills(d)
    prom = d / "metrics" / "metrics.prom"
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644
    assert stat.S_IMODE((d / "cockpit.duckdb").stat().st_mode) == 0o600
    lint = subprocess.run(
        ["promtool", "check", "metrics"], stdin=prom.open(), capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stderr
    assert lint.stderr.strip() == "", lint.stderr
    assert "orders_submitted_total" in prom.read_text()
    verify = run("audit", "verify", "--data-dir", str(d))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    last = query(d, "SELECT kind, payload FROM audit_log ORDER BY seq DESC LIMIT 1")[0]
    assert last[0] == "shutdown"
    assert "duration elapsed" in last[1]
    assert '"msg": "engine running' in (d / "logs" / "engine.log").read_text()
    assert '"msg": "engine running' in res.stdout  # structured lines on stdout too


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_headless_when_signalled_then_clean_shutdown_exit0(tmp_path, sig):
    d = tmp_path / "d"
    p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d))
    try:
        wait_for_log(d, "engine running")
        time.sleep(1.0)
        p.send_signal(sig)
        assert p.wait(timeout=30) == 0, p.stderr.read() if p.stderr else ""
    finally:
        p.kill()
    kind, payload = query(d, "SELECT kind, payload FROM audit_log ORDER BY seq DESC LIMIT 1")[0]
    assert kind == "shutdown"
    assert f"signal {sig.name}" in payload
    assert run("audit", "verify", "--data-dir", str(d)).returncode == 0


def test_sigkill_mid_run_when_restarted_then_no_order_twice_and_books_agree(tmp_path):
    d = tmp_path / "d"
    prof = str(fast_profile(tmp_path))
    p = start("--headless", "--profile", prof, "--data-dir", str(d), "--seed", "5")
    try:
        wait_for_log(d, "order submitted")
        time.sleep(1.5)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        p.kill()
    res = run(
        "--headless", "--profile", prof, "--duration", "4", "--data-dir", str(d), "--seed", "5"
    )
    assert res.returncode == 0, res.stderr
    engine_ids = [r[0] for r in query(d, "SELECT client_order_id FROM orders")]
    venue_ids = [r[0] for r in query(d, "SELECT client_order_id FROM paper_orders")]
    assert len(engine_ids) == len(set(engine_ids))
    # every order the venue ever received is known to the engine exactly once, and vice versa
    sent = {
        r[0] for r in query(d, "SELECT client_order_id FROM orders WHERE status <> 'never_sent'")
    }
    assert sorted(venue_ids) == sorted(sent)
    sessions = {cid.split("-")[1] for cid in engine_ids}
    assert len(sessions) == 2, sessions  # both runs traded, with distinct id spaces
    assert (
        query(d, "SELECT count(*) FROM order_outbox WHERE status IN ('pending','sent')")[0][0] == 0
    )
    assert _positions(d) == _fills(d)
    assert run("audit", "verify", "--data-dir", str(d)).returncode == 0
    kinds = [
        r[0]
        for r in query(
            d, "SELECT kind FROM audit_log WHERE kind IN ('startup','shutdown') ORDER BY seq"
        )
    ]
    assert kinds == ["startup", "startup", "shutdown"]  # the killed run never shut down


def test_second_instance_when_engine_running_then_exit3_and_touches_nothing(tmp_path):
    d = tmp_path / "d"
    p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d))
    try:
        wait_for_log(d, "engine running")
        before = {f: f.stat().st_mtime_ns for f in d.rglob("*") if f.is_file()}
        log_size = (d / "logs" / "engine.log").stat().st_size
        res = run("--headless", "--profile", "paper", "--data-dir", str(d), "--duration", "2")
        assert res.returncode == 3
        assert res.stderr.strip() == f"cockpit: engine already running (pid {p.pid})"
        assert (d / "engine.lock").stat().st_mtime_ns == before[d / "engine.lock"]
        assert (d / "logs" / "engine.log").read_text().count("already running") == 0
        assert (d / "logs" / "engine.log").stat().st_size >= log_size
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def test_bad_profile_when_unknown_key_then_one_line_error_exit2_nothing_started(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "paper"\nvenue = "paper"\n[risk]\nmax_trade_per_day = 5\n')
    d = tmp_path / "d"
    res = run("--headless", "--profile", str(bad), "--data-dir", str(d), "--duration", "1")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "bad.toml" in lines[0]
    assert "risk.max_trade_per_day" in lines[0]
    assert "max_trades_per_day" in lines[0]  # did-you-mean
    assert not d.exists()


def test_bad_env_override_when_nan_then_one_line_error_exit2(tmp_path):
    res = run(
        "--headless", "--data-dir", str(tmp_path / "d"), "--duration", "1", MAX_ERROR_RATE="nan"
    )
    assert res.returncode == 2
    assert "MAX_ERROR_RATE" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_config_show_when_secret_in_env_then_redacted_with_sources():
    res = run(
        "config", "show", "--profile", "testnet", API_SECRET="s3cr3t-value", MAX_TRADES_PER_DAY="42"
    )
    assert res.returncode == 0, res.stderr
    assert "s3cr3t-value" not in res.stdout
    line = next(x for x in res.stdout.splitlines() if x.startswith("risk.max_trades_per_day"))
    assert "42" in line
    assert "env:MAX_TRADES_PER_DAY" in line


def test_env_sample_when_written_to_file_then_documents_every_flag(tmp_path):
    out = tmp_path / "env.sample"
    assert run("env-sample", "-o", str(out)).returncode == 0
    text = out.read_text()
    for var in ("SAFE_MODE", "MAX_TIME_SKEW_MS", "METRICS_PATH", "ENABLE_IDEMPOTENCY"):
        assert f"{var}=" in text


def test_audit_verify_when_row_tampered_then_exit1_naming_row(tmp_path):
    d = tmp_path / "d"
    assert (
        run(
            "--headless",
            "--profile",
            str(fast_profile(tmp_path)),
            "--duration",
            "2",
            "--data-dir",
            str(d),
        ).returncode
        == 0
    )
    import duckdb

    con = duckdb.connect(str(d / "cockpit.duckdb"))
    con.execute("UPDATE audit_log SET payload = '{\"forged\":1}' WHERE seq = 3")
    con.close()
    res = run("audit", "verify", "--data-dir", str(d))
    assert res.returncode == 1
    assert "seq 3" in res.stdout


def test_start_when_db_behind_external_audit_head_then_exit4_naming_file(tmp_path):
    import shutil

    d = tmp_path / "d"
    prof = str(fast_profile(tmp_path))
    assert (
        run("--headless", "--profile", prof, "--duration", "1.5", "--data-dir", str(d)).returncode
        == 0
    )
    shutil.copy(d / "cockpit.duckdb", tmp_path / "old.duckdb")  # an older copy of the ledger
    assert (
        run("--headless", "--profile", prof, "--duration", "1.5", "--data-dir", str(d)).returncode
        == 0
    )
    shutil.copy(tmp_path / "old.duckdb", d / "cockpit.duckdb")  # the DB lost its tail
    before = (d / "cockpit.duckdb").read_bytes()
    res = run("--headless", "--profile", prof, "--duration", "1", "--data-dir", str(d))
    assert res.returncode == 4
    assert "cockpit.duckdb" in res.stderr
    assert "behind the external audit head" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert run("audit", "verify", "--data-dir", str(d)).returncode == 1
    assert (d / "cockpit.duckdb").read_bytes()[:4096] == before[:4096]


def test_start_when_db_file_corrupt_then_exit4_one_line_naming_file(tmp_path):
    d = tmp_path / "d"
    d.mkdir(mode=0o700)  # private: an open data dir adds a warning line
    (d / "cockpit.duckdb").write_bytes(b"this is not a duckdb file" * 100)
    res = run("--headless", "--data-dir", str(d), "--duration", "1")
    assert res.returncode == 4, res.stderr
    assert str(d / "cockpit.duckdb") in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
