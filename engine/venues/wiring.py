"""Run-time wiring for a ccxt venue: feeds, REST catch-up, clock skew, orderly shutdown.

Invariants:
- The venue is connected (markets loaded, clock synced) before the engine boots, so lot sizes and
  the first skew measurement come from the venue itself.
- Clock skew is measured against the venue (RTT-corrected ``GET /time``) and, when ``NTP_SERVER``
  is set, over SNTP; the clock port carries the worst of the two (the gate fails closed), while
  ccxt's ``timeDifference`` always follows the venue's own time (that is what signs requests).
- Shutdown: feeds stop first, then in-flight orders get their answers (bounded), then ccxt closes,
  then the child venue simulator stops. Every host ccxt dialled is logged.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from engine.config.loader import Config
from engine.core.clock import Clock
from engine.trading.windows import p95
from engine.venues.ccxt_feeds import FeedMetrics, FeedSupervisor
from engine.venues.clocksync import Sample, SkewMonitor, venue_time_source
from engine.venues.egress import EgressGuard
from engine.venues.venue_setup import VenueProcess, open_ccxt_venue

log = logging.getLogger("engine.wiring")


class SkewBoard:
    """Latest offset per source; the clock port gets the largest magnitude (fail closed)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.by_source: dict[str, float] = {}

    def sink(self, name: str) -> Any:
        board = self

        class _Sink:
            def set_skew_ms(self, skew_ms: float) -> None:
                board.by_source[name] = skew_ms
                worst = max(board.by_source.values(), key=abs)
                setter = getattr(board.clock, "set_skew_ms", None)
                if setter is not None:
                    setter(worst)

        return _Sink()


class CcxtWiring:
    """Everything a ccxt profile needs around the engine: the egress guard, the venue (a spawned
    loopback simulator or a configured URL), the market-data feeds and the clock-skew monitor;
    started before boot and closed after the engine stops."""

    def __init__(self, cfg: Config, data_dir: Path, clock: Clock, duration_s: float | None):
        self.cfg = cfg
        self.data_dir = data_dir
        self.clock = clock
        self.duration_s = duration_s
        self.guard = EgressGuard(offline=cfg.offline)
        self.venue: Any = None
        self.proc: VenueProcess | None = None
        self.feeds: FeedSupervisor | None = None
        self.skew = SkewBoard(clock)
        self.monitors: list[SkewMonitor] = []
        self.tasks: list[asyncio.Task[Any]] = []

    async def connect(self) -> Any:
        self.venue, self.proc = await open_ccxt_venue(
            self.cfg, self.data_dir, self.clock, None, self.guard, self.duration_s
        )
        return self.venue

    def start(self, engine: Any) -> None:
        cfg = self.cfg
        venue = self.venue
        venue.metrics = engine.metrics
        self.feeds = FeedSupervisor(
            venue.ex,
            engine,
            venue,
            symbols=tuple(cfg.symbols),
            metrics=FeedMetrics(engine.metrics.registry),
            base_delay_s=cfg.feeds.reconnect_base_ms / 1000,
            max_delay_s=cfg.feeds.reconnect_max_ms / 1000,
            seed=cfg.sim.seed,
            cancel_on_disconnect=cfg.oms.cancel_on_disconnect,
        )
        self.feeds.start()
        ex = venue.ex

        def on_venue_sample(s: Sample) -> None:
            ex.options["timeDifference"] = s.offset_ms  # ccxt signs with venue time

        interval = cfg.clock.skew_check_interval_s
        self.monitors.append(
            SkewMonitor(
                self.skew.sink("venue"),
                [("venue", venue_time_source(ex.fetch_time))],
                interval,
                on_sample=on_venue_sample,
            )
        )
        # NTP_SERVER is run by the runtime for every profile (engine.clocksync.NtpSource); its
        # offsets come to this board through ``self.skew.sink("ntp")``
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(m.run(), name="skew") for m in self.monitors]
        self.tasks.append(loop.create_task(self._periodic_catch_up(), name="catch-up"))

    async def _periodic_catch_up(self) -> None:
        if self.feeds is None:  # not an assert: python -O would drop it
            raise RuntimeError("self.feeds is not set: used before start")
        while True:
            await asyncio.sleep(self.cfg.feeds.catch_up_interval_s)
            try:
                await self.feeds.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried next period
                log.warning("periodic catch-up failed: %s", exc)

    def venue_ready(self) -> bool:
        """The venue's user streams are up (orders and fills reach us)."""
        return self.feeds is not None and all(
            sl.connected for sl in self.feeds.loops if sl.name in ("orders", "mytrades")
        )

    def export(self) -> None:
        if self.feeds is not None:
            self.feeds.export()

    def summary(self) -> dict[str, Any]:
        loops = self.feeds.loops if self.feeds else []
        return {
            "reconnects": {sl.name: sl.reconnects for sl in loops if sl.reconnects},
            "worst_outage_s": round(max((sl.worst_outage_s for sl in loops), default=0.0), 3),
            "dialled_hosts": dict(self.guard.dialled),
            "blocked_hosts": dict(self.guard.blocked),
            "skew_ms": {k: round(v, 2) for k, v in self.skew.by_source.items()},
            "place_latency_ms_p95": _p95(getattr(self.venue, "place_latency_ms", [])),
        }

    async def stop_feeds(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.feeds is not None:
            await self.feeds.stop()

    async def close(self) -> None:
        try:
            if self.venue is not None:
                await self.venue.drain(2.0)
                await self.venue.close()
        finally:
            if self.proc is not None:
                await self.proc.stop()
        log.info("venue closed", extra={"fields": {"venue_summary": self.summary()}})


def _p95(values: list[float]) -> float:
    return round(p95(values), 2)
