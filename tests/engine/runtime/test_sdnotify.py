"""sd_notify client against real AF_UNIX datagram sockets (a path in a temp dir and an abstract
name), the watchdog interval rules of sd_watchdog_enabled(3), and the watchdog loop."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

from engine.runtime import sdnotify
from engine.runtime.sdnotify import ServiceNotifier


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


@pytest.fixture
def path_socket() -> Iterator[tuple[str, socket.socket]]:
    # A short directory: AF_UNIX paths are limited to 107 bytes, pytest's tmp_path may be longer.
    with tempfile.TemporaryDirectory(prefix="sdn-") as d:
        path = os.path.join(d, "notify.sock")
        sock = _receiver(path)
        try:
            yield path, sock
        finally:
            sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    name = f"cockpit-test-{os.getpid()}-{uuid.uuid4().hex}"
    sock = _receiver(b"\0" + name.encode())
    try:
        yield "@" + name, sock
    finally:
        sock.close()


def _drain(sock: socket.socket) -> list[bytes]:
    """Every datagram already queued, without waiting for more."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    got = []
    try:
        while True:
            got.append(sock.recv(4096))
    except BlockingIOError:
        return got
    finally:
        sock.settimeout(timeout)


@pytest.mark.parametrize("which", ["path_socket", "abstract_socket"])
def test_messages_arrive_exactly(which: str, request: pytest.FixtureRequest) -> None:
    address, sock = request.getfixturevalue(which)
    env = {"NOTIFY_SOCKET": address}
    assert sdnotify.ready("trading BTC/USDT", env=env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=trading BTC/USDT"
    assert sdnotify.ready(env=env)
    assert sock.recv(4096) == b"READY=1"
    assert sdnotify.status("reconciling", env=env)
    assert sock.recv(4096) == b"STATUS=reconciling"
    assert sdnotify.watchdog(env=env)
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.stopping(env=env)
    assert sock.recv(4096) == b"STOPPING=1"
    assert sdnotify.main_pid(4242, env=env)
    assert sock.recv(4096) == b"MAINPID=4242"
    assert sdnotify.extend_timeout(1.5, env=env)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=1500000"
    assert sdnotify.notify("READY=1\nSTATUS=x", env=env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=x"
    assert _drain(sock) == []


def test_status_cannot_inject_a_second_assignment(path_socket: tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    env = {"NOTIFY_SOCKET": address}
    assert sdnotify.status("venue error:\nREADY=1\r\nMAINPID=1", env=env)
    assert sock.recv(4096) == b"STATUS=venue error: READY=1 MAINPID=1"
    assert sdnotify.ready("line one\nWATCHDOG=trigger", env=env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=line one WATCHDOG=trigger"


def test_process_environment_is_the_default(
    path_socket: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, sock = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert sdnotify.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier = ServiceNotifier()
    monkeypatch.delenv("NOTIFY_SOCKET")  # the notifier keeps the environment it was built with
    assert notifier.enabled
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_no_notify_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready("x") is False
    assert sdnotify.watchdog() is False
    assert sdnotify.notify("READY=1", env={}) is False
    assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": ""}) is False
    assert ServiceNotifier({}).enabled is False


def test_a_socket_pointing_nowhere_returns_false() -> None:
    with tempfile.TemporaryDirectory(prefix="sdn-") as d:
        plain_file = os.path.join(d, "not-a-socket")
        with open(plain_file, "w") as f:
            f.write("x")
        for address in (
            os.path.join(d, "missing.sock"),  # ENOENT
            plain_file,  # ECONNREFUSED
            f"@cockpit-nobody-{uuid.uuid4().hex}",  # abstract name nobody bound
            "relative.sock",  # unsupported: not absolute
            "vsock:2:1234",  # unsupported here
            "@",  # empty abstract name
        ):
            assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": address}) is False, address
            assert ServiceNotifier({"NOTIFY_SOCKET": address}).watchdog() is False


def test_a_closed_receiver_returns_false(path_socket: tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    sock.close()  # the service manager went away; its socket file is still there
    assert sdnotify.stopping(env={"NOTIFY_SOCKET": address}) is False


def test_watchdog_interval_parsing() -> None:
    me = str(os.getpid())
    assert sdnotify.watchdog_interval_s({}) is None
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}) == 15.0
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "1", "WATCHDOG_PID": me}) == 5e-7
    other = str(os.getpid() + 1)
    assert (
        sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": other}) is None
    )
    for bad_pid in ("", "abc", "-1", f"{me}.0"):
        env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": bad_pid}
        assert sdnotify.watchdog_interval_s(env) is None, bad_pid
    for bad_usec in ("", "0", "-5", "1.5", "30s", "abc", "١٢٣", " "):
        assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": bad_usec}) is None, bad_usec
    assert ServiceNotifier({"WATCHDOG_USEC": "2000000"}).watchdog_interval_s == 1.0


async def _recv(sock: socket.socket, timeout: float = 2.0) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), timeout)


async def test_watchdog_pings_only_while_alive(path_socket: tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    sock.setblocking(False)
    interval = 0.05
    notifier = ServiceNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"})
    assert notifier.watchdog_interval_s == interval
    alive = [True]
    task = asyncio.create_task(notifier.run_watchdog(lambda: alive[0]))
    try:
        start = time.monotonic()
        for _ in range(5):
            assert await _recv(sock) == b"WATCHDOG=1"
        assert time.monotonic() - start >= 4 * interval * 0.8  # paced, not a burst
        alive[0] = False  # same thread as the watchdog task: no ping can follow this line
        _drain(sock)
        await asyncio.sleep(interval * 6)
        assert _drain(sock) == []
        assert not task.done()  # it waits for recovery; systemd decides when to restart
        alive[0] = True
        assert await _recv(sock) == b"WATCHDOG=1"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_raising_health_check_withholds_pings(
    path_socket: tuple[str, socket.socket],
) -> None:
    address, sock = path_socket
    calls = []

    def broken() -> bool:
        calls.append(1)
        raise RuntimeError("probe failed")

    notifier = ServiceNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "40000"})
    task = asyncio.create_task(notifier.run_watchdog(broken))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 3
    assert _drain(sock) == []


async def test_watchdog_loop_without_watchdog_returns_at_once(
    path_socket: tuple[str, socket.socket],
) -> None:
    address, sock = path_socket
    pid = str(os.getpid() + 1)  # the variables belong to another process (a parent)
    for env in (
        {"NOTIFY_SOCKET": address},
        {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": pid},
    ):
        await asyncio.wait_for(ServiceNotifier(env).run_watchdog(lambda: True), 1.0)
    assert _drain(sock) == []
