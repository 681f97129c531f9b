"""Durability across restarts, loopback-only binding and the CLI's self-termination."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ccxt.async_support as ccxt_async
import pytest

from venuesim import VenueSim, ccxt_config, venue_urls

pytestmark = pytest.mark.asyncio
ROOT = Path(__file__).resolve().parents[2]


async def _client(port: int) -> ccxt_async.binance:
    cfg = ccxt_config()
    cfg["enableRateLimit"] = False
    ex = ccxt_async.binance(cfg)
    ex.urls["api"] = venue_urls(port)
    await ex.load_markets()
    return ex


async def test_restart_when_same_state_dir_then_orders_trades_balances_kept_and_ids_grow(
    tmp_path: Path,
) -> None:
    v = VenueSim(tmp_path, ticks_per_second=20.0)
    ex = await _client(await v.start())
    try:
        filled = await ex.create_order(
            "BTC/USDT", "market", "buy", 0.1, params={"clientOrderId": "p-1"}
        )
        bid = (await ex.fetch_order_book("BTC/USDT", 5))["bids"][0][0]
        resting = await ex.create_order(
            "BTC/USDT", "limit", "buy", 0.01, round(bid * 0.8, 2), params={"clientOrderId": "p-2"}
        )
        before = await ex.fetch_balance()
        trades_before = await ex.fetch_my_trades("BTC/USDT")
    finally:
        await ex.close()
        await v.stop()

    v2 = VenueSim(tmp_path, ticks_per_second=20.0)
    ex = await _client(await v2.start())
    try:
        after = await ex.fetch_balance()
        assert after["BTC"] == before["BTC"]
        assert after["USDT"] == before["USDT"]
        assert after["USDT"]["used"] > 0  # the resting order's lock survived
        opened = await ex.fetch_open_orders("BTC/USDT")
        assert [o["id"] for o in opened] == [resting["id"]]
        got = await ex.fetch_order(None, "BTC/USDT", params={"clientOrderId": "p-1"})
        assert got["id"] == filled["id"]
        assert got["status"] == "closed"
        assert [t["id"] for t in await ex.fetch_my_trades("BTC/USDT")] == [
            t["id"] for t in trades_before
        ]
        new = await ex.create_order(
            "BTC/USDT", "market", "buy", 0.1, params={"clientOrderId": "p-3"}
        )
        assert int(new["id"]) > int(resting["id"])
        assert min(int(t["id"]) for t in new["trades"]) > max(int(t["id"]) for t in trades_before)
        await ex.cancel_order(resting["id"], "BTC/USDT")
    finally:
        await ex.close()
        await v2.stop()


async def test_start_when_host_not_loopback_then_refused(tmp_path: Path) -> None:
    v = VenueSim(tmp_path)
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        await v.start(host="0.0.0.0")  # noqa: S104 - the simulator binds where it is told; tests use 127.0.0.1
    await v.stop()


def _spawn(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "venuesim",
            "--state",
            str(tmp_path / "st"),
            "--port-file",
            str(port_file),
            "--ticks-per-second",
            "5",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port_file


async def _wait_port(port_file: Path, proc: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 15
    while not port_file.exists():  # noqa: ASYNC240 - start-up only, a local file
        assert proc.poll() is None
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    return int(port_file.read_text())  # noqa: ASYNC240 - start-up only, a local file


async def test_cli_when_max_lifetime_elapses_then_port_file_written_and_process_exits(
    tmp_path: Path,
) -> None:
    proc, port_file = _spawn(tmp_path, "--max-lifetime", "2")
    try:
        port = await _wait_port(port_file, proc)
        ex = await _client(port)
        try:
            assert await ex.fetch_time() > 0
        finally:
            await ex.close()
        for _ in range(100):
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert proc.returncode == 0
        assert (tmp_path / "st" / "venue.sqlite").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_cli_when_sigterm_then_exits_cleanly(tmp_path: Path) -> None:
    proc, port_file = _spawn(tmp_path, "--max-lifetime", "60")
    try:
        await _wait_port(port_file, proc)
        os.kill(proc.pid, signal.SIGTERM)
        for _ in range(50):
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_cli_when_parent_dies_then_exits_with_parent(tmp_path: Path) -> None:
    # An intermediate shell is the parent; killing it orphans the simulator.
    port_file = tmp_path / "port"
    cmd = (
        f"{sys.executable} -m venuesim --state {tmp_path / 'st'} --port-file {port_file} "
        f"--ticks-per-second 5 --max-lifetime 60 --exit-with-parent & echo $!; wait"
    )
    shell = subprocess.Popen(["sh", "-c", cmd], cwd=ROOT, stdout=subprocess.PIPE)  # noqa: ASYNC220 - Popen returns at once; the child runs on its own
    assert shell.stdout is not None
    child = int(shell.stdout.readline())
    try:
        await _wait_port(port_file, shell)
        shell.kill()
        shell.wait()
        for _ in range(50):
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("simulator outlived its parent")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
