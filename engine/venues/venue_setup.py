"""Open the ccxt venue for a profile: loopback simulator when offline, exchange testnet otherwise.

- Offline (``offline = true``) with no ``exchange.rest_url``: the cockpit starts the loopback venue
  simulator as a child process (its own CPU and its own persistent state under
  ``<data-dir>/venue``; it exits with its parent and after a lifetime bound) and points ccxt at it.
- ``exchange.rest_url``/``ws_url`` given: ccxt talks to that Binance-compatible endpoint (it must be
  loopback while offline — the egress guard refuses anything else).
- Online testnet: ccxt's own sandbox URLs.
Every ccxt session goes through the ``EgressGuard``; ccxt debug logging stays off (it prints keys).
NET_SIM_* faults are applied by the simulator on its side of the wire (tests and drills only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import ccxt
import ccxt.pro as ccxtpro

from engine.config.live_locks import check_live_locks
from engine.config.loader import Config, ConfigError
from engine.core.clock import Clock
from engine.core.envvars import LIVE_API_KEY
from engine.venues.binance_urls import binance_urls, ccxt_options
from engine.venues.ccxt_venue import CcxtVenue
from engine.venues.egress import EgressGuard
from engine.venues.venue_errors import VenueUnreachable

log = logging.getLogger("engine.venues.venue_setup")

SIM_KEY, SIM_SECRET = "sim-key", "sim-secret"


def check_testnet_keys(cfg: Config, env: Mapping[str, str]) -> None:
    """A testnet profile must never run with the live key."""
    live_key = env.get(LIVE_API_KEY, "")
    if (
        cfg.kind in ("testnet", "staging")
        and cfg.exchange.api_key
        and (cfg.exchange.api_key == live_key)
    ):
        raise ConfigError(
            "testnet key equals the live key (LIVE_API_KEY); refusing to start",
            origin="env API_KEY",
            key="exchange.api_key",
        )


class VenueProcess:
    """The loopback venue simulator in a child process."""

    def __init__(
        self, state_dir: Path, *, seed: int, ticks_per_second: float, max_lifetime_s: float
    ) -> None:
        self.state_dir = state_dir
        self.seed = seed
        self.tps = ticks_per_second
        self.max_lifetime_s = max_lifetime_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    async def start(self, timeout_s: float = 20.0) -> int:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        port_file = self.state_dir / "port"
        port_file.unlink(missing_ok=True)
        log_file = open(self.state_dir / "venue.log", "ab")  # noqa: ASYNC230, SIM115 - child owns it
        self.proc = subprocess.Popen(  # noqa: ASYNC220, S603 - Popen returns at once; the child runs on its own; fixed argv, no shell
            [
                sys.executable,
                "-m",
                "venuesim",
                "--state",
                str(self.state_dir),
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--seed",
                str(self.seed),
                "--ticks-per-second",
                str(self.tps),
                "--max-lifetime",
                str(self.max_lifetime_s),
                "--exit-with-parent",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2],  # noqa: ASYNC240 - start-up only, a local file
        )
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"venue simulator exited with {self.proc.returncode}; see "
                    f"{self.state_dir / 'venue.log'}"
                )
            if port_file.exists():
                text = port_file.read_text().strip()
                if text:
                    self.port = int(text)
                    return self.port
            await asyncio.sleep(0.05)
        await self.stop()
        raise RuntimeError(f"venue simulator did not start within {timeout_s:g}s")

    async def admin(self, action: str, payload: dict[str, Any]) -> Any:
        url = f"http://127.0.0.1:{self.port}/admin/{action}"
        async with aiohttp.ClientSession() as s, s.post(url, json=payload) as r:
            text = await r.text()
            if r.status != 200:
                raise RuntimeError(f"venue admin {action}: HTTP {r.status}: {text[:200]}")
            return json.loads(text) if text else None

    async def stop(self, timeout_s: float = 10.0) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while p.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a child process / file, no event to wait on
            await asyncio.sleep(0.05)
        if p.poll() is None:
            p.kill()
            p.wait()


def _urls_from(rest_url: str, ws_url: str) -> dict[str, Any]:
    return binance_urls(rest_url, ws_url.rstrip("/") or rest_url.replace("http", "ws", 1))


def make_exchange(
    cfg: Config,
    guard: EgressGuard,
    *,
    api_key: str,
    secret: str,
    urls: dict[str, Any] | None,
    throttle: bool = True,
) -> Any:
    """``throttle``: ccxt's client-side rate limiter (50 ms per request weight on binance). On for
    real exchanges; off when offline (the egress guard confines us to loopback, i.e. the
    simulator, whose only limits are injected 429s — which the adapter honours: Retry-After)."""
    ex = ccxtpro.binance(
        {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": throttle,
            "timeout": cfg.exchange.timeout_ms,
            "session": guard.session(),
            "options": ccxt_options(cfg.exchange.recv_window_ms),
        }
    )
    # newUpdates=True returns only frames that arrive while a watch call is pending: a burst of
    # bookTickers for several symbols loses all but one. Full caches + our own de-duplication.
    ex.newUpdates = False
    if urls is None:
        # no URL configured: ccxt's own endpoints. A live profile talks to the live exchange and
        # nothing else; every other kind (testnet, staging) to ccxt's sandbox, never to live.
        if cfg.kind != "live":
            ex.set_sandbox_mode(True)
    else:
        ex.urls["api"] = urls  # replace, never deep-merge (a merged dict keeps real endpoints)
    return ex


async def open_ccxt_venue(
    cfg: Config,
    data_dir: Path,
    clock: Clock,
    metrics: Any,
    guard: EgressGuard,
    duration_s: float | None,
) -> tuple[CcxtVenue, VenueProcess | None]:
    check_live_locks(cfg)  # before anything is dialled
    check_testnet_keys(cfg, os.environ)
    proc = None
    key, secret = cfg.exchange.api_key, cfg.exchange.api_secret
    if cfg.offline and not cfg.exchange.rest_url:
        lifetime = (duration_s or 24 * 3600.0) + 120.0  # always bounded
        proc = VenueProcess(
            data_dir / "venue",
            seed=cfg.sim.seed,
            ticks_per_second=cfg.sim.ticks_per_second,
            max_lifetime_s=lifetime,
        )
        port = await proc.start()
        urls: dict[str, Any] | None = _urls_from(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        )
        key, secret = key or SIM_KEY, secret or SIM_SECRET
        ns = cfg.netsim
        net = {
            "latency_ms": ns.latency_ms,
            "jitter_ms": ns.jitter_ms,
            "drop_rate": ns.drop_rate,
            "disconnect_interval_s": ns.disconnect_interval_s,
            "reorder_rate": ns.reorder_rate,
            "seed": cfg.sim.seed,
        }
        if any(v for k, v in net.items() if k != "seed"):
            await proc.admin("net", net)
            log.warning("NET_SIM faults active: %s", net)
        log.info("loopback venue simulator on 127.0.0.1:%d (state %s)", port, proc.state_dir)
    elif cfg.exchange.rest_url:
        urls = _urls_from(cfg.exchange.rest_url, cfg.exchange.ws_url)
    else:
        urls = None
    ex = make_exchange(cfg, guard, api_key=key, secret=secret, urls=urls, throttle=not cfg.offline)
    venue = CcxtVenue(
        ex,
        clock=clock,
        symbols=tuple(cfg.symbols),
        unknown_grace_s=cfg.feeds.unknown_grace_s,
        metrics=metrics,
    )
    try:
        await venue.connect()
    except BaseException as exc:
        await venue.close()
        if proc is not None:
            await proc.stop()
        if isinstance(exc, ccxt.NetworkError | aiohttp.ClientError | OSError):
            raise _unreachable(cfg, ex, exc) from None
        raise
    return venue, proc


def _unreachable(cfg: Config, ex: Any, exc: BaseException) -> VenueUnreachable:
    """One line naming the host and what to check, instead of ccxt's three chained tracebacks."""
    api = ex.urls.get("api")
    url = api.get("public") if isinstance(api, dict) else api
    host = urlsplit(str(url)).netloc or str(url) if url else cfg.exchange.id
    why = " ".join(str(exc).split())[:160] or type(exc).__name__
    return VenueUnreachable(
        f"cannot reach the exchange at {host} ({type(exc).__name__}: {why}); check the network, "
        "DNS and firewall, or the profile's exchange.rest_url, then start again"
    )
