"""Step 8 from a shell with the engine running: scheduled backups and restore tests, Telegram
messages on a loopback Bot API, and a keyring key rotation the running engine survives."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

from tests.acceptance.helpers import fast_profile, run, start, wait_for_log
from tests.conftest import PY, ROOT, clean_env, cockpit_cmd, fill_disk
from venuesim.botapi import DEFAULT_TOKEN, serve_in_thread

CALM = {"MAX_DATA_STALENESS_MS": "10000", "MAX_P95_PLACE_MS": "60000"}


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout}s: {what}")


def _stop(p: subprocess.Popen[str]) -> None:
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=40) == 0, p.stderr.read() if p.stderr else ""


def _secret(d: Path, name: str, value: str, **env: str) -> None:
    res = subprocess.run(
        cockpit_cmd("secrets", "set", name, "--data-dir", str(d)),
        cwd=ROOT,
        env=clean_env(**env),
        input=value + "\n",
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr


def test_scheduled_backups_when_engine_runs_then_pruned_restore_tested_and_db_checked(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    prof = fast_profile(tmp_path)
    prof.write_text(prof.read_text() + "\n[ops]\nbackup_keep = 2\n")
    p = start("--headless", "--profile", str(prof), "--data-dir", str(d),
              BACKUP_INTERVAL_MIN="0.04", **CALM)  # fmt: skip
    backups = d / "backups"
    try:
        wait_for_log(d, "engine running")
        manual = run("backup", "--data-dir", str(d))
        assert manual.returncode == 0, manual.stderr
        _until(lambda: "pruned 1" in (d / "logs" / "engine.log").read_text(), 40, "a prune")
        tested = run("restore", "--test", "--data-dir", str(d), "--json")
        check = run("db", "check", "--data-dir", str(d), "--json")
    finally:
        _stop(p)
    scheduled = sorted(backups.glob("scheduled-*.duckdb"))
    assert 1 <= len(scheduled) <= 2, scheduled  # the third one pruned the oldest
    assert list(backups.glob("cockpit-*.duckdb")), "an operator's backup is never pruned"
    assert tested.returncode == 0, tested.stdout + tested.stderr
    result = json.loads(tested.stdout)
    assert result["ok"]
    assert result["audit_rows"] > 0
    assert Path(result["backup"]).with_name(Path(result["backup"]).name + ".tested.json").exists()
    assert check.returncode == 0, check.stdout
    assert {c["name"] for c in json.loads(check.stdout)["checks"]} >= {
        "duckdb_blocks",
        "audit_chain",
    }


def test_telegram_when_kill_switch_and_alert_then_messages_on_loopback_bot_api(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    key = Fernet.generate_key().decode()
    env = {"COCKPIT_KEYRING_KEY": key, "TELEGRAM_CHAT_ID": "4242", **CALM}
    with serve_in_thread() as api:
        env["TELEGRAM_API_BASE_URL"] = api.url
        _secret(d, "TELEGRAM_BOT_TOKEN", DEFAULT_TOKEN, **env)
        sent = run("notify", "test", "--data-dir", str(d), "--json", **env)
        assert sent.returncode == 0, sent.stderr
        p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d),
                  BUDGET_ORDERS_PER_DAY_ACCOUNT="1", **env)  # fmt: skip
        try:
            wait_for_log(d, "engine running")
            texts = lambda: [m.text for m in api.messages()]  # noqa: E731
            _until(lambda: any("ALERT firing: BudgetDepleted" in t for t in texts()), 30, "alert")
            kill = run("kill", "--yes", "--reason", "drill", "--data-dir", str(d), **env)
            assert kill.returncode == 0, kill.stderr
            _until(lambda: any("KILL SWITCH ARMED: drill" in t for t in texts()), 20, "kill msg")
        finally:
            _stop(p)
        messages = api.messages()
    assert {m.chat_id for m in messages} == {"4242"}
    assert all(DEFAULT_TOKEN not in m.text and "sim-bot-token" not in m.text for m in messages)
    logs = (d / "logs" / "engine.log").read_text()
    assert "sim-bot-token" not in logs
    bad = run("notify", "test", "--data-dir", str(d), **{**env, "TELEGRAM_API_BASE_URL": ""})
    assert bad.returncode != 0  # the real Telegram is not reachable from here: a clear failure
    assert "Traceback" not in bad.stderr


def test_rotate_when_engine_running_then_engine_keeps_reading_and_restarts_on_new_key(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    old = Fernet.generate_key().decode()
    _secret(d, "API_KEY", "rotation-canary-value", COCKPIT_KEYRING_KEY=old)
    env = {"COCKPIT_KEYRING_KEY": old, **CALM}
    p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d), **env)
    try:
        wait_for_log(d, "engine running")
        rotated = run("secrets", "rotate", "--key-out", str(tmp_path / "new.key"),
                      "--data-dir", str(d), **env)  # fmt: skip
        assert rotated.returncode == 0, rotated.stderr
        assert "running engine already uses it" in rotated.stdout
        # the engine reads the keyring after the switch (preflight opens it)
        pf = run("preflight", "--json", "--data-dir", str(d), **env)
    finally:
        _stop(p)
    checks = {c["name"]: c for c in json.loads(pf.stdout)["checks"]}
    keyring_checks = [c for n, c in checks.items() if "keyring" in n or "secret" in n]
    assert keyring_checks
    assert all("cannot decrypt" not in c["reason"] for c in keyring_checks), keyring_checks
    new = (tmp_path / "new.key").read_text().strip()
    assert (tmp_path / "new.key").stat().st_mode & 0o777 == 0o600
    assert run("secrets", "list", "--data-dir", str(d), COCKPIT_KEYRING_KEY=new).stdout.split() == [
        "API_KEY"
    ]
    stale = run("secrets", "list", "--data-dir", str(d), COCKPIT_KEYRING_KEY=old)
    assert stale.returncode == 2
    assert "cannot decrypt" in stale.stderr
    restarted = run("--headless", "--profile", str(fast_profile(tmp_path)), "--duration", "2",
                    "--data-dir", str(d), COCKPIT_KEYRING_KEY=new, **CALM)  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr
    audit = subprocess.run(
        cockpit_cmd("audit", "verify", "--data-dir", str(d)),
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout


def test_engine_under_systemd_when_notify_socket_set_then_ready_watchdog_and_stopping(
    tmp_path: Path,
) -> None:
    import socket

    sock_path = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(sock_path))
    srv.settimeout(30)
    d = tmp_path / "d"
    p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d),
              NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="2000000", **CALM)  # fmt: skip
    got: list[str] = []
    try:
        while not any("WATCHDOG=1" in g for g in got):
            got.append(srv.recv(4096).decode())
        assert any("READY=1" in g for g in got), got
    finally:
        _stop(p)
    srv.settimeout(5)
    tail = [srv.recv(4096).decode() for _ in range(1)]
    while not any("STOPPING=1" in t for t in tail):
        tail.append(srv.recv(4096).decode())
    srv.close()
    ready = next(g for g in got if "READY=1" in g)
    assert "STATUS=engine running" in ready


def test_bench_report_when_small_then_one_json_line_with_rows(tmp_path: Path) -> None:
    res = subprocess.run(
        [PY, "scripts/bench_report.py", "--fills", "3000"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["bench"] == "report"
    assert out["rows"]["fills.csv"] == 3000
    assert out["rows"]["pnl.csv"] == 20
    assert out["seconds"] > 0


def test_rotate_when_key_out_disk_full_then_nothing_rotated_and_no_key_file_left(
    tmp_path: Path, tmpfs: Callable[..., Path]
) -> None:
    d = tmp_path / "d"
    old = Fernet.generate_key().decode()
    _secret(d, "API_KEY", "rotation-canary-value", COCKPIT_KEYRING_KEY=old)
    full = tmpfs("64k")
    fill_disk(full)
    res = run("secrets", "rotate", "--key-out", str(full / "new.key"), "--data-dir", str(d),
              COCKPIT_KEYRING_KEY=old)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "nothing rotated" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (full / "new.key").exists()  # was: an empty key file, kept (a rerun was refused)
    listed = run("secrets", "list", "--data-dir", str(d), COCKPIT_KEYRING_KEY=old)
    assert listed.stdout.split() == ["API_KEY"]  # the old key still opens the keyring
