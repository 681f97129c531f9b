"""Headless run: the real engine on a real clock, fed by the embedded market simulator.

Invariants:
- One asyncio loop; the feed calls ``Engine.on_quote`` directly (no queue hop on the hot path).
- SIGINT, SIGTERM and SIGHUP, or the end of ``duration``, stop it the same clean way: feed stopped,
  rows flushed and committed, ``shutdown`` audit row, final textfile, DB closed, exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from engine.api import EngineAPI, is_critical
from engine.config.loader import Config
from engine.core.clock import RealClock
from engine.core.events import ReconReport
from engine.core.samples import Samples
from engine.obs import gcwatch
from engine.runtime.boot import boot
from engine.runtime.booted import Booted
from engine.runtime.control import ControlServer, Refused, peer, socket_path
from engine.runtime.door import SOCKET_COMMANDS, SOCKET_ONLY, build_api, queries
from engine.runtime.ops_tasks import OpsTasks
from engine.runtime.roles import Roles, load_roles
from engine.runtime.secrets import apply_keyring
from engine.security.totp import load_totp_secret
from engine.sim.marketsim import MarketSimulator
from engine.sim.simfeed import SimFeed
from engine.store.lockfile import EngineLock
from engine.strategy.strategies import ModelStrategy
from engine.trading import oms
from engine.trading.engine import Engine
from engine.venues.clocksync import NtpSource, ntp_readiness

log = logging.getLogger("engine.runtime.runner")

_IN_FLIGHT = frozenset({oms.PENDING, oms.SUBMITTED, oms.UNKNOWN})


async def _every(seconds: float, fn: object) -> None:
    while True:
        await asyncio.sleep(seconds)
        fn()  # type: ignore[operator]


async def _periodic(seconds: float, job: Callable[[], Awaitable[object]], what: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed run is retried next period
            log.warning("%s failed: %s", what, exc)


def _status(booted: Booted) -> None:
    s = booted.engine.status()
    log.info(
        "status ticks=%d orders=%d open=%d denials=%d pnl=%.2f gates=%s",
        s["ticks"],
        s["orders"],
        s["open_orders"],
        s["denials"],
        s["pnl"],
        ",".join(s["active_gates"]) or "-",
        extra={"fields": {"status": s}},
    )


def _ccxt_wiring(cfg: Config, data_dir: Path, clock: RealClock, duration_s: float | None) -> Any:
    """ccxt is imported only when a profile uses it (its import costs ~0.5 s of start-up)."""
    if cfg.venue != "ccxt":
        return None
    from engine.venues.wiring import CcxtWiring

    return CcxtWiring(cfg, data_dir, clock, duration_s)


def socket_handlers(api: EngineAPI) -> dict[str, Any]:
    """The control socket's requests: each mutating one becomes its command through
    ``api.execute`` (role, TOTP, audit under the socket peer), each other one an ``api.query``."""

    def command(name: str) -> Any:
        build = SOCKET_COMMANDS[name]

        async def handler(args: dict[str, Any]) -> Any:
            code = args.get("totp")
            caller = peer()
            cmd = build(args, caller.actor)
            res = await api.execute(cmd, str(code) if code else None, role=caller.role)
            if not res.ok:
                raise Refused(res.message)
            return {"message": res.message}

        return handler

    async def policy(args: dict[str, Any]) -> Any:
        """What a shell caller must supply before sending ``args.command``: its own role (an
        observer is not prompted: the engine refuses and audits), confirmation, a TOTP code."""
        name = str(args.get("command", ""))
        build = SOCKET_COMMANDS.get(name)
        if build is None:
            raise ValueError(f"unknown command {name!r} (known: {', '.join(SOCKET_COMMANDS)})")
        cmd = build(args.get("args") or {}, peer().actor)
        return {
            "role": "observer" if "observer" in (api.role, peer().role) else "operator",
            "critical": is_critical(cmd),
            "needs_totp": api.needs_totp(cmd),
        }

    def query(name: str) -> Any:
        async def handler(args: dict[str, Any]) -> Any:
            return await api.query(name, args)

        return handler

    handlers = {name: query(name) for name in api.queries}
    handlers.update({name: command(name) for name in SOCKET_COMMANDS})
    handlers["policy"] = policy

    async def preflight(args: dict[str, Any]) -> Any:  # kept under the peer, never its args
        return await api.query("preflight", {"actor": peer().actor, "role": peer().role})

    handlers["preflight"] = preflight
    if set(handlers) != {*api.queries, *SOCKET_COMMANDS, *SOCKET_ONLY}:
        raise RuntimeError("socket handlers must be queries, SOCKET_COMMANDS or SOCKET_ONLY")
    return handlers


async def reconcile_once(cfg: Config, data_dir: Path, lock: EngineLock) -> ReconReport:
    """``cockpit reconcile`` with no engine running: the same start-up path, then stop."""
    clock = RealClock()
    wiring = _ccxt_wiring(cfg, data_dir, clock, 60.0)
    try:
        venue = await wiring.connect() if wiring is not None else None
        booted = boot(cfg, data_dir, clock=clock, strategy="none", lock=lock, venue=venue)
        try:
            report = await booted.reconciler.run("manual")
        finally:
            booted.close("reconcile (engine not running)")
    finally:
        if wiring is not None:
            await wiring.close()
    return report


async def drain_in_flight(booted: Booted, timeout_s: float = 3.0) -> int:
    """Stop accepting work, then wait for orders already sent to get their venue answer.

    An order in flight at shutdown is neither failed nor re-sent: we wait (bounded) for the
    venue's ack; whatever is still unanswered stays ``submitted`` and start-up resolves it by
    asking the venue.
    """
    engine = booted.engine
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        in_flight = sum(
            1 for o in engine.order_cache.open_orders.values() if o.status in _IN_FLIGHT
        )
        if not in_flight:
            return 0
        await asyncio.sleep(0.005)
    left = sum(1 for o in engine.order_cache.open_orders.values() if o.status in _IN_FLIGHT)
    log.warning("shutdown with %d order(s) still unanswered: resolved at next start", left)
    return left


class EngineRuntime:
    """The running engine and its periodic work, on whatever loop calls ``start``.

    Headless runs and the cockpit's engine thread use this same object, so both behave alike:
    start = connect venue, boot, start-up reconciliation, control socket, feeds and timers;
    stop = the clean shutdown (in-flight orders answered, rows committed, ``shutdown`` audit row,
    final textfile, DB closed, venue stopped).
    """

    def __init__(
        self,
        cfg: Config,
        data_dir: Path,
        duration_s: float | None = None,
        lock: EngineLock | None = None,
        *,
        role: str = "operator",
    ) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.duration_s = duration_s
        self.lock = lock
        # a profile that starts as observer (staging) is observed, whoever asks (api.effective_role)
        self.role = "observer" if cfg.observer_start else role
        self.api: EngineAPI | None = None
        self.clock = RealClock()
        self.wiring: Any = None
        self.booted: Booted | None = None
        self.control: ControlServer | None = None
        self.roles: Roles | None = None  # the roles file, read before boot
        self.tasks: list[asyncio.Task[Any]] = []
        self.extra_refresh: list[Callable[[], None]] = []
        self.ops: OpsTasks | None = None
        self.lag_us = Samples(2**17)  # 22 min at 100 Hz
        self.gc_pacer: gcwatch.GcPacer | None = None  # set by a host that paces collections
        self.sim_feed: SimFeed | None = None
        self.ntp: NtpSource | None = None  # NTP_SERVER, when configured
        self._stopped = False
        self._metrics_job: asyncio.Future[None] | None = None

    @property
    def engine(self) -> Engine:
        if self.booted is None:
            raise RuntimeError("engine read before boot")
        return self.booted.engine

    async def start(self) -> None:
        """Boot (venue first, then the DB), reconcile once, serve the door, start the loops."""
        gcwatch.install()
        t0 = time.monotonic()  # rehydrate time: boot + the start-up reconciliation (go/no-go)
        booted, api = await self._boot()
        self.booted = booted
        booted.lag_us = self.lag_us
        cfg, wiring = self.cfg, self.wiring
        if cfg.clock.ntp_server:  # every profile: paper's skew gate too (the clock port)
            self.ntp = NtpSource(
                cfg.clock.ntp_server,
                wiring.skew.sink("ntp") if wiring else self.clock,
                cfg.clock.skew_check_interval_s,
            )
        # start-up rehydrate = the reconciler's first run (one code path with periodic runs)
        report = await booted.reconciler.run("startup")
        booted.rehydrated = report.mismatches
        booted.rehydrate_s = time.monotonic() - t0
        self.refresh()
        booted.write_metrics()
        api.serve(queries(booted, wiring, self.data_dir, cfg.name, cfg.control.diagnostics, api))
        self.control = ControlServer(socket_path(self.data_dir), socket_handlers(api), self.roles)
        await self.control.start()
        if wiring is not None:
            wiring.start(booted.engine)
        else:
            self._start_sim_feed(booted)
        self.tasks = self._loops(booted)
        self.ops = OpsTasks(booted, self.data_dir, cfg)
        booted.notify = self.ops.notify
        self.tasks += self.ops.start()
        log.info("engine running: profile=%s data_dir=%s", cfg.name, self.data_dir)

    async def _boot(self) -> tuple[Booted, EngineAPI]:
        """The venue connection, the engine on the checked DB, and the one API (all or nothing)."""
        # secrets from the encrypted keyring (env only as a fallback); a wrong key stops here
        self.cfg = apply_keyring(self.cfg, self.data_dir)
        cfg, clock = self.cfg, self.clock
        # before anything is opened or written: a missing or wrong keyring key stops the start here
        totp_secret = load_totp_secret(self.data_dir)
        self.roles = load_roles(self.data_dir)  # a bad roles file stops the start here
        self.wiring = wiring = _ccxt_wiring(cfg, self.data_dir, clock, self.duration_s)
        try:
            venue = await wiring.connect() if wiring is not None else None
            booted = boot(
                cfg,
                self.data_dir,
                clock=clock,
                call_later=asyncio.get_running_loop().call_later,
                lock=self.lock,
                venue=venue,
                strategy="bench" if cfg.models.strategy == "alternating" else "models",
                bench_every=cfg.models.alternating_every_ticks,
            )
            try:
                self.api = api = build_api(
                    booted, role=self.role, data_dir=self.data_dir, totp_secret=totp_secret
                )
            except BaseException:
                booted.close("start refused: 2FA unavailable")
                raise
        except BaseException:
            if wiring is not None:
                await wiring.close()
            raise
        return booted, api

    def _start_sim_feed(self, booted: Booted) -> None:
        """No outside venue: the seeded market simulator feeds the engine."""
        cfg, pacer = self.cfg, self.gc_pacer
        sim = MarketSimulator(
            cfg.symbols,
            seed=cfg.sim.seed,
            trade_prob=cfg.sim.trade_prob,
            ticks_per_second=cfg.sim.ticks_per_second,
        )
        self.sim_feed = SimFeed(
            booted.engine,
            sim,
            cfg.sim.ticks_per_second,
            after_burst=pacer.step if pacer is not None else None,
        )
        booted.feed_wake_us = self.sim_feed.wake_us

    def _loops(self, booted: Booted) -> list[asyncio.Task[Any]]:
        """The engine's periodic work, each its own task."""
        cfg, pacer, reconciler = self.cfg, self.gc_pacer, booted.reconciler
        return [
            *([] if self.sim_feed is None else [asyncio.create_task(self.sim_feed.run())]),
            # with no simulator bursts to follow, the pacer runs on its own short period
            *(
                []
                if pacer is None or self.sim_feed is not None
                else [asyncio.create_task(_every(0.02, pacer.step))]
            ),
            *([] if self.ntp is None else [asyncio.create_task(self.ntp.run())]),
            asyncio.create_task(_every(cfg.storage.flush_interval_ms / 1000.0, booted.flush)),
            asyncio.create_task(_every(1.0, self.refresh)),
            asyncio.create_task(self._metrics_off_loop(cfg.metrics.interval_s)),
            asyncio.create_task(_every(5.0, lambda: _status(booted))),
            asyncio.create_task(self._loop_lag()),
            asyncio.create_task(
                _periodic(
                    cfg.oms.reconcile_interval_s, lambda: reconciler.run("periodic"), "reconcile"
                )
            ),
            asyncio.create_task(
                _periodic(
                    1.0,
                    lambda: reconciler.confirm_timeouts(cfg.oms.confirm_timeout_ms),
                    "confirm timeouts",
                )
            ),
        ]

    async def _metrics_off_loop(self, interval_s: float) -> None:
        """The textfile is rendered and fsynced on a worker thread: ~5 ms every few seconds that
        would otherwise stall the engine loop (and every tick due meanwhile)."""
        booted = self.booted
        if booted is None:
            raise RuntimeError("started before boot")
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval_s)
            self._metrics_job = loop.run_in_executor(None, booted.write_metrics)
            try:
                await asyncio.shield(self._metrics_job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried next period; the old file stays
                log.error("metrics textfile write failed: %s", exc)

    async def _loop_lag(self, period_s: float = 0.01) -> None:
        """How late the engine loop wakes up (GIL, GC pauses, long callbacks), in µs."""
        while True:
            t = time.perf_counter()
            await asyncio.sleep(period_s)
            self.lag_us.append(int((time.perf_counter() - t - period_s) * 1e6))

    def refresh(self) -> None:
        engine, wiring, clock = self.engine, self.wiring, self.clock
        now_us = clock.now_us()
        ttl = clock.monotonic_ns() / 1e9 + 5.0
        staleness_us = self.cfg.risk.max_data_staleness_ms * 1000
        stale = [
            s
            for s in engine.symbols
            if now_us - engine.market.last_quote_us.get(s, 0) > staleness_us
        ]
        engine.market.readiness["market_data"] = (
            not stale,
            ttl,
            f"stale: {', '.join(stale)}" if stale else "quotes fresh",
        )
        venue_ok = wiring.venue_ready() if wiring is not None else True
        engine.market.readiness["venue"] = (
            venue_ok,
            ttl,
            "user stream up" if venue_ok else "venue user stream down",
        )
        ntp_ok, ntp_detail = ntp_readiness(self.ntp)
        engine.market.readiness["ntp"] = (ntp_ok, ttl, ntp_detail)
        engine.refresh()
        if wiring is not None:
            wiring.export()
        if self.booted is None:
            raise RuntimeError("stopped before boot")
        if isinstance(self.booted.strategy, ModelStrategy):
            self.booted.strategy.update_psi()
        self.booted.evaluate_alerts()  # over the gauges just refreshed
        if self.ops is not None:
            self.ops.refreshed()
        for fn in self.extra_refresh:
            fn()

    async def stop(self, reason: str) -> None:
        if self._stopped or self.booted is None:
            return
        self._stopped = True
        booted, wiring = self.booted, self.wiring
        if self.control is not None:
            await self.control.stop()
        if self.ops is not None:
            await self.ops.stop()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._metrics_job is not None:  # let an in-flight write land before the final one
            await asyncio.gather(self._metrics_job, return_exceptions=True)
        if wiring is not None:
            await wiring.stop_feeds()
        grace = self.cfg.feeds.unknown_grace_s + 1.0 if wiring is not None else 3.0
        await drain_in_flight(booted, grace)
        _status(booted)
        try:
            booted.close(reason)
        finally:
            if wiring is not None:
                await wiring.close()


async def run_headless(
    cfg: Config,
    data_dir: Path,
    duration_s: float | None,
    lock: EngineLock | None = None,
    *,
    role: str = "operator",
) -> int:
    loop = asyncio.get_running_loop()
    rt = EngineRuntime(cfg, data_dir, duration_s, lock, role=role)
    stop = asyncio.Event()
    why = ["duration elapsed"]

    def on_signal(sig: signal.Signals) -> None:
        why[0] = f"signal {sig.name}"
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await rt.start()
        with contextlib.suppress(TimeoutError):  # the run's duration elapsed: a normal end
            await asyncio.wait_for(stop.wait(), timeout=duration_s)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await rt.stop(why[0])
    return 0
