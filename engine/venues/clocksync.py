"""Clock sync: measure this host's clock offset (SNTP and venue server time) and feed the clock port.

Role: the producer side of ``Clock.skew_ms()``. ``SkewMonitor`` periodically queries every source,
keeps the lowest-RTT sample and writes its offset into the clock port, which the ``clock_skew`` gate
and the ``time_skew_seconds`` metric read. ``sntp_query`` is a minimal SNTP v4 client (RFC 4330);
``SntpTestServer`` is a real SNTP server on 127.0.0.1 for tests and the network harness.

Invariants:
- Sign convention everywhere: ``offset_ms > 0`` means the LOCAL clock is AHEAD of the reference
  (same as ``Clock.skew_ms()``). NTP's theta is "server minus local", so we report ``-theta``.
- Offsets are RTT-corrected (midpoint of send/receive), never "local_after - server" (ccxt's
  ``load_time_difference`` skips the RTT/2 correction).
- Local timestamps are the raw host wall clock (``time.time_ns``): the skew being measured is the
  host's, so it must not be read through a clock that already applies a correction.
- Every failure surfaces as ``ClockSyncError`` with a one-line message naming the server/value.
- ``SkewMonitor.run`` never dies on a source error: errors are recorded in ``last_error`` and the
  previous skew stays in place (the gate keeps judging the last good measurement).
- A configured ``NTP_SERVER`` is never ignored quietly (``NtpSource``): a round with no usable
  answer (garbage, no reply, unresolvable, an unparseable value) turns it red — the ``ntp``
  readiness signal, a healthcheck warning — and each change of state is logged once (not every
  round). An unset ``NTP_SERVER`` is green ("not configured"): the venue's time is the reference.
- asyncio only, no threads; nothing here imports UI packages.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("engine.venues.clocksync")

NTP_EPOCH_DELTA_S = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix)
_PACKET = struct.Struct("!BBbbII4sQQQQ")  # RFC 4330 header, 48 bytes
_MODE_CLIENT, _MODE_SERVER = 3, 4
_LI_ALARM = 3  # leap indicator "clock not synchronized"

SampleSource = Callable[[], Awaitable["Sample"]]


class ClockSyncError(Exception):
    """A clock-sync measurement failed; the message is one line and names the server/value."""


@dataclass(frozen=True, slots=True)
class Sample:
    offset_ms: float  # > 0: local clock ahead of the reference
    rtt_ms: float
    source: str
    ts_ns: int  # local wall time when the sample completed


def offset_from_server_time(
    t_send_ns: int, t_recv_ns: int, server_ms: float
) -> tuple[float, float]:
    """(offset_ms, rtt_ms) for a request/response carrying the server's time in ms.

    The server stamped its time somewhere in the round trip; the midpoint is the best estimate of
    when (error bound rtt/2), so offset = midpoint - server.
    """
    mid_ms = (t_send_ns + t_recv_ns) / 2_000_000
    return mid_ms - server_ms, (t_recv_ns - t_send_ns) / 1_000_000


def ns_to_ntp(ts_ns: int) -> int:
    """Unix ns -> NTP era-0 64-bit fixed point (32.32). Valid until 2036-02-07 (era rollover)."""
    sec, rem = divmod(ts_ns, 1_000_000_000)
    return ((sec + NTP_EPOCH_DELTA_S) << 32) | ((rem << 32) // 1_000_000_000)


def ntp_to_ns(ts: int) -> int:
    """NTP era-0 64-bit fixed point -> Unix ns."""
    sec, frac = ts >> 32, ts & 0xFFFFFFFF
    return (sec - NTP_EPOCH_DELTA_S) * 1_000_000_000 + ((frac * 1_000_000_000) >> 32)


def parse_ntp_server(value: str, default_port: int = 123) -> tuple[str, int]:
    """``"host"``, ``"host:port"`` or ``"[v6]:port"`` -> (host, port)."""
    v = value.strip()
    host, port_s = v, ""
    if v.startswith("["):
        end = v.find("]")
        if end < 0 or (v[end + 1 :] and not v[end + 1 :].startswith(":")):
            raise ClockSyncError(f"bad NTP server {value!r}: expected [ipv6]:port")
        host, port_s = v[1:end], v[end + 2 :]
    elif v.count(":") == 1:
        host, port_s = v.split(":")
    # More than one colon without brackets: a bare IPv6 address, default port.
    if not host:
        raise ClockSyncError(f"bad NTP server {value!r}: empty host")
    if not port_s:
        return host, default_port
    try:
        port = int(port_s)
    except ValueError:
        raise ClockSyncError(f"bad NTP server {value!r}: port {port_s!r} is not a number") from None
    if not 0 < port < 65536:
        raise ClockSyncError(f"bad NTP server {value!r}: port {port} out of range")
    return host, port


class _ClientProto(asyncio.DatagramProtocol):
    def __init__(self, clock_ns: Callable[[], int]) -> None:
        self.clock_ns = clock_ns
        self.reply: asyncio.Future[tuple[bytes, int]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        t4 = self.clock_ns()  # stamp first: everything after this would inflate the RTT
        if not self.reply.done():
            self.reply.set_result((data, t4))

    def error_received(self, exc: Exception) -> None:
        # e.g. ICMP port unreachable on a connected UDP socket: fail now rather than at timeout.
        if not self.reply.done():
            self.reply.set_exception(exc)


async def sntp_query(
    server: str,
    port: int = 123,
    timeout_s: float = 1.0,
    *,
    clock_ns: Callable[[], int] = time.time_ns,
) -> Sample:
    """One SNTP v4 exchange with ``server`` (``"host"`` or ``"host:port"``; the latter wins)."""
    host, port = parse_ntp_server(server, port)
    name = f"{host}:{port}"
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ClockSyncError(f"NTP {name}: cannot resolve: {exc}") from None
    family, _, _, _, sockaddr = infos[0]
    addr = (str(sockaddr[0]), int(sockaddr[1]))
    try:
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _ClientProto(clock_ns), remote_addr=addr, family=family
        )
    except OSError as exc:
        raise ClockSyncError(f"NTP {name}: cannot open socket: {exc}") from None
    try:
        t1 = clock_ns()
        xmt = ns_to_ntp(t1)
        # LI=0, VN=4, Mode=3; only the transmit timestamp matters to the server (RFC 4330 §5).
        transport.sendto(
            _PACKET.pack(0 << 6 | 4 << 3 | _MODE_CLIENT, 0, 0, 0, 0, 0, b"\0" * 4, 0, 0, 0, xmt)
        )
        try:
            data, t4 = await asyncio.wait_for(proto.reply, timeout_s)
        except TimeoutError:
            raise ClockSyncError(f"NTP {name}: no reply within {timeout_s:g}s") from None
        except OSError as exc:
            raise ClockSyncError(f"NTP {name}: {exc}") from None
    finally:
        transport.close()
    return _parse_reply(name, data, xmt, t1, t4, clock_ns)


def _parse_reply(
    name: str, data: bytes, xmt: int, t1: int, t4: int, clock_ns: Callable[[], int]
) -> Sample:
    if len(data) < _PACKET.size:
        raise ClockSyncError(f"NTP {name}: short reply ({len(data)} bytes)")
    first, stratum, _, _, _, _, refid, _, org, rec, tx = _PACKET.unpack_from(data)
    li, mode = first >> 6, first & 7
    if mode != _MODE_SERVER:
        raise ClockSyncError(f"NTP {name}: reply mode {mode}, expected {_MODE_SERVER}")
    if stratum == 0:
        code = refid.decode("ascii", "replace").strip("\0")
        raise ClockSyncError(f"NTP {name}: kiss-o'-death {code!r}")
    if org != xmt:
        # Not an answer to our request (stale, duplicated or spoofed): never trust its times.
        raise ClockSyncError(f"NTP {name}: originate timestamp does not echo our transmit")
    if li == _LI_ALARM or tx == 0:
        raise ClockSyncError(f"NTP {name}: server clock not synchronized")
    t2, t3 = ntp_to_ns(rec), ntp_to_ns(tx)
    theta_ns = ((t2 - t1) + (t3 - t4)) / 2  # server minus local
    delay_ns = (t4 - t1) - (t3 - t2)
    return Sample(-theta_ns / 1e6, max(delay_ns, 0) / 1e6, "ntp", t4)


def sntp_source(server: str, timeout_s: float = 1.0) -> SampleSource:
    """A ``SkewMonitor`` source querying ``server`` (an ``NTP_SERVER`` value)."""
    parse_ntp_server(server)  # validate at wiring time, not on the first tick

    async def query() -> Sample:
        return await sntp_query(server, timeout_s=timeout_s)

    return query


def venue_time_source(
    fetch_time: Callable[[], Awaitable[int | None]], clock_ns: Callable[[], int] = time.time_ns
) -> SampleSource:
    """Wrap an async ``serverTime`` fetch (ms, e.g. ccxt's ``exchange.fetch_time``) as a source."""

    async def query() -> Sample:
        t_send = clock_ns()
        server_ms = await fetch_time()
        t_recv = clock_ns()
        if server_ms is None:
            raise ClockSyncError("venue: fetch_time returned no serverTime")
        offset, rtt = offset_from_server_time(t_send, t_recv, float(server_ms))
        return Sample(offset, rtt, "venue", t_recv)

    return query


class SkewSink(Protocol):
    def set_skew_ms(self, skew_ms: float) -> None: ...


class SkewMonitor:
    """Periodically samples every source and writes the best (lowest-RTT) offset to the clock."""

    HISTORY = 300

    def __init__(
        self,
        clock: SkewSink,
        sources: list[tuple[str, SampleSource]],
        interval_s: float,
        max_rtt_ms: float = 1000.0,
        on_sample: Callable[[Sample], None] | None = None,
        *,
        source_timeout_s: float = 5.0,
    ) -> None:
        self.clock = clock
        self.sources = list(sources)
        self.interval_s = interval_s
        self.max_rtt_ms = max_rtt_ms
        self.on_sample = on_sample
        # A hung venue call must not stall the whole round (SNTP has its own timeout).
        self.source_timeout_s = source_timeout_s
        self.history: deque[Sample] = deque(maxlen=self.HISTORY)  # chosen sample per round
        self.last_sample: Sample | None = None
        self.last_error: str | None = None  # most recent problem, kept until a newer one
        self.rounds = 0

    async def _one(self, fn: SampleSource) -> Sample:
        return await asyncio.wait_for(fn(), self.source_timeout_s)

    async def sample_once(self) -> Sample | None:
        """Query all sources concurrently; apply the best usable sample. None if there is none."""
        self.rounds += 1
        results = await asyncio.gather(
            *(self._one(fn) for _, fn in self.sources), return_exceptions=True
        )
        usable: list[Sample] = []
        for (name, _), res in zip(self.sources, results, strict=True):
            if isinstance(res, Sample):
                if res.rtt_ms > self.max_rtt_ms:
                    # A slow round trip bounds the offset error only to rtt/2: too loose to trust.
                    self.last_error = (
                        f"{name}: rtt {res.rtt_ms:.0f} ms > max {self.max_rtt_ms:g} ms"
                    )
                else:
                    usable.append(res)
            elif isinstance(res, TimeoutError):
                self.last_error = f"{name}: no answer within {self.source_timeout_s:g}s"
            else:
                msg = str(res).splitlines()[0] if str(res) else ""
                self.last_error = f"{name}: {type(res).__name__}: {msg}".rstrip(": ")
        if not usable:
            return None
        best = min(usable, key=lambda s: s.rtt_ms)
        self.clock.set_skew_ms(best.offset_ms)
        self.last_sample = best
        self.history.append(best)
        if self.on_sample is not None:
            try:
                self.on_sample(best)
            except Exception as exc:  # noqa: BLE001 - a broken observer must not stop clock sync
                self.last_error = f"on_sample: {type(exc).__name__}: {exc}"
        return best

    async def run(self) -> None:
        """Sample now, then every ``interval_s``, until cancelled."""
        while True:
            await self.sample_once()
            await asyncio.sleep(self.interval_s)


class NtpSource:
    """A configured ``NTP_SERVER``: its skew monitor and whether it is answering.

    ``readiness()`` is the ``ntp`` readiness signal's (ok, detail); the healthcheck's ``ntp`` check
    reads the same. ``sink`` gets every usable offset (the clock port, or the ccxt wiring's board
    that keeps the worse of venue and NTP)."""

    def __init__(
        self, server: str, sink: SkewSink, interval_s: float, *, timeout_s: float = 1.0
    ) -> None:
        self.server = server.strip()
        self.interval_s = interval_s
        self.ok: bool | None = None  # None: no round finished yet
        self.detail = f"NTP {self.server}: no answer yet"
        self.monitor: SkewMonitor | None = None
        try:
            source = sntp_source(self.server, timeout_s)
        except ClockSyncError as exc:  # unparseable: red from the start, said once
            self._set(False, str(exc))
            return
        self.monitor = SkewMonitor(
            sink, [("ntp", source)], interval_s, source_timeout_s=timeout_s + 1.0
        )

    @property
    def rounds(self) -> int:
        return self.monitor.rounds if self.monitor is not None else 0

    def readiness(self) -> tuple[bool, str]:
        return bool(self.ok), self.detail

    def _set(self, ok: bool, detail: str) -> None:
        if ok != self.ok:  # one line per change of state, never one per round
            if ok:
                log.info("NTP source %s answering again: %s", self.server, detail)
            else:
                log.warning(
                    "NTP source %s failing: %s (clock-skew checks rely on the other "
                    "sources; trading waits for the ntp readiness signal)",
                    self.server,
                    detail,
                )
        self.ok = ok
        self.detail = detail

    async def run(self) -> None:
        """Sample now, then every ``interval_s``, until cancelled."""
        if self.monitor is None:
            return
        while True:
            s = await self.monitor.sample_once()
            if s is None:
                self._set(False, self.monitor.last_error or f"NTP {self.server}: no usable answer")
            else:
                self._set(
                    True, f"NTP {self.server}: offset {s.offset_ms:+.1f} ms, rtt {s.rtt_ms:.1f} ms"
                )
            await asyncio.sleep(self.interval_s)


def ntp_readiness(source: NtpSource | None) -> tuple[bool, str]:
    """The ``ntp`` readiness signal: green when no NTP server is configured (venue time only)."""
    return source.readiness() if source is not None else (True, "not configured")


class _ServerProto(asyncio.DatagramProtocol):
    def __init__(self, server: SntpTestServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server.on_request(data, addr)


class SntpTestServer:
    """A real SNTP v4 server on 127.0.0.1 whose clock reads local time + ``offset_ms``.

    ``delay_ms`` simulates a symmetric network path: half before the request is stamped, half after
    the reply is stamped, so the client sees rtt >= delay while the true offset is unchanged.
    ``hold_ms`` is server processing time between the receive and transmit stamps (not network).
    ``stratum=0`` sends kiss-o'-death (refid ``kiss_code``); ``echo_originate=False`` replies with a
    wrong originate timestamp. Both exist to test the client's rejection paths.
    """

    def __init__(
        self,
        offset_ms: float = 0.0,
        delay_ms: float = 0.0,
        *,
        hold_ms: float = 0.0,
        stratum: int = 2,
        echo_originate: bool = True,
        kiss_code: str = "RATE",
    ) -> None:
        self.offset_ms = offset_ms
        self.delay_ms = delay_ms
        self.hold_ms = hold_ms
        self.stratum = stratum
        self.echo_originate = echo_originate
        self.kiss_code = kiss_code
        self.requests = 0
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.TimerHandle] = set()

    def _now_ntp(self) -> int:
        return ns_to_ntp(time.time_ns() + int(self.offset_ms * 1_000_000))

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ServerProto(self), local_addr=(host, port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self.port

    def stop(self) -> None:
        for h in self._pending:
            h.cancel()
        self._pending.clear()
        if self._transport is not None:
            self._transport.close()
        self._transport = None

    def _later(self, delay_s: float, fn: Callable[[], None]) -> None:
        if delay_s <= 0:
            fn()
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._pending.discard(handle)
            fn()

        handle = loop.call_later(delay_s, fire)
        self._pending.add(handle)

    def on_request(self, data: bytes, addr: Any) -> None:
        if len(data) < _PACKET.size or data[0] & 7 != _MODE_CLIENT:
            return  # not a client request: a server ignores it (RFC 4330 §8)
        self.requests += 1
        half = self.delay_ms / 2000
        self._later(half, lambda: self._reply(data, addr, half))

    def _reply(self, data: bytes, addr: Any, half_s: float) -> None:
        rec = self._now_ntp()
        client_xmt = _PACKET.unpack_from(data)[10]
        vn = (data[0] >> 3) & 7
        org = client_xmt if self.echo_originate else client_xmt ^ 0xDEADBEEF
        if self.stratum == 0:
            refid = self.kiss_code.encode("ascii")[:4].ljust(4, b"\0")
        else:
            refid = socket.inet_aton("127.0.0.1")  # stratum >= 2: upstream server's IPv4 address

        def transmit() -> None:
            tx = self._now_ntp()  # after hold_ms: the client must subtract (T3 - T2) from delay
            pkt = _PACKET.pack(
                vn << 3 | _MODE_SERVER, self.stratum, 6, -20, 0, 0, refid, rec, org, rec, tx
            )

            def send() -> None:
                if self._transport is not None:  # stopped while the reply was "in flight"
                    self._transport.sendto(pkt, addr)

            self._later(half_s, send)

        self._later(self.hold_ms / 1000, transmit)
