"""Issue 12 items 9 (CLI half) and 10: bad input is refused with one line and exit 2, never
accepted and never a traceback. Every case runs the real ``cockpit`` process."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.config.schema import iter_fields
from engine.runtime.control import NotRunning, call
from tests.acceptance.helpers import run, start

HUGE = "99999999999999999999"


def _one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr


def _profile(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text('kind = "paper"\nvenue = "paper"\nfeed = "sim"\noffline = true\n' + body)
    return p


def _start(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run("--headless", "--duration", "1", "--data-dir", str(tmp_path / "d"), *args, **env)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (f"[risk]\nmax_trades_per_day = {HUGE}\n", "risk.max_trades_per_day"),
        (f"[sim]\nseed = {HUGE}\n", "sim.seed"),
        (f"[risk]\nmax_error_rate = {HUGE}{HUGE * 20}\n", "risk.max_error_rate"),
    ],
)
def test_start_when_profile_number_out_of_range_then_exit2_naming_file_key_value(
    tmp_path: Path, body: str, key: str
) -> None:
    prof = _profile(tmp_path, body)
    res = _start(tmp_path, "--profile", str(prof))
    assert res.returncode == 2
    err = _one_line(res)
    assert str(prof) in err
    assert key in err
    assert "must be <=" in err or "finite" in err
    assert len(err) < 300  # a hostile value is not echoed whole
    assert not (tmp_path / "d").exists()  # refused before anything was created


@pytest.mark.parametrize(
    ("var", "value", "problem"),
    [
        ("MAX_TRADES_PER_DAY", HUGE + "999", "must be <="),
        ("MAX_OPEN_POSITIONS", "٣", "ASCII digits"),  # an Arabic-Indic three
        ("SIM_SEED", "１２", "ASCII digits"),  # fullwidth digits
        ("MAX_ERROR_RATE", "٠.٥", "ASCII digits"),
        ("MAX_OPEN_POSITIONS", "1_0", "ASCII digits"),
    ],
)
def test_start_when_env_number_invalid_then_exit2_naming_var(
    tmp_path: Path, var: str, value: str, problem: str
) -> None:
    res = _start(tmp_path, "--profile", "paper", **{var: value})
    assert res.returncode == 2
    err = _one_line(res)
    assert f"env {var}" in err
    assert problem in err


@pytest.mark.parametrize("duration", ["nan", "-5", "0", "inf", "-inf", "٣"])
def test_start_when_duration_not_finite_positive_then_exit2(tmp_path: Path, duration: str) -> None:
    res = run(
        "--headless",
        "--profile",
        "paper",
        "--data-dir",
        str(tmp_path / "d"),
        f"--duration={duration}",
    )
    assert res.returncode == 2
    assert "--duration" in _one_line(res)
    assert not (tmp_path / "d").exists()


def test_start_when_seed_not_ascii_then_exit2(tmp_path: Path) -> None:
    res = _start(tmp_path, "--profile", "paper", "--seed", "٣")
    assert res.returncode == 2
    assert "sim.seed" in _one_line(res)


def test_start_when_log_level_bogus_then_exit2_naming_levels(tmp_path: Path) -> None:
    res = _start(tmp_path, "--profile", "paper", "--log-level", "bogus")
    assert res.returncode == 2
    err = _one_line(res)
    assert "bogus" in err
    assert "DEBUG, INFO, WARNING, ERROR, CRITICAL" in err


@pytest.mark.parametrize(
    ("body", "key", "secret"),
    [
        ('[exchange]\napi_key = "AKIA-live-key-1234"\n', "exchange.api_key", "AKIA-live-key-1234"),
        ('[exchange]\napi_secret = "s3cr3t-9"\n', "exchange.api_secret", "s3cr3t-9"),
        ('[alerts]\ntelegram_bot_token = "123:tok"\n', "alerts.telegram_bot_token", "123:tok"),
        ('password = "hunter2"\n', "password", "hunter2"),
    ],
)
def test_config_when_profile_holds_a_secret_then_refused_with_pointer_and_not_echoed(
    tmp_path: Path, body: str, key: str, secret: str
) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text(body + 'kind = "paper"\n' if body.startswith("password") else body)
    res = run("config", "show", "--profile", str(prof))
    assert res.returncode == 2
    err = _one_line(res)
    assert key in err
    assert "secrets do not belong in a profile" in err
    assert "cockpit env-sample" in err
    assert secret not in err + res.stdout


def test_config_when_unknown_model_id_then_show_and_start_refuse_naming_known_ids(
    tmp_path: Path,
) -> None:
    prof = _profile(tmp_path, '[models]\nchampion = "trend_v9"\n')
    for res in (
        run("config", "show", "--profile", str(prof)),
        _start(tmp_path, "--profile", str(prof)),
    ):
        assert res.returncode == 2
        err = _one_line(res)
        assert "models.champion" in err
        assert "trend_v9" in err
        assert "trend_v1" in err


def test_every_numeric_key_when_declared_then_has_a_documented_two_sided_range() -> None:
    numeric = [s for s in iter_fields() if s.type in (int, float)]
    assert numeric
    for spec in numeric:
        assert spec.meta.get("min") is not None, spec.key
        assert spec.meta.get("max") is not None, spec.key
    sample = run("env-sample").stdout
    assert "risk.max_trades_per_day, int, in [0, " in sample


# --- environment: the socket path and the exchange --------------------------------------------


def test_start_when_data_dir_path_long_then_socket_works(tmp_path: Path) -> None:
    d = tmp_path / ("x" * 60) / ("y" * 60)
    assert len(str(d / "control.sock")) > 108
    proc = start("--headless", "--profile", "paper", "--data-dir", str(d), "--duration", "60")
    try:
        deadline = time.monotonic() + 60
        status = None
        while status is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            try:
                status = call(d, "status", timeout_s=5)  # the CLI's own client
            except NotRunning:
                time.sleep(0.2)
        assert status is not None
        assert status["ticks"] >= 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "AF_UNIX" not in err
    assert not (d / "control.sock").exists()


@pytest.mark.parametrize("mode", ["--headless", "tui"])
def test_start_when_exchange_unreachable_then_one_line_naming_host_exit2(
    tmp_path: Path, mode: str
) -> None:
    prof = tmp_path / "live.toml"
    prof.write_text(
        'kind = "testnet"\nvenue = "ccxt"\nfeed = "exchange"\noffline = false\n'
        '[exchange]\nrest_url = "http://127.0.0.1:9"\nws_url = "ws://127.0.0.1:9"\n'
        "timeout_ms = 2000\n"
    )
    args = ["--profile", str(prof), "--data-dir", str(tmp_path / "d")]
    res = run(*args, *([mode] if mode == "--headless" else []), API_KEY="k", API_SECRET="s")
    assert res.returncode == 2
    err = _one_line(res)
    assert "cannot reach the exchange at 127.0.0.1:9" in err
