"""The engine's operations side, each its own task: scheduled backups, Telegram notifications,
and the systemd service protocol (READY / WATCHDOG / STOPPING).

Role: ``OpsTasks.start`` is called by the runner once the engine runs; ``stop`` before it shuts
down. None of it sits on the order path:
- backups go through the writer (``backups.scheduled_backup_path`` + ``maintenance.copy_db``) every
  ``ops.backup_interval_min`` and prune the scheduled ones beyond ``ops.backup_keep``;
- notifications are computed by diffing a snapshot of the engine's state once a second (alerts
  firing/resolved, kill switch, breakers, go-live, safe mode) and handed to the notifier's bounded
  queue (``TelegramNotifier.notify`` never blocks; its own task sends, with retries);
- the watchdog pings systemd only while the engine's loop keeps refreshing.

Invariants: a failure here is logged and counted, never raised into the engine; no message holds
a secret (the notifier redacts every secret value it is given, and the token).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from engine.config.loader import Config, iter_fields
from engine.core.envvars import TELEGRAM_API_BASE_URL
from engine.obs.notify import TelegramNotifier
from engine.runtime.backups import prune_scheduled, scheduled_backup_path
from engine.runtime.boot import db_path
from engine.runtime.booted import Booted
from engine.runtime.maintenance import copy_db
from engine.runtime.sdnotify import ServiceNotifier

log = logging.getLogger("engine.runtime.ops")
BASE_URL_ENV = TELEGRAM_API_BASE_URL  # tests and self-hosted Bot API servers


def make_notifier(cfg: Config) -> TelegramNotifier | None:
    """The Telegram notifier when a token and a chat id are configured (keyring applied)."""
    token, chat = cfg.alerts.telegram_bot_token, cfg.alerts.telegram_chat_id
    if not (token and chat):
        return None
    secrets = [str(s.get(cfg)) for s in iter_fields() if s.secret and s.get(cfg)]
    return TelegramNotifier(
        token,
        chat,
        os.environ.get(BASE_URL_ENV) or None,
        queue_size=cfg.ops.notify_queue,
        min_interval_s=cfg.ops.notify_min_interval_s,
        secrets=tuple(secrets),
    )


class OpsTasks:
    """Backups, notifications and the service protocol for one running engine."""

    def __init__(self, booted: Booted, data_dir: Path, cfg: Config) -> None:
        self.booted, self.data_dir, self.cfg = booted, data_dir, cfg
        self.notifier = make_notifier(cfg)
        self.service = ServiceNotifier()
        self.tasks: list[asyncio.Task[Any]] = []
        self._last: dict[str, Any] | None = None
        self._refreshed = time.monotonic()
        reg = booted.engine.metrics.registry
        self.backups_total = Counter(
            "backups_total", "Scheduled backups by result", ["result"], registry=reg
        )
        self.backup_last = Gauge(
            "backup_last_success_timestamp_seconds",
            "Unix time of the last successful scheduled backup",
            registry=reg,
        )

    def notify(self, kind: str, text: str) -> None:
        if self.notifier is not None:
            self.notifier.notify(kind, f"[{self.cfg.name}] {text}")

    def start(self) -> list[asyncio.Task[Any]]:
        interval_min = self.cfg.ops.backup_interval_min
        if interval_min > 0:
            self.tasks.append(asyncio.create_task(self._backups(interval_min * 60.0)))
        if self.notifier is not None:
            self._last = self._snapshot()  # the baseline: what holds at start is not news
            self.tasks.append(self.notifier.start())
            self.tasks.append(asyncio.create_task(self._watch()))
        if self.service.enabled:
            self.tasks.append(asyncio.create_task(self.service.run_watchdog(self._alive)))
        self.service.ready(f"engine running: profile {self.cfg.name}")
        return list(self.tasks)

    def refreshed(self) -> None:
        """Called by the runner's 1 s refresh: the loop is alive."""
        self._refreshed = time.monotonic()

    def _alive(self) -> bool:
        return time.monotonic() - self._refreshed < 10.0

    async def stop(self) -> None:
        self.service.stopping()
        if self.notifier is not None:
            self.notify("stopped", "engine stopping")
            await self.notifier.aclose()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def backup_now(self) -> dict[str, Any]:
        out = scheduled_backup_path(self.data_dir)
        self.booted.flush()
        fut = self.booted.writer.call(lambda con: copy_db(con, db_path(self.data_dir), out))
        result: dict[str, Any] = await asyncio.wrap_future(fut)
        pruned = await asyncio.to_thread(prune_scheduled, self.data_dir, self.cfg.ops.backup_keep)
        self.backups_total.labels("ok").inc()
        self.backup_last.set(time.time())
        log.info(
            "scheduled backup %s (%d bytes); pruned %d", out.name, result["bytes"], len(pruned)
        )
        return result

    async def _backups(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.backup_now()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried next period; the gauge ages
                self.backups_total.labels("failed").inc()
                log.error("scheduled backup failed: %s", exc)
                self.notify("backup_failed", f"scheduled backup failed: {exc}")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self._diff(self._snapshot())
            except Exception as exc:  # noqa: BLE001 - a notification is never worth a crash
                log.warning("notification watch failed: %s", exc)

    def _snapshot(self) -> dict[str, Any]:
        s = self.booted.engine.status()
        return {
            "alerts": set(self.booted.alerts.names_firing()),
            "kill_switch": bool(s.get("kill_switch")),
            "kill_reason": str(self.booted.engine.risk.kill_reason or ""),
            "breakers": set(s.get("breakers_tripped") or ()),
            "live": bool(s.get("live_since_us")),
            "safe_mode": bool(s.get("safe_mode")),
        }

    def _diff(self, now: dict[str, Any]) -> None:
        before, self._last = self._last, now
        if before is None:
            return
        for name in sorted(now["alerts"] - before["alerts"]):
            self.notify("alert", f"ALERT firing: {name}")
        for name in sorted(before["alerts"] - now["alerts"]):
            self.notify("alert", f"alert resolved: {name}")
        for name in sorted(now["breakers"] - before["breakers"]):
            self.notify("breaker", f"BREAKER tripped: {name}")
        _flag(now, before, "kill_switch", self.notify, "KILL SWITCH ARMED", "kill switch disarmed")
        _flag(now, before, "live", self.notify, "GO-LIVE: live trading enabled", "live ended")
        _flag(now, before, "safe_mode", self.notify, "safe mode ON", "safe mode off")


def _flag(
    now: dict[str, Any],
    before: dict[str, Any],
    key: str,
    notify: Callable[[str, str], None],
    on: str,
    off: str,
) -> None:
    if now[key] == before[key]:
        return
    reason = f": {now['kill_reason']}" if key == "kill_switch" and now["kill_reason"] else ""
    notify(key, (on + reason) if now[key] else off)
