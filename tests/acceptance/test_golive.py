"""The go-live runbook end to end from a shell, on a live-kind profile pointed at the loopback
venue simulator (a separate process on 127.0.0.1: no real exchange is ever contacted).

Real parts only: the venue simulator process, the headless engine process, the ``cockpit`` CLI
talking to it over the control socket, TOTP enrolled through the real enrolment code, codes from
the seed as an authenticator app would make them, a real DuckDB file read afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

from engine.security.keystore import KEY_ENV, generate_key
from tests.acceptance.helpers import query, run, start
from tests.adversarial.test_control import enroll_totp, stop, wait_socket
from tests.conftest import ROOT

PHRASE = "I_UNDERSTAND_LIVE_TRADING"


def live_profile(port: int) -> str:
    return f"""
kind = "live"
venue = "ccxt"
feed = "exchange"
offline = false
symbols = ["BTC/USDT", "ETH/USDT"]

[exchange]
rest_url = "http://127.0.0.1:{port}"
ws_url = "ws://127.0.0.1:{port}"

[risk]
safe_mode = true
risk_per_trade_pct = 0.2
max_open_positions = 2
max_trades_per_day = 8
max_daily_drawdown_pct = 1.0
dupe_intent_window_ms = 0.0

[models]
prob_min = 0.5
min_expected_return = 0.0
decision_interval_ms = 200.0
risk_max = 5.0

[live]
live_mode = true
enable_live_trading = true
readiness_required = ["market_data", "venue"]

[storage]
flush_interval_ms = 50.0
"""


class Codes:
    """TOTP codes as an authenticator gives them: each accepted once, never an older one."""

    def __init__(self, seed: str) -> None:
        self.totp = pyotp.TOTP(seed)
        self.last = -(10**9)

    def next(self) -> str:
        while True:
            step = int(time.time() // 30)
            # never the previous step's code: on a loaded box it can expire on the way
            use = max(self.last + 1, step)
            if use <= step + 1:
                self.last = use
                return self.totp.at(use * 30)
            time.sleep(1.0)


@pytest.fixture
def venue(tmp_path: Path):
    port_file = tmp_path / "venue.port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "venuesim",
            "--state",
            str(tmp_path / "venue"),
            "--port-file",
            str(port_file),
            "--ticks-per-second",
            "20",
            "--max-lifetime",
            "600",
        ],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield int(port_file.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cli(d: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, "--data-dir", str(d), timeout=300)


def test_go_live_runbook_when_run_from_a_shell_then_each_lock_named_until_orders_flow(
    tmp_path: Path, venue: int
) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    key = generate_key()
    codes = Codes(enroll_totp(d, key))
    prof = tmp_path / "live-loop.toml"
    prof.write_text(live_profile(venue))
    env = {KEY_ENV: key, "API_KEY": "sim-key", "API_SECRET": "sim-secret"}
    proc = start(
        "--headless", "--profile", str(prof), "--data-dir", str(d), "--duration", "300", **env
    )
    try:
        wait_socket(proc, d)
        # 1. preflight fails until each check is fixed: no backup yet
        pf = cli(d, "preflight")
        assert pf.returncode == 1, pf.stdout + pf.stderr
        assert "FAIL  backup" in pf.stdout
        assert cli(d, "backup").returncode == 0
        pf = cli(d, "preflight")
        assert pf.returncode == 0, pf.stdout
        assert "GREEN" in pf.stdout
        # 2. go-live refused while a lock is missing, each named
        res = cli(d, "go-live", "--yes", "--phrase", "yes please", "--totp", codes.next())
        assert res.returncode == 1
        assert "LIVE_CONFIRM phrase was not typed exactly" in res.stderr
        assert "SAFE_MODE is on" in res.stderr
        res = cli(d, "go-live", "--yes", "--phrase", PHRASE)  # no code, not a terminal
        assert res.returncode == 2
        assert "TOTP code" in res.stderr
        time.sleep(1.0)
        assert query_orders(d, proc) == 0  # nothing went out: preflight gate + safe mode
        res = cli(d, "safe-mode", "off", "--reason", "go-live T0", "--yes", "--totp", codes.next())
        assert res.returncode == 0, res.stderr
        res = cli(d, "go-live", "--yes", "--phrase", PHRASE, "--totp", codes.next())
        assert res.returncode == 0, res.stderr
        assert "LIVE" in res.stdout
        res = cli(d, "model", "canary-share", "0.05", "--yes", "--totp", codes.next())
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not sent_orders(d):
            time.sleep(0.5)
        assert sent_orders(d) > 0  # orders flow once every lock agrees
        # 3. kill switch from the shell: one confirmation, no code; resume needs a code
        assert cli(d, "kill", "--yes", "--reason", "drill").returncode == 0
        res = cli(d, "arm", "--yes", "--totp", codes.next())
        assert res.returncode == 0, res.stderr
        res = cli(d, "model", "promote", "--yes", "--totp", codes.next())
        assert res.returncode == 0, res.stderr
        res = cli(d, "model", "rollback", "--yes", "--totp", codes.next())
        assert res.returncode == 0, res.stderr
        status = cli(d, "status", "--json")
        assert '"live_since_us": ' in status.stdout
        gng = cli(d, "go-no-go")
        assert gng.returncode in (0, 1)
        assert gng.stdout.strip().splitlines()[-1] in ("GO", "NO-GO")
    finally:
        stop(proc)
    kinds = [r[0] for r in query(d, "SELECT kind FROM audit_log ORDER BY seq")]
    assert "went_live" in kinds
    assert "preflight" in kinds
    notes = [r[0] for r in query(d, "SELECT note FROM incidents")]
    assert any(n.startswith("GO-LIVE") for n in notes)  # the shift log has it
    green = query(d, "SELECT count(*) FROM preflight_runs WHERE ok")[0][0]
    assert green == 1


def sent_orders(d: Path) -> int:
    res = run("status", "--json", "--data-dir", str(d))
    import json

    return int(json.loads(res.stdout)["orders"]) if res.returncode == 0 else 0


def query_orders(d: Path, proc: subprocess.Popen[str]) -> int:
    assert proc.poll() is None
    return sent_orders(d)
