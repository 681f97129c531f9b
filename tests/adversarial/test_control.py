"""Issue 12 item 4 (and 6b): the control socket is an operator entry point like the TUI.

A real headless engine (the testnet profile, offline: ccxt against its own loopback venue
simulator), TOTP enrolled through the real enrolment code, a foreign order placed on the venue
behind the engine's back so reconciliation blocks its symbol, and a real socket client.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import os
import pwd
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from engine.runtime.control import call
from engine.security.keystore import KEY_ENV, generate_key
from tests.acceptance.helpers import query, start

PROFILE = """
kind = "testnet"
venue = "ccxt"
feed = "exchange"
offline = true
[risk]
safe_mode = true
[storage]
flush_interval_ms = 50.0
[feeds]
unknown_grace_s = 0.5
"""


def enroll_totp(data_dir: Path, key: str) -> str:
    """``cockpit totp enroll``'s own code path; returns the seed it showed once."""
    from cockpit.totp_cli import enroll

    out = io.StringIO()
    assert enroll(data_dir, env={KEY_ENV: key}, out=out) == 0
    m = re.search(r"Manual entry key[^:]*: ([A-Z2-7 ]+)", out.getvalue())
    assert m is not None
    return m.group(1).replace(" ", "")


def wait_socket(proc: subprocess.Popen[str], data_dir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"engine exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
        try:
            call(data_dir, "status", timeout_s=5)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    raise AssertionError("control socket never answered")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _place_foreign_order(port: int) -> None:
    """A human places an order on the account behind the engine's back (venue admin API)."""
    body = {
        "symbol": "ETH/USDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.1",
        "price": "1000",
        "newClientOrderId": "by-hand-1",
    }
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/order_external",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["status"] == "NEW"
    except urllib.error.HTTPError as exc:
        raise AssertionError(exc.read()) from None


@pytest.fixture
def orphaned(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A running engine with TOTP enrolled and ETH/USDT blocked by an orphan venue order."""
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    key = generate_key()
    seed = enroll_totp(d, key)
    prof = tmp_path / "p.toml"
    prof.write_text(PROFILE)
    proc = start(
        "--headless",
        "--profile",
        str(prof),
        "--data-dir",
        str(d),
        "--duration",
        "300",
        **{KEY_ENV: key},
    )
    try:
        wait_socket(proc, d)
        port = int((d / "venue" / "port").read_text())
        _place_foreign_order(port)
        report = call(d, "reconcile")
        assert report["mismatches"]["orphan"] == 1, report
        yield {"dir": d, "seed": seed, "proc": proc}
    finally:
        stop(proc)


def _audit(d: Path, kind: str) -> list[tuple[str, str]]:
    return query(d, f"SELECT actor, payload FROM audit_log WHERE kind = '{kind}' ORDER BY seq")


def test_socket_ack_orphans_when_totp_enrolled_and_no_code_then_refused_and_caller_audited(
    orphaned: dict[str, Any],
) -> None:
    d = orphaned["dir"]
    with pytest.raises(RuntimeError, match="TOTP code"):
        call(d, "ack_orphans", {"symbol": "ETH/USDT", "reason": "mine"})
    with pytest.raises(RuntimeError, match="wrong"):
        call(d, "ack_orphans", {"symbol": "ETH/USDT", "totp": "000000"})
    stop(orphaned["proc"])
    assert _audit(d, "orphans_acknowledged") == []
    me = pwd.getpwuid(os.getuid()).pw_name
    denied = _audit(d, "command_denied")
    assert len(denied) == 2
    assert all("AcknowledgeOrphans" in p for _, p in denied)
    assert all(re.fullmatch(rf"unix:{me}\(uid {os.getuid()},pid \d+\)", a) for a, _ in denied)


def test_socket_ack_orphans_when_valid_totp_then_lifted_and_audited_under_socket_peer(
    orphaned: dict[str, Any],
) -> None:
    d = orphaned["dir"]
    code = pyotp.TOTP(orphaned["seed"]).now()
    res = call(d, "ack_orphans", {"symbol": "ETH/USDT", "reason": "known", "totp": code})
    assert "acknowledged" in res["message"]
    with pytest.raises(RuntimeError, match="already used"):  # a code is good once
        call(d, "ack_orphans", {"symbol": "ETH/USDT", "totp": code})
    stop(orphaned["proc"])
    [(actor, payload)] = _audit(d, "orphans_acknowledged")
    assert actor.startswith(f"unix:{pwd.getpwuid(os.getuid()).pw_name}(uid {os.getuid()},pid ")
    assert "operator" not in actor
    assert "known" in payload


def test_cli_ack_orphans_when_totp_flag_then_engine_checks_it(orphaned: dict[str, Any]) -> None:
    from tests.acceptance.helpers import run

    d = orphaned["dir"]
    bad = run("ack-orphans", "ETH/USDT", "--data-dir", str(d), "--totp", "123", "--yes")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert "6 digits" in bad.stderr
    code = pyotp.TOTP(orphaned["seed"]).now()
    ok = run(
        "ack-orphans", "ETH/USDT", "--data-dir", str(d), "--totp", code, "--reason", "seen", "--yes"
    )
    assert ok.returncode == 0, ok.stderr
    assert "acknowledged" in ok.stdout


def test_socket_when_peer_uid_is_not_the_engines_then_refused(orphaned: dict[str, Any]) -> None:
    """Even with the socket's mode loosened, another user is refused by its kernel credentials."""
    if os.getuid() != 0:
        pytest.skip("needs root to act as another user")
    d = orphaned["dir"]
    sock = d / "control.sock"
    os.chmod(d, 0o711)
    os.chmod(sock, 0o666)
    nobody = pwd.getpwnam("nobody").pw_uid
    # chdir first (as root), then become nobody: a relative connect needs no access to the
    # (root-only) directories above the data dir, only to the data dir and the socket itself
    probe = (
        "import os,socket,sys\n"
        "os.chdir(sys.argv[1]);os.setuid(int(sys.argv[2]))\n"
        "s=socket.socket(socket.AF_UNIX);s.connect('control.sock')\n"
        "try:\n"
        '    s.sendall(b\'{"cmd":"ack_orphans","args":{"symbol":"ETH/USDT"}}\\n\')\n'
        "except BrokenPipeError:\n"  # refused on connect: the answer is already waiting
        "    pass\n"
        "print(s.makefile().readline())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(d), str(nobody)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert '"ok": false' in out.stdout, out
    assert f"uid {nobody}" in out.stdout, out
    assert "refused" in out.stdout


def test_socket_when_staging_profile_then_engine_is_observer_and_refuses_commands(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    proc = start("--headless", "--profile", "staging", "--data-dir", str(d), "--duration", "120")
    try:
        wait_socket(proc, d)
        with pytest.raises(RuntimeError, match="observers cannot act"):
            call(d, "ack_orphans", {"symbol": "ETH/USDT"})
    finally:
        stop(proc)
    assert len(_audit(d, "command_denied")) == 1


def test_tui_engine_when_staging_then_observer_and_disarm_and_risk_reset_denied(
    tmp_path: Path,
) -> None:
    """What the cockpit's engine thread does for the TUI: staging is observed, whoever asks."""
    from cockpit.host import EngineHost
    from engine.config.loader import load_config
    from engine.core.events import DisarmKillSwitch, ResetRisk
    from engine.store.lockfile import acquire

    d = tmp_path / "d"
    host = EngineHost(load_config("staging", env={}), d, acquire(d), role="operator")
    host.start()
    try:
        assert host.role == "observer"
        assert host.snapshot is not None
        assert host.snapshot.role == "observer"
        for cmd in (DisarmKillSwitch(reason="try"), ResetRisk(reason="try")):
            res = host.execute(cmd).result(10)
            assert not res.ok
            assert "observers cannot act" in res.message
        assert host.snapshot.kill_switch
    finally:
        host.stop("test")


def test_cli_when_staging_and_role_operator_then_refused_with_one_line(tmp_path: Path) -> None:
    from tests.acceptance.helpers import run

    res = run(
        "--headless",
        "--profile",
        "staging",
        "--role",
        "operator",
        "--duration",
        "1",
        "--data-dir",
        str(tmp_path / "d"),
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "observer" in res.stderr
    assert not (tmp_path / "d").exists()


# --- diagnostics -------------------------------------------------------------------------------

PAPER = """
kind = "paper"
venue = "paper"
feed = "sim"
offline = true
"""


def _paper_engine(tmp_path: Path, extra: str = "") -> tuple[subprocess.Popen[str], Path]:
    prof = tmp_path / "paper.toml"
    prof.write_text(PAPER + extra)
    d = tmp_path / "d"
    proc = start("--headless", "--profile", str(prof), "--data-dir", str(d), "--duration", "120")
    wait_socket(proc, d)
    return proc, d


def test_socket_bench_stats_when_diagnostics_off_then_refused(tmp_path: Path) -> None:
    proc, d = _paper_engine(tmp_path)
    try:
        for cmd in ("bench_stats", "mem_stats"):
            with pytest.raises(RuntimeError, match="diagnostics are off"):
                call(d, cmd, {}, timeout_s=10)
    finally:
        stop(proc)


def test_socket_bench_stats_when_garbage_window_invalid_then_error_and_gc_flags_untouched(
    tmp_path: Path,
) -> None:
    proc, d = _paper_engine(tmp_path, "[control]\ndiagnostics = true\n")
    try:
        for garbage in ("nan", 1e300, -1, "inf", "x", [1]):
            with pytest.raises(RuntimeError, match=r"garbage must be seconds in \(0, 60\]"):
                call(d, "bench_stats", {"garbage": garbage}, timeout_s=10)
            assert call(d, "bench_stats", {}, timeout_s=10)["gc"]["debug_flags"] == 0
        ok = call(d, "bench_stats", {"garbage": 0.2}, timeout_s=10)
        assert "garbage_top" in ok
        assert call(d, "bench_stats", {}, timeout_s=10)["gc"]["debug_flags"] == 0
    finally:
        stop(proc)
    assert proc.returncode == 0


def test_gc_saving_garbage_when_cancelled_then_debug_flags_restored() -> None:
    from engine.obs import gcwatch

    async def probe() -> None:
        with gcwatch.saving_garbage():
            await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.create_task(probe())
        await asyncio.sleep(0.05)
        assert gc.get_debug() & gc.DEBUG_SAVEALL
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert gc.get_debug() == 0
