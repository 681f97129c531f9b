"""``cockpit config set`` / ``config history``: one profile key changed with a backup and a record.

Real processes, files and DuckDB: the CLI as an operator runs it, a headless engine where one is
needed. Stopped engine: the change lands in the data dir's audit chain and incident journal (the
chain still verifies), the history file, a backup with the old text. Running engine: it records
the change itself; a hot key of its own profile is applied at once (visible in its gates and in
``config show --running``), any other is saved for the next start; an observer changes nothing.
Bad input: exit 2, one line, the profile untouched.
"""

from __future__ import annotations

import json
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from engine.runtime.control import call
from engine.security.keystore import KEY_ENV, generate_key
from tests.acceptance.helpers import fast_profile, run, start
from tests.adversarial.test_control import enroll_totp, stop, wait_socket
from tests.conftest import query

KEY = "risk.max_daily_drawdown_pct"


def _set(prof: Path, d: Path, key: str, value: str, *extra: str) -> Any:
    return run("config", "set", key, value, "--profile", str(prof), "--data-dir", str(d), *extra)


def _history(d: Path) -> list[dict[str, Any]]:
    res = run("config", "history", "--data-dir", str(d), "--json")
    assert res.returncode == 0, res.stderr
    entries: list[dict[str, Any]] = json.loads(res.stdout)
    return entries


def test_set_when_engine_stopped_then_backup_file_audit_incident_and_history(
    tmp_path: Path,
) -> None:
    prof, d = fast_profile(tmp_path), tmp_path / "d"
    boot = run("--headless", "--profile", str(prof), "--data-dir", str(d), "--duration", "1")
    assert boot.returncode == 0, boot.stderr
    old = prof.read_bytes()
    res = _set(prof, d, KEY, "2.5", "--reason", "wider cap for the test")
    assert res.returncode == 0, res.stderr
    assert "(unset; default 1.0) -> 2.5" in res.stdout
    assert "takes effect at the next start" in res.stdout
    assert tomllib.loads(prof.read_text())["risk"]["max_daily_drawdown_pct"] == 2.5
    line = "dupe_intent_window_ms = 0.0\n"  # the [risk] table's last line: added after it
    assert prof.read_text() == old.decode().replace(line, f"{line}max_daily_drawdown_pct = 2.5\n")
    (backup,) = (tmp_path / ".history").iterdir()
    assert backup.read_bytes() == old
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    (entry,) = _history(d)
    assert (entry["key"], entry["new"], entry["reason"]) == (KEY, "2.5", "wider cap for the test")
    assert entry["backup"] == str(backup)
    assert entry["actor"].startswith("unix:")
    assert "(uid " in entry["actor"]
    assert stat.S_IMODE((d / "config_history.jsonl").stat().st_mode) == 0o600
    verify = run("audit", "verify", "--data-dir", str(d))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    (row,) = query(d, "SELECT payload FROM audit_log WHERE kind = 'config_changed'")
    payload = json.loads(row[0])
    assert (payload["key"], payload["new"], payload["backup"]) == (KEY, "2.5", str(backup))
    (note,) = query(d, "SELECT note FROM incidents")
    assert note[0].startswith(f"CONFIG {KEY}: (unset; default 1.0) -> 2.5")
    text = run("config", "history", "--data-dir", str(d), "--key", KEY).stdout
    assert "wider cap for the test" in text
    assert str(backup) in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((KEY, "150", "--reason", "r"), "accepted: a number in (0, 100]"),
        (("risk.max_dayly_drawdown_pct", "2", "--reason", "r"), f"did you mean '{KEY}'"),
        (("exchange.api_key", "abc123", "--reason", "r"), "cockpit secrets set API_KEY"),
        ((KEY, "2", "--reason", "  "), "a reason is required"),
        ((KEY, "2"), "--reason"),
        (("models.psi_halve", "0.5", "--reason", "r"), "must be < models.psi_block"),
    ],
)
def test_set_when_bad_input_then_exit2_one_line_and_nothing_written(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    prof, d = fast_profile(tmp_path), tmp_path / "d"
    old = prof.read_bytes()
    res = run("config", "set", *args, "--profile", str(prof), "--data-dir", str(d))
    assert res.returncode == 2, res.stdout + res.stderr
    assert needle in res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "abc123" not in res.stderr
    assert prof.read_bytes() == old
    assert not (tmp_path / ".history").exists()
    assert not (d / "config_history.jsonl").exists()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    prof, d = fast_profile(tmp_path), tmp_path / "d"
    proc = start("--headless", "--profile", str(prof), "--data-dir", str(d), "--duration", "120")
    try:
        wait_socket(proc, d)
        yield prof, d
    finally:
        stop(proc)


def test_set_when_engine_runs_then_hot_key_applied_and_cold_key_saved_for_restart(
    engine: tuple[Path, Path],
) -> None:
    prof, d = engine
    old = prof.read_bytes()
    unconfirmed = _set(prof, d, "risk.max_trades_per_day", "0", "--reason", "stop new trades")
    assert unconfirmed.returncode == 2  # a hot apply is confirmed (--yes off a terminal)
    assert "needs confirmation" in unconfirmed.stderr
    assert prof.read_bytes() == old
    res = _set(prof, d, "risk.max_trades_per_day", "0", "--reason", "stop new trades", "--yes")
    assert res.returncode == 0, res.stderr
    assert "applied to the running engine" in res.stdout
    assert "max_trades_per_day" in call(d, "status")["active_gates"]  # the gate holds now
    running = run("config", "show", "--running", "--data-dir", str(d)).stdout
    assert "risk.max_trades_per_day = 0 " in running
    cold = run(  # no --profile: the running engine's own file
        "config", "set", "models.decision_interval_ms", "500", "--reason", "slower decisions",
        "--data-dir", str(d),
    )  # fmt: skip
    assert cold.returncode == 0, cold.stderr
    assert "saved; restart needed for models.decision_interval_ms" in cold.stdout
    data = tomllib.loads(prof.read_text())
    assert data["risk"]["max_trades_per_day"] == 0
    assert data["models"]["decision_interval_ms"] == 500.0
    assert [e["outcome"] for e in _history(d)] == [
        "applied to the running engine",
        "saved; restart needed for models.decision_interval_ms",
    ]
    assert call(d, "audit_verify")["ok"]


def test_set_when_engine_runs_as_observer_then_refused_and_profile_untouched(
    tmp_path: Path,
) -> None:
    prof, d = fast_profile(tmp_path), tmp_path / "d"
    old = prof.read_bytes()
    proc = start(
        "--headless", "--profile", str(prof), "--data-dir", str(d), "--duration", "120",
        "--role", "observer",
    )  # fmt: skip
    try:
        wait_socket(proc, d)
        res = _set(prof, d, KEY, "2", "--reason", "observer try", "--yes")
        assert res.returncode == 1, res.stdout + res.stderr
        assert "observers cannot act" in res.stderr
    finally:
        stop(proc)
    assert prof.read_bytes() == old
    assert not (tmp_path / ".history").exists()
    denied = query(d, "SELECT payload FROM audit_log WHERE kind = 'command_denied'")
    assert any("RecordConfigChange" in p for (p,) in denied)
    assert not query(d, "SELECT 1 FROM audit_log WHERE kind = 'config_changed'")


def test_set_when_2fa_enrolled_then_hot_apply_needs_the_code_and_a_refusal_restores_the_file(
    tmp_path: Path,
) -> None:
    prof, d = fast_profile(tmp_path), tmp_path / "d"
    d.mkdir(mode=0o700)
    key = generate_key()
    seed = enroll_totp(d, key)
    proc = start(
        "--headless", "--profile", str(prof), "--data-dir", str(d), "--duration", "120",
        **{KEY_ENV: key},
    )  # fmt: skip
    old = prof.read_bytes()
    try:
        wait_socket(proc, d)
        args = ("risk.max_open_positions", "1", "--reason", "fewer", "--yes")
        missing = _set(prof, d, *args)
        assert missing.returncode == 2, missing.stderr
        assert "TOTP code needed" in missing.stderr
        wrong = _set(prof, d, *args, "--totp", "000000")
        assert wrong.returncode == 1, wrong.stderr
        assert "left unchanged" in wrong.stderr
        assert prof.read_bytes() == old  # the refused change was rolled back
        assert not list((tmp_path / ".history").iterdir())  # and its backup removed
        good = _set(prof, d, *args, "--totp", pyotp.TOTP(seed).now())
        assert good.returncode == 0, good.stderr
        assert "applied to the running engine" in good.stdout
    finally:
        stop(proc)
    assert tomllib.loads(prof.read_text())["risk"]["max_open_positions"] == 1
