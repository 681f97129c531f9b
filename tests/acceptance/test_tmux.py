"""The real `cockpit` in tmux at 80x24: panels visible, ctrl+k then y arms the kill switch and
no order is placed afterwards; q quits cleanly."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from engine.runtime.control import call
from tests.conftest import PY, ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="run scripts/install_system_deps.sh"
)


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-t", session, "-p")


def wait_screen(session: str, needle: str, timeout: float = 40.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(session)
        if needle in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not on screen:\n{text}")


def test_cockpit_in_tmux_when_ctrl_k_y_then_no_order_after(tmp_path: Path) -> None:
    session = f"ck-{uuid.uuid4().hex[:10]}"
    d = tmp_path / "d"
    prof = tmp_path / "fast.toml"
    prof.write_text(
        'kind = "paper"\nvenue = "paper"\n[models]\ndecision_interval_ms = 150.0\n'
        "prob_min = 0.5\nmin_expected_return = 0.0\nrisk_max = 5.0\n"
        "[risk]\ndupe_intent_window_ms = 0.0\n[sim]\nticks_per_second = 60.0\n"
    )
    cmd = f"cd {ROOT} && {PY} -m cockpit --profile {prof} --data-dir {d}; sleep 60"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd)
    try:
        wait_screen(session, "Reconciliation")
        text = wait_screen(session, "KILL")  # the footer is drawn last
        for panel in ("Gates", "Budgets", "Clock skew", "Reconciliation", "KILL"):
            assert panel in text, text
        deadline = time.monotonic() + 30
        while call(d, "status")["orders"] == 0 and time.monotonic() < deadline:
            time.sleep(0.3)
        tmux("send-keys", "-t", session, "C-k")
        wait_screen(session, "Confirm")
        tmux("send-keys", "-t", session, "y")
        deadline = time.monotonic() + 5
        while not call(d, "status")["kill_switch"] and time.monotonic() < deadline:
            time.sleep(0.1)
        armed_at = call(d, "status")
        assert armed_at["kill_switch"], armed_at
        time.sleep(3.0)
        later = call(d, "status")
        assert later["orders"] == armed_at["orders"]  # nothing placed after the kill switch
        assert "kill switch" in screen(session).lower()
        tmux("send-keys", "-t", session, "q")
        time.sleep(0.5)
        if "OPEN ORDERS" in screen(session):
            tmux("send-keys", "-t", session, "y")
        deadline = time.monotonic() + 30
        while (d / "control.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not (d / "control.sock").exists()  # engine stopped with the UI
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    verify = subprocess.run(
        [PY, "-m", "cockpit", "audit", "verify", "--data-dir", str(d)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_cockpit_when_tmux_session_killed_then_clean_shutdown_not_a_crash(tmp_path: Path) -> None:
    session = f"hup-{uuid.uuid4().hex[:10]}"
    d = tmp_path / "d"
    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "80",
        "-y",
        "24",
        f"cd {ROOT} && {PY} -m cockpit --data-dir {d}",
    )
    try:
        wait_screen(session, "KILL")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    deadline = time.monotonic() + 30
    while (d / "engine.lock").exists() and time.monotonic() < deadline:
        try:
            call(d, "status", timeout_s=1)
        except Exception:  # noqa: BLE001 - gone: the engine has stopped
            break
        time.sleep(0.2)
    time.sleep(1.0)
    import duckdb

    con = duckdb.connect(str(d / "cockpit.duckdb"), read_only=True)
    try:
        kind, payload = con.execute(
            "SELECT kind, payload FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        ks = con.execute("SELECT value FROM engine_state WHERE key='kill_switch'").fetchone()
    finally:
        con.close()
    assert kind == "shutdown", payload
    assert "SIGHUP" in payload, payload
    assert ks is None or ks[0] == "0"  # a hangup is not a UI fault: no kill switch
    assert (d / "metrics" / "metrics.prom").exists()
