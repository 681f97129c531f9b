"""Egress guard: an aiohttp session that refuses to dial anything but loopback when offline.

ccxt accepts a caller-owned session (``config['session']``) and uses it for REST and for the
websocket handshakes, so one ``TraceConfig`` hook sees every connection attempt. A refused request
raises ``EgressBlocked`` (a ``ClientConnectionError``): ccxt surfaces it as ExchangeNotAvailable /
NetworkError and nothing leaves the machine. Every dialled host is recorded, so a test can prove
that a run touched loopback only.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from types import SimpleNamespace
from typing import Any

import aiohttp

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class EgressBlocked(aiohttp.ClientConnectionError):
    pass


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EgressGuard:
    def __init__(self, offline: bool) -> None:
        self.offline = offline
        self.dialled: Counter[str] = Counter()
        self.blocked: Counter[str] = Counter()

    async def _on_request_start(
        self, session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        host = params.url.host or ""
        if self.offline and not is_loopback(host):
            self.blocked[host] += 1
            raise EgressBlocked(f"EgressBlocked {params.method} {params.url} (offline profile)")
        self.dialled[host] += 1

    def session(self) -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        return aiohttp.ClientSession(trace_configs=[trace])
