"""EngineHost: the engine on its own thread and event loop, inside the cockpit's process.

Invariants:
- The Textual app owns the main thread; the engine owns this one. State crosses only as immutable
  ``EngineSnapshot`` objects published by reference swap (``host.snapshot``), pulled by the UI on
  its own timer; commands cross with ``asyncio.run_coroutine_threadsafe`` into ``EngineAPI``. The
  engine never calls into the UI (``call_from_thread`` would block it on the UI loop).
- GC policy (PERFORMANCE.md: CPython's collections stop every thread, for 60–150 ms when full, in
  a Textual process). ``paced`` (default): after start-up everything alive is frozen
  (``gc.freeze()``), the automatic thresholds are raised to a backstop, and the engine runs small
  collections itself right after each burst of market data (``engine.obs.gcwatch.GcPacer``): young
  ones every ~2,000 new objects, a middle one every 5 young, a full one every 5 min so cyclic
  garbage is still reclaimed. Collection is never switched off; memory stays bounded.
  ``COCKPIT_GC_POLICY=on`` (freeze + backstop thresholds only) and ``off`` (CPython defaults)
  exist for the benchmark's comparison. The GIL switch interval is 1 ms so the engine thread gets
  the CPU promptly.
- If the engine thread dies, ``error`` says why and trading is halted (its runtime stops cleanly if
  it can); the UI must tell the operator and never silently outlive its engine.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from engine.api import EngineAPI
from engine.config.loader import ConfigError
from engine.core.envvars import COCKPIT_GC_POLICY
from engine.core.events import Command, CommandResult
from engine.obs.gcwatch import GcPacer
from engine.security.keystore import KeystoreError
from engine.snapshot import AlertView, EngineSnapshot
from engine.store.writer import StoreError
from engine.trading.snapshot_builder import SnapshotBuilder
from engine.venues.venue_errors import VenueUnreachable

log = logging.getLogger("cockpit.host")

GC_THRESHOLDS = (50_000, 50, 1000)  # gen0 allocations, gen1 and gen2 collection ratios


def apply_gc_policy() -> None:
    gc.collect()
    gc.freeze()  # start-up objects (modules, widgets, config) leave the collector's view
    gc.set_threshold(*GC_THRESHOLDS)


def gc_policy() -> str:
    """``on`` (freeze + high thresholds), ``paced`` (plus engine-timed small collections) or
    ``off`` (CPython defaults) — the last two for the benchmark's A/B."""
    return os.environ.get(COCKPIT_GC_POLICY, "paced")


class EngineHost:
    """Runs the engine on its own thread under the cockpit and publishes its snapshots.

    Implements ``cockpit.port.EnginePort``: the app reads ``snapshot``, ``alive`` and ``error``
    and sends commands and queries, each a future resolved on the engine loop."""

    def __init__(
        self,
        cfg: Any,
        data_dir: Path,
        lock: Any,
        *,
        role: str = "operator",
        refresh_hz: float = 4.0,
    ) -> None:
        from engine.runtime.runner import EngineRuntime

        self.runtime = EngineRuntime(cfg, data_dir, None, lock, role=role)
        if gc_policy() == "paced":
            self.runtime.gc_pacer = GcPacer()
        self.role = self.runtime.role  # observer when the profile says so, whatever was asked
        self.refresh_s = 1.0 / refresh_hz
        self.snapshot: EngineSnapshot | None = None
        self.error: str | None = None
        self.exc: BaseException | None = None  # what killed the engine thread, for the exit code
        self.api: EngineAPI | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._builder = SnapshotBuilder()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="engine", daemon=True)
        self._stop_reason = "cockpit quit"
        self._failed = False  # _main's own failure path is running or ran (not just ``error`` set)
        self._pub_task: asyncio.Task[None] | None = None

    # --- lifecycle (UI thread) ---------------------------------------------------------------

    def launch(self) -> None:
        """Start the engine thread booting; ``start`` waits for it (the caller may import the
        UI meanwhile: DuckDB's open and first queries release the GIL)."""
        if not self._thread.is_alive() and self.loop is None:
            sys.setswitchinterval(0.001)
            self._thread.start()

    def start(self, timeout_s: float = 120.0) -> None:
        self.launch()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"engine did not start within {timeout_s:g}s")
        if self.error:
            # the key, the network, the operator's input (exit 2) or the data dir (StoreError,
            # exit 4): re-raised as they are, so the TUI path says what the headless one says
            if isinstance(self.exc, KeystoreError | VenueUnreachable | ConfigError | StoreError):
                raise self.exc
            raise RuntimeError(self.error)
        if gc_policy() != "off":
            apply_gc_policy()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def stop(self, reason: str = "cockpit quit", timeout_s: float = 60.0) -> None:
        gc.unfreeze()  # let interpreter shutdown release what start-up froze
        loop = self.loop
        if loop is None or not self._thread.is_alive():
            return
        if self._failed:  # the engine thread died: it halts and stops itself (_emergency_stop)
            self._thread.join(timeout_s)
            return
        self._stop_reason = reason

        async def stop_all() -> None:
            if self._pub_task is not None:
                self._pub_task.cancel()
            await self.runtime.stop(reason)

        fut = asyncio.run_coroutine_threadsafe(stop_all(), loop)
        try:
            fut.result(timeout_s)
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout_s)

    def needs_totp(self, cmd: Command) -> bool:
        return self.api is not None and self.api.needs_totp(cmd)

    def query(self, name: str, args: Mapping[str, Any] | None = None) -> Future[Any]:
        """A read-only answer from the engine's API, resolved on the engine thread."""
        if self.loop is None or self.api is None or not self.alive:
            f: Future[Any] = Future()
            f.set_exception(RuntimeError(f"engine not running: {self.error}"))
            return f
        return asyncio.run_coroutine_threadsafe(self.api.query(name, args), self.loop)

    def execute(self, cmd: Command, totp_code: str | None = None) -> Future[CommandResult]:
        """Send a command to the engine; the future resolves on the engine thread's answer."""
        if self.loop is None or self.api is None or not self.alive:
            f: Future[CommandResult] = Future()
            f.set_result(CommandResult(ok=False, message=f"engine not running: {self.error}"))
            return f
        return asyncio.run_coroutine_threadsafe(self.api.execute(cmd, totp_code), self.loop)

    # --- engine thread -----------------------------------------------------------------------

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.runtime.start())
            self.api = (
                self.runtime.api
            )  # built by the runtime: the same one the control socket uses
            self._publish()
            self._pub_task = loop.create_task(self._publisher())
            self._ready.set()
            loop.run_forever()
        except BaseException as exc:  # noqa: BLE001 - the UI must learn why the engine is gone
            self._failed = True
            self.exc = exc
            self.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log.critical("engine thread died: %s", self.error)
            self._emergency_stop(loop)  # before start() returns, so no caller races the halt
        finally:
            loop.close()
            self._ready.set()

    def _emergency_stop(self, loop: asyncio.AbstractEventLoop) -> None:
        rt = self.runtime
        if rt.booted is None:
            return
        try:
            api = rt.api
            if api is not None:
                api.emergency_stop("engine", f"engine thread failed: {self.error}")
            else:
                rt.engine.arm_kill_switch("engine", f"engine thread failed: {self.error}")
            loop.run_until_complete(rt.stop(f"engine thread failed: {self.error}"))
        except BaseException as exc:  # noqa: BLE001
            log.critical("emergency stop failed: %s", exc)

    async def _publisher(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                self._publish()
            except Exception as exc:  # noqa: BLE001 - a broken snapshot must not kill trading
                log.error("snapshot failed: %s", exc)

    def _publish(self) -> None:
        rt = self.runtime
        if rt.booted is None:
            raise RuntimeError("publish before boot")
        feeds = rt.wiring.feeds if rt.wiring is not None else None
        e = rt.engine
        audit_tail = tuple(_audit_views(e))
        self.snapshot = self._builder.build(
            e,
            role=self.role,
            strategy=rt.booted.strategy,
            feeds=feeds,
            recon=rt.booted.reconciler.last,
            audit_tail=audit_tail,
            alerts=tuple(e.recorder.alerts),
            alert_states=tuple(
                AlertView(
                    rule=a.rule,
                    severity=a.severity,
                    labels=",".join(f"{k}={v}" for k, v in a.labels),
                    state=a.state,
                    since_us=a.since_us,
                    value=a.value,
                )
                for a in rt.booted.alerts.current()
            ),
        )

    def arm_kill_switch_now(self, reason: str) -> None:
        """Emergency path used when the UI itself fails: no confirmation, no TOTP."""
        api = self.api
        if self.loop is not None and self.alive and api is not None:

            async def arm() -> None:
                api.emergency_stop("cockpit", reason)

            asyncio.run_coroutine_threadsafe(arm(), self.loop).result(10)


def _audit_views(e: Any) -> list[Any]:
    from engine.snapshot import AuditView

    return [
        AuditView(seq=r[0], ts_us=r[1], actor=r[2], kind=r[3]) for r in list(e.recorder.audit_tail)
    ]
