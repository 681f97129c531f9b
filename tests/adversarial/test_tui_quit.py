"""The cockpit's quit path and UI failures.

Pressing ``q`` then quickly ``n`` crashed the UI (the note prompt was mounted on an app already
shutting down); the crash armed the kill switch, the process still exited 0 and the traceback was
hidden behind the "quit" exit message. Now: keys after a quit do nothing, and any genuine UI
failure is shown on stderr, logged, and exits 1 with trading halted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from cockpit.app import CockpitApp
from engine.core.events import SetSafeMode
from tests.acceptance.test_tmux import tmux, wait_screen
from tests.cockpit.test_app import make_host  # noqa: F401 - fixture
from tests.conftest import PY, ROOT, query

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


async def test_q_then_n_when_pressed_back_to_back_then_clean_quit_no_crash(make_host) -> None:  # noqa: F811
    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        # the case under test is a plain quit: with an order open, q asks first and n declines
        # (on a loaded CI box the fast profile had one open at that instant). Safe mode stops
        # new orders; wait until none is open.
        assert host.execute(SetSafeMode(on=True, actor="op", reason="quit test")).result(10).ok
        for _ in range(100):
            if app.snap is not None and app.snap.open_orders == 0:
                break
            await pilot.pause(0.1)
        app.simulate_key("q")  # both keys queued before the first is handled: a fast typist
        app.simulate_key("n")
        await pilot.pause(0.5)
    assert app.return_code == 0
    assert not host.snapshot.kill_switch


def _run_in_tmux(tmp_path: Path, module: list[str], keys: list[str]) -> tuple[int, str, Path]:
    """The real cockpit in tmux; ``keys`` sent once its footer is drawn. Returns (exit code,
    what the terminal received after the screen was restored, data dir) once it ended."""
    session = f"q-{uuid.uuid4().hex[:10]}"
    d = tmp_path / "d"
    out, rc = tmp_path / "terminal", tmp_path / "rc"
    # Textual draws on stderr: it stays the terminal; the pane's whole output is recorded
    cmd = f"cd {ROOT} && {PY} {' '.join(module)} --data-dir {d}; echo $? >{rc}; sleep 60"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd)
    tmux("pipe-pane", "-o", "-t", session, f"cat >> {out}")
    try:
        wait_screen(session, "KILL")
        time.sleep(1.0)
        tmux("send-keys", "-t", session, *keys)
        deadline = time.monotonic() + 60
        while not rc.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.2)
        text = out.read_text(errors="replace")
        after = text[text.rfind("\x1b[?1049l") :]  # the alternate screen left: what stays
        return int(rc.read_text()), re.sub(r"\x1b\[[0-9;?<>=]*[a-zA-Z]", "", after), d
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def _kill_switch(d: Path) -> str | None:
    row = query(d, "SELECT value FROM engine_state WHERE key='kill_switch'")
    return row[0][0] if row else None


@needs_tmux
def test_q_then_n_when_typed_fast_in_a_terminal_then_exit_0_and_kill_switch_not_armed(
    tmp_path: Path,
) -> None:
    code, err, d = _run_in_tmux(tmp_path, ["-m", "cockpit"], ["q", "n"])
    assert code == 0, err[-2000:]
    assert _kill_switch(d) in (None, "0")
    assert "Traceback" not in err
    assert "NoMatches" not in err


@needs_tmux
def test_ui_fault_when_raised_then_shown_logged_exit_1_and_trading_halted(tmp_path: Path) -> None:
    code, err, d = _run_in_tmux(tmp_path, ["-m", "tests.adversarial.ui_fault"], ["?"])
    assert code == 1, err[-2000:]
    tail = err[-3000:]
    assert "injected UI fault" in tail  # shown after the screen was restored
    assert "kill switch armed" in tail
    assert _kill_switch(d) == "1"
    logged = [json.loads(line) for line in (d / "logs" / "engine.log").read_text().splitlines()]
    failed = [r for r in logged if r["level"] == "critical" and "UI failed" in r["msg"]]
    assert failed
    assert "injected UI fault" in failed[0].get("exc", "") + failed[0]["msg"]
    assert "RuntimeError" in failed[0].get("exc", "")
