"""Clock sync over real SNTP on 127.0.0.1: offset math, sign convention, rejection paths, monitor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from engine.core.clock import RealClock
from engine.venues.clocksync import (
    ClockSyncError,
    Sample,
    SkewMonitor,
    SntpTestServer,
    ns_to_ntp,
    ntp_to_ns,
    offset_from_server_time,
    parse_ntp_server,
    sntp_query,
    venue_time_source,
)

TOL_MS = 20.0

ServerFactory = Callable[..., Awaitable[SntpTestServer]]


@pytest.fixture
async def sntp_server() -> AsyncIterator[ServerFactory]:
    started: list[SntpTestServer] = []

    async def make(**kw: Any) -> SntpTestServer:
        srv = SntpTestServer(**kw)
        await srv.start(port=0)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


def test_offset_from_server_time_when_local_ahead_then_positive_and_rtt_corrected() -> None:
    # Sent at 1000 ms, received at 1100 ms (local); server says 900 ms at the midpoint (1050 local).
    offset, rtt = offset_from_server_time(1_000_000_000, 1_100_000_000, 900.0)
    assert offset == pytest.approx(150.0)
    assert rtt == pytest.approx(100.0)


def test_offset_from_server_time_when_local_behind_then_negative() -> None:
    offset, rtt = offset_from_server_time(5_000_000_000, 5_000_000_000, 5_300.0)
    assert offset == pytest.approx(-300.0)
    assert rtt == 0.0


def test_ntp_timestamp_roundtrip_when_converted_then_sub_microsecond_and_era0() -> None:
    ts = 1_767_225_600_123_456_789
    assert abs(ntp_to_ns(ns_to_ntp(ts)) - ts) <= 1
    assert ns_to_ntp(0) >> 32 == 2_208_988_800  # Unix epoch in NTP seconds


def test_parse_ntp_server_when_host_port_then_split_and_default_port() -> None:
    assert parse_ntp_server("127.0.0.1:12345") == ("127.0.0.1", 12345)
    assert parse_ntp_server("pool.ntp.org") == ("pool.ntp.org", 123)
    assert parse_ntp_server("[::1]:999") == ("::1", 999)


@pytest.mark.parametrize("bad", ["127.0.0.1:abc", ":123", "host:70000", ""])
def test_parse_ntp_server_when_malformed_then_error_names_value(bad: str) -> None:
    with pytest.raises(ClockSyncError, match="bad NTP server"):
        parse_ntp_server(bad)


async def test_sntp_query_when_server_250ms_ahead_then_local_offset_minus_250(
    sntp_server: ServerFactory,
) -> None:
    srv = await sntp_server(offset_ms=250.0)
    s = await sntp_query("127.0.0.1", srv.port)
    assert s.offset_ms == pytest.approx(-250.0, abs=TOL_MS)
    assert s.source == "ntp"
    assert 0 <= s.rtt_ms < 100
    assert abs(s.ts_ns - time.time_ns()) < 1_000_000_000
    assert srv.requests == 1


async def test_sntp_query_when_host_port_string_and_server_3s_behind_then_plus_3000(
    sntp_server: ServerFactory,
) -> None:
    srv = await sntp_server(offset_ms=-3000.0)
    # The NTP_SERVER form: "host:port" overrides the port argument.
    s = await sntp_query(f"127.0.0.1:{srv.port}")
    assert s.offset_ms == pytest.approx(3000.0, abs=TOL_MS)


async def test_sntp_query_when_path_delay_200ms_then_rtt_reflects_it_and_offset_holds(
    sntp_server: ServerFactory,
) -> None:
    srv = await sntp_server(offset_ms=400.0, delay_ms=200.0)
    s = await sntp_query("127.0.0.1", srv.port)
    assert s.rtt_ms >= 195.0  # timer granularity
    assert s.rtt_ms < 400.0
    assert s.offset_ms == pytest.approx(-400.0, abs=TOL_MS)


async def test_sntp_query_when_server_holds_request_then_hold_excluded_from_rtt(
    sntp_server: ServerFactory,
) -> None:
    srv = await sntp_server(offset_ms=-600.0, delay_ms=60.0, hold_ms=200.0)
    t0 = time.monotonic()
    s = await sntp_query("127.0.0.1", srv.port)
    assert time.monotonic() - t0 >= 0.25  # the wall round trip did include the hold
    assert 55.0 <= s.rtt_ms < 150.0  # ...but the NTP delay counts only the network path
    assert s.offset_ms == pytest.approx(600.0, abs=TOL_MS)


async def test_sntp_query_when_server_silent_then_error_within_timeout() -> None:
    loop = asyncio.get_running_loop()
    # Bound but silent: no ICMP "port unreachable", so only the timeout can end the wait.
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(ClockSyncError, match=f"127.0.0.1:{port}.*no reply"):
            await sntp_query("127.0.0.1", port, timeout_s=0.3)
        assert 0.25 <= time.monotonic() - t0 < 1.0
    finally:
        transport.close()


async def test_sntp_query_when_originate_not_echoed_then_error(sntp_server: ServerFactory) -> None:
    srv = await sntp_server(echo_originate=False)
    with pytest.raises(ClockSyncError, match="originate"):
        await sntp_query("127.0.0.1", srv.port)


async def test_sntp_query_when_stratum_zero_then_kiss_of_death_error(
    sntp_server: ServerFactory,
) -> None:
    srv = await sntp_server(stratum=0, kiss_code="DENY")
    with pytest.raises(ClockSyncError, match="kiss-o'-death 'DENY'"):
        await sntp_query("127.0.0.1", srv.port)


async def test_sntp_server_when_non_client_packet_then_ignored(sntp_server: ServerFactory) -> None:
    srv = await sntp_server()
    loop = asyncio.get_running_loop()
    got: list[bytes] = []

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.append(data)

    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=("127.0.0.1", srv.port))
    try:
        transport.sendto(bytes([4 << 3 | 4]) + b"\0" * 47)  # mode 4: a server packet
        await asyncio.sleep(0.1)
    finally:
        transport.close()
    assert got == []
    assert srv.requests == 0


async def test_sample_once_when_two_sources_then_lowest_rtt_sets_real_clock_skew(
    sntp_server: ServerFactory,
) -> None:
    slow = await sntp_server(offset_ms=500.0, delay_ms=150.0)
    fast = await sntp_server(offset_ms=-1000.0)
    clock = RealClock()
    seen: list[Sample] = []
    mon = SkewMonitor(
        clock,
        [
            ("slow", lambda: sntp_query("127.0.0.1", slow.port)),
            ("fast", lambda: sntp_query("127.0.0.1", fast.port)),
        ],
        interval_s=1.0,
        on_sample=seen.append,
    )
    assert not clock.skew_measured
    best = await mon.sample_once()
    assert best is not None
    assert best.rtt_ms < 150.0
    assert clock.skew_measured
    assert clock.skew_ms() == pytest.approx(1000.0, abs=TOL_MS)
    assert list(mon.history) == [best]
    assert seen == [best]
    assert mon.last_error is None
    assert slow.requests == 1
    assert fast.requests == 1


async def test_run_when_a_source_fails_then_error_recorded_and_loop_keeps_sampling(
    sntp_server: ServerFactory,
) -> None:
    good = await sntp_server(offset_ms=-700.0)
    calls = 0

    async def broken() -> Sample:
        nonlocal calls
        calls += 1
        raise ClockSyncError("NTP 10.9.9.9:123: no reply within 1s")

    clock = RealClock()
    mon = SkewMonitor(
        clock,
        [("ntp-bad", broken), ("ntp-good", lambda: sntp_query("127.0.0.1", good.port))],
        interval_s=0.05,
    )
    task = asyncio.create_task(mon.run())
    await asyncio.sleep(0.4)
    assert not task.done()  # the loop survived the failing source
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls >= 3
    assert mon.rounds >= 3
    assert good.requests >= 3
    assert len(mon.history) >= 3
    assert mon.last_error is not None
    assert mon.last_error.startswith("ntp-bad: ClockSyncError")
    assert clock.skew_ms() == pytest.approx(700.0, abs=TOL_MS)


async def test_sample_once_when_only_source_fails_then_none_and_skew_untouched() -> None:
    async def broken() -> Sample:
        raise OSError("network unreachable")

    clock = RealClock()
    clock.set_skew_ms(42.0)
    mon = SkewMonitor(clock, [("venue", broken)], interval_s=1.0)
    assert await mon.sample_once() is None
    assert clock.skew_ms() == 42.0
    assert len(mon.history) == 0
    assert mon.last_error == "venue: OSError: network unreachable"


async def test_sample_once_when_source_rtt_above_max_then_discarded(
    sntp_server: ServerFactory,
) -> None:
    slow = await sntp_server(offset_ms=900.0, delay_ms=250.0)
    fast = await sntp_server(offset_ms=100.0)
    clock = RealClock()
    mon = SkewMonitor(
        clock,
        [
            ("slow", lambda: sntp_query("127.0.0.1", slow.port)),
            ("fast", lambda: sntp_query("127.0.0.1", fast.port)),
        ],
        interval_s=1.0,
        max_rtt_ms=150.0,
    )
    best = await mon.sample_once()
    assert best is not None
    assert clock.skew_ms() == pytest.approx(-100.0, abs=TOL_MS)
    assert mon.last_error is not None
    assert mon.last_error.startswith("slow: rtt")
    # Alone, the slow source yields nothing usable and the clock keeps the previous skew.
    alone = SkewMonitor(
        clock, [("slow", lambda: sntp_query("127.0.0.1", slow.port))], 1.0, max_rtt_ms=150.0
    )
    assert await alone.sample_once() is None
    assert clock.skew_ms() == pytest.approx(-100.0, abs=TOL_MS)


async def test_sample_once_when_source_hangs_then_timed_out_not_stalled() -> None:
    async def hang() -> Sample:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    mon = SkewMonitor(RealClock(), [("venue", hang)], 1.0, source_timeout_s=0.1)
    t0 = time.monotonic()
    assert await mon.sample_once() is None
    assert time.monotonic() - t0 < 1.0
    assert mon.last_error is not None
    assert "no answer" in mon.last_error


async def test_venue_time_source_when_server_ahead_then_negative_offset_with_rtt() -> None:
    async def fetch_time() -> int:  # stands for ccxt's exchange.fetch_time
        await asyncio.sleep(0.03)
        return time.time_ns() // 1_000_000 + 2000

    s = await venue_time_source(fetch_time)()
    assert s.source == "venue"
    assert s.offset_ms == pytest.approx(-2000.0, abs=TOL_MS)
    assert 25.0 <= s.rtt_ms < 500.0


async def test_venue_time_source_when_injected_clock_then_exact_midpoint_math() -> None:
    ticks = iter([10_000_000_000, 10_200_000_000])  # send at 10.0 s, receive at 10.2 s

    async def fetch_time() -> int:
        return 9_600  # server ms; local midpoint is 10_100 ms -> local ahead by 500

    s = await venue_time_source(fetch_time, clock_ns=lambda: next(ticks))()
    assert (s.offset_ms, s.rtt_ms, s.ts_ns) == (500.0, 200.0, 10_200_000_000)


async def test_venue_time_source_when_fetch_returns_none_then_error() -> None:
    async def fetch_time() -> None:
        return None

    with pytest.raises(ClockSyncError, match="venue"):
        await venue_time_source(fetch_time)()
