"""Clock sources and market feeds that fail quietly (issue 12, items 8 and 11).

NTP: a configured ``NTP_SERVER`` that answers garbage or nothing was ignored (nothing logged,
healthcheck OK, the skew gate silently on the venue alone), and the paper profile ignored
``NTP_SERVER`` altogether. Now a failing configured source is a red ``ntp`` readiness signal, one
log line per state change, and a healthcheck warning. Real UDP sockets on 127.0.0.1, the real
cockpit process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.clock import RealClock
from engine.clocksync import NtpSource, SntpTestServer
from tests.acceptance.helpers import FAST_PROFILE, query, run, start, wait_for_log

NTP_PROFILE = FAST_PROFILE + "\n[clock]\nskew_check_interval_s = 0.3\n"


class _Garbage(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.transport.sendto(b"\x1b[2J not an NTP packet", addr)  # type: ignore[attr-defined]


class UdpResponder:
    """A real UDP endpoint on 127.0.0.1 on its own thread: ``garbage`` answers every request with
    junk, ``silent`` never answers, ``good`` is a real SNTP server (``offset_ms`` ahead)."""

    def __init__(self, kind: str, offset_ms: float = 0.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.kind = kind
        self.offset_ms = offset_ms
        self.port = 0
        self._silent: socket.socket | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._sntp: SntpTestServer | None = None

    def start(self) -> int:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)
        return self.port

    async def _start(self) -> int:
        if self.kind == "silent":
            self._silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._silent.bind(("127.0.0.1", 0))
            return int(self._silent.getsockname()[1])
        if self.kind == "good":
            self._sntp = SntpTestServer(offset_ms=self.offset_ms)
            return await self._sntp.start(0)
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            _Garbage, local_addr=("127.0.0.1", 0)
        )
        return int(self._transport.get_extra_info("sockname")[1])

    def stop(self) -> None:
        def close() -> None:
            if self._transport is not None:
                self._transport.close()
            if self._sntp is not None:
                self._sntp.stop()
            if self._silent is not None:
                self._silent.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self.thread.join(5)


@pytest.fixture
def responder() -> Iterator[object]:
    made: list[UdpResponder] = []

    def make(kind: str, offset_ms: float = 0.0) -> UdpResponder:
        r = UdpResponder(kind, offset_ms)
        r.start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def _log(d: Path) -> list[dict]:
    return [json.loads(line) for line in (d / "logs" / "engine.log").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["garbage", "silent"])
def test_paper_run_when_ntp_server_fails_then_readiness_red_logged_once_and_health_warns(
    tmp_path: Path, responder, kind: str
) -> None:
    ntp = responder(kind)
    d = tmp_path / "d"
    prof = tmp_path / "p.toml"
    prof.write_text(NTP_PROFILE)
    p = start("--headless", "--profile", str(prof), "--data-dir", str(d), "--duration", "8",
              NTP_SERVER=f"127.0.0.1:{ntp.port}")  # fmt: skip
    try:
        wait_for_log(d, "engine running")
        wait_for_log(d, "NTP source", 10)
        health = run("healthcheck", "--data-dir", str(d), "--json")
    finally:
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    checks = {c["name"]: c for c in json.loads(health.stdout)["checks"]}
    assert checks["ntp"]["status"] == "degraded", checks
    assert f"127.0.0.1:{ntp.port}" in checks["ntp"]["detail"]
    assert health.returncode == 1
    lines = [r for r in _log(d) if "NTP source" in r["msg"]]
    assert len(lines) == 1 and lines[0]["level"] == "warning", lines  # once, not per poll
    assert query(d, "SELECT count(*) FROM orders")[0][0] == 0  # readiness red: nothing sent
    reasons = query(d, "SELECT reason FROM gate_events WHERE gate = 'readiness' AND "
                       "action = 'deny' LIMIT 1")  # fmt: skip
    assert reasons and "ntp" in reasons[0][0]


def test_paper_run_when_ntp_server_3s_ahead_then_skew_gate_blocks(tmp_path: Path, responder):
    ntp = responder("good", offset_ms=3000.0)
    d = tmp_path / "d"
    prof = tmp_path / "p.toml"
    prof.write_text(NTP_PROFILE)
    res = run("--headless", "--profile", str(prof), "--data-dir", str(d), "--duration", "5",
              NTP_SERVER=f"127.0.0.1:{ntp.port}")  # fmt: skip
    assert res.returncode == 0, res.stderr
    denied = query(d, "SELECT count(*) FROM gate_events WHERE gate='clock_skew' AND action='deny'")
    assert denied[0][0] > 0
    assert query(d, "SELECT count(*) FROM orders")[0][0] <= 3  # at most before the first answer


async def test_ntp_source_when_server_fails_then_recovers_then_one_line_per_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Garbage answers for several rounds, then a real SNTP server on the same port."""
    loop = asyncio.get_running_loop()
    garbage, _ = await loop.create_datagram_endpoint(_Garbage, local_addr=("127.0.0.1", 0))
    port = garbage.get_extra_info("sockname")[1]
    clock = RealClock()
    src = NtpSource(f"127.0.0.1:{port}", clock, interval_s=0.05, timeout_s=0.3)
    caplog.set_level(logging.INFO, logger="engine.clocksync")
    task = asyncio.create_task(src.run())
    try:
        for _ in range(100):
            if src.rounds >= 4:
                break
            await asyncio.sleep(0.05)
        ok, detail = src.readiness()
        assert not ok and f"127.0.0.1:{port}" in detail and src.rounds >= 4
        garbage.close()
        await asyncio.sleep(0.05)  # the transport closes at the next loop turn: port free again
        good = SntpTestServer(offset_ms=0.0)
        await good.start(port)
        try:
            for _ in range(100):
                if src.readiness()[0]:
                    break
                await asyncio.sleep(0.05)
            rounds = src.rounds
            while src.rounds < rounds + 3:
                await asyncio.sleep(0.05)
        finally:
            good.stop()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert src.readiness()[0] and clock.skew_measured
    msgs = [r.getMessage() for r in caplog.records if "NTP source" in r.getMessage()]
    assert len(msgs) == 2 and "failing" in msgs[0] and "answering" in msgs[1], msgs
