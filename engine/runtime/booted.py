"""The booted engine: what a runner holds while it runs, and the one clean way to stop it.

Built only by ``engine.runtime.boot.boot``. Invariants: rows reach the DB only through the
writer thread (``query`` reads through it too, after a flush); a failed write halts trading;
the intent journal is truncated only once the DB provably holds every intent in it; a halt is
recorded in ``engine.halt`` too, so a full disk cannot lose it; ``close`` runs once, in reverse
order of start-up (final flush, ``shutdown`` audit row, textfile, DB, journal, lock).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.loader import Config
from engine.core.samples import Samples
from engine.obs.alerts import Alert, AlertEngine, standard_rules
from engine.obs.textfile import write_textfile
from engine.runtime.reconcile import Reconciler
from engine.store.haltfile import HaltFile
from engine.store.intent_journal import IntentJournal
from engine.store.lockfile import EngineLock
from engine.store.writer import Writer
from engine.strategy.strategies import AlternatingStrategy, ModelStrategy
from engine.trading.commands import Commands
from engine.trading.engine import Engine

log = logging.getLogger("engine.runtime.booted")


@dataclass(eq=False)
class Booted:
    """Everything a runner needs, and the one way to shut it down cleanly.

    Built only by ``boot``. The reconciler is built here, once, with the profile's grace and
    memory, so ``cockpit reconcile`` (no engine running) and the running engine reconcile alike.
    The runner fills the rings it measures (``lag_us``, ``feed_wake_us``) and ``rehydrated``.
    """

    cfg: Config
    engine: Engine
    strategy: ModelStrategy | AlternatingStrategy | None
    writer: Writer
    lock: EngineLock
    con: Any  # the DuckDB connection (owned by the writer thread once it runs)
    metrics_path: Path
    data_dir: Path
    journal: IntentJournal | None
    halt: HaltFile
    rehydrated: dict[str, int] = field(default_factory=dict)
    # operator notifications (Telegram), set by the runner once its ops tasks run; never blocks
    notify: Callable[[str, str], None] | None = None
    rehydrate_s: float = -1.0  # boot + start-up reconciliation, measured by the runner
    lag_us: Samples | None = None
    feed_wake_us: Samples | None = None
    reconciler: Reconciler = field(init=False)
    alerts: AlertEngine = field(init=False)
    # "recorded": the halt file holds this run's halt; "clear": cleared once the DB has the
    # armed kill switch (a halt from before this start); "": nothing to do
    _halt_file_state: str = field(init=False)
    _journal_mark: int = field(init=False, default=-1)
    _closed: bool = field(init=False, default=False)
    _flattened_day: int = field(init=False, default=-1)

    def __post_init__(self) -> None:
        self._halt_file_state = "clear" if self.halt.read() else ""
        self.reconciler = Reconciler(
            self.engine,
            grace_s=self.cfg.feeds.unknown_grace_s,
            ttl_s=max(90.0, 3 * self.cfg.oms.reconcile_interval_s),
            db=self.query,
        )
        cfg = self.cfg
        rules = standard_rules(
            psi_halve=cfg.models.psi_halve,
            max_skew_s=cfg.risk.max_time_skew_ms / 1000,
            dislocation_bps=cfg.feeds.dislocation_alert_bps,
        )
        self.alerts = AlertEngine(self.engine.metrics.registry, rules, self._alert_changed)

    def evaluate_alerts(self) -> None:
        """Once a second, after ``Engine.refresh``: the alert rules over the fresh gauges."""
        last = self.reconciler.last
        self.engine.metrics.recon_open.set(len(last.standing) if last is not None else 0)
        self.alerts.evaluate(self.engine.clock.now_us())
        self.react_to_daily_loss()

    def react_to_daily_loss(self) -> None:
        """FLATTEN_ON_DAILY_LOSS: the first time the daily-loss cap trips in a UTC day, go
        reduce-only and flatten — the engine's own reaction, audited as ``engine``."""
        e = self.engine
        if not self.cfg.risk.flatten_on_daily_loss or self._flattened_day == e.risk.day:
            return
        if not e.gates.states["daily_drawdown"].active:
            return
        self._flattened_day = e.risk.day
        why = f"daily loss cap: {e.gates.states['daily_drawdown'].reason}"
        c = Commands(e)
        c.set_reduce_only(True, "engine", why)
        res = c.flatten("engine", why)
        log.critical("daily loss cap tripped: %s", res.message)

    def _alert_changed(self, a: Alert) -> None:
        rec = self.engine.recorder
        rec.alerts.append(f"ALERT {a.describe()} (value {a.value:g})")
        rec.audit(
            "engine",
            f"alert_{a.state}",
            {"alert": a.rule, "labels": dict(a.labels), "value": a.value, "severity": a.severity},
        )
        log.warning("alert %s", a.describe())

    async def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Read committed rows through the single writer (the engine owns the DB file)."""
        self.flush()
        return await asyncio.wrap_future(
            self.writer.call(lambda con: con.execute(sql, params or []).fetchall())
        )

    def write_metrics(self) -> None:
        write_textfile(self.metrics_path, self.engine.metrics.registry)

    def flush(self) -> int:
        """Hand rows to the writer; a failed write halts trading (checked on the loop thread).

        The intent journal is truncated once the DB provably holds every intent in it: the
        previous batch is committed (writer idle) and no intent was appended since that flush.
        """
        err = self.writer.error
        if err is not None and not self.engine.halted_reason:
            self.engine.halt(f"DB write failed: {err}")
        self._persist_halt()
        j = self.journal
        if (
            j is not None
            and j.appended
            and j.appended == self._journal_mark
            and self.writer.pending == 0
            and self.writer.error is None
        ):
            j.checkpoint()
            j.appended = 0
        n = self.engine.flush()
        if j is not None:
            self._journal_mark = j.appended
        return n

    def _persist_halt(self) -> None:
        reason = self.engine.halted_reason
        if reason and self._halt_file_state != "recorded":
            try:
                self.halt.write(reason)
                self._halt_file_state = "recorded"
            except OSError as exc:  # logged; the kill switch is armed in memory regardless
                log.error("cannot record the halt in %s: %s", self.halt.path, exc)
        elif (
            self._halt_file_state == "clear"
            and self.writer.committed_batches
            and self.writer.error is None
        ):
            self.halt.clear()  # the armed kill switch of this start is in engine_state now
            self._halt_file_state = ""

    def close(self, reason: str = "shutdown") -> None:
        """Flush everything, audit the shutdown, write the final textfile, release the DB."""
        if self._closed:
            return
        self._closed = True
        e = self.engine
        try:
            e.refresh()
            e.recorder.audit(
                "engine",
                "shutdown",
                {"reason": reason, "ticks": e.market.ticks, "orders": len(e.order_cache.orders)},
            )
            e.flush()
            self.writer.wait_idle()
            self.writer.close()
            if self.writer.error is None and self.journal is not None:
                self.journal.checkpoint()  # every intent is in the DB now
            self.write_metrics()
        finally:
            try:
                self.con.close()
            finally:
                if self.journal is not None:
                    self.journal.close()
                self.lock.release()
        log.info("engine stopped (%s)", reason)
