"""The go-live preflight: every check of the go-live checklist, run by the running engine.

Role: ``run_preflight`` runs the checks (seed 000 "Checklist de salida a producción", seed 002
"Preflight obligatorio") against the live engine, its venue and its data dir, and returns one
line per check: ``ok``, ``warn`` or ``fail`` with a reason. ``preflight_and_record`` then hands
the result to the API as a ``RecordPreflight`` command under the caller's role (an observer's run
is shown but not kept): the DB (``preflight_runs``), the audit chain, and — when green — the
preflight gate (``live.preflight_ttl_s``).

Invariants: green means no ``fail`` (``warn`` is shown, never blocking); every check is bounded
in time and fails closed (an exception is a ``fail`` naming it); the result is built here from
what the engine measured, never from a request; a restore test restores into a temp dir only and
never touches the live DB, WAL, key or head.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.api import EngineAPI
from engine.core.envvars import LIVE_API_KEY, TESTNET_API_KEY
from engine.core.events import CommandResult, RecordPreflight
from engine.runtime.backups import backups, record_restore_test, recorded_restore_test, restore_test
from engine.runtime.booted import Booted
from engine.runtime.maintenance import BACKUPS_DIR
from engine.security.audit import HeadFile, load_or_create_key, verify_connection
from engine.security.keystore import KeystoreError, open_keystore
from engine.trading.breakers import Breakers
from engine.trading.kpis import Kpis

# seed 002 "Límites Live iniciales" (our units: percent): the live ranges of the risk limits
LIVE_RANGES = {
    "risk_per_trade_pct": (0.15, 0.20, "RISK_PER_TRADE_PCT"),
    "max_open_positions": (1, 2, "MAX_OPEN_POSITIONS"),
    "max_trades_per_day": (5, 8, "MAX_TRADES_PER_DAY"),
    "max_daily_drawdown_pct": (0.0, 1.0, "MAX_DAILY_DRAWDOWN_PCT"),
}
CHECK_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    reason: str


def _ok(name: str, reason: str) -> Check:
    return Check(name, "ok", reason)


def _fail(name: str, reason: str) -> Check:
    return Check(name, "fail", reason)


class Preflight:
    """One run of the checks over a booted engine (engine loop)."""

    def __init__(self, booted: Booted, api: EngineAPI, wiring: Any, data_dir: Path) -> None:
        self.b = booted
        self.e = booted.engine
        self.cfg = booted.cfg
        self.api = api
        self.wiring = wiring
        self.data_dir = data_dir
        self.live = self.cfg.kind == "live"

    async def run(self) -> list[Check]:
        checks: list[tuple[str, Callable[[], Awaitable[Check] | Check]]] = [
            ("config", self.limits),
            ("secrets", self.secrets),
            ("2fa", self.two_factor),
            ("keys_differ", self.keys_differ),
            ("clock_skew", self.skew),
            ("venue", self.venue),
            ("reconciliation", self.reconciliation),
            ("audit_chain", self.audit_chain),
            ("backup", self.backup),
            ("breakers", self.breakers),
            ("readiness", self.readiness),
            ("disk", self.disk),
        ]
        out: list[Check] = []
        for name, fn in checks:
            try:
                res = fn()
                if not isinstance(res, Check):
                    res = await asyncio.wait_for(res, CHECK_TIMEOUT_S)
                out.append(res)
            except Exception as exc:  # noqa: BLE001 - a check that breaks fails (fail closed)
                out.append(_fail(name, f"check failed: {type(exc).__name__}: {exc}"[:200]))
        return out

    def limits(self) -> Check:
        r = self.cfg.risk
        bad = [
            f"{env}={getattr(r, key):g} (live range {lo:g}..{hi:g})"
            for key, (lo, hi, env) in LIVE_RANGES.items()
            if not lo <= getattr(r, key) <= hi
        ]
        if not bad:
            return _ok("config", f"profile {self.cfg.name!r} valid; limits within live ranges")
        why = "outside the live ranges: " + "; ".join(bad)
        return Check("config", "fail" if self.live else "warn", why)

    def secrets(self) -> Check:
        """The encrypted keyring opens with the configured key (it holds the TOTP seed and the
        keys), and exchange keys are present when a real exchange is used. Values never shown."""
        try:
            open_keystore(self.data_dir)
            where = "keyring opens"
        except KeystoreError as exc:
            if self.live or (self.api.totp is not None and self.api.totp.enrolled):
                return _fail("secrets", f"keyring: {exc}")
            where = "no keyring configured"
        x = self.cfg.exchange
        if self.cfg.venue != "ccxt" or self.cfg.offline:
            return _ok("secrets", f"{where}; no exchange keys needed (paper / loopback venue)")
        if x.api_key and x.api_secret:
            return _ok("secrets", f"{where}; exchange API key and secret present")
        return _fail("secrets", f"{where}; API_KEY / API_SECRET missing")

    def two_factor(self) -> Check:
        enrolled = self.api.totp is not None and self.api.totp.enrolled
        if enrolled:
            return _ok("2fa", "TOTP enrolled: critical actions need a code")
        why = "TOTP not enrolled (`cockpit totp enroll`)"
        return Check("2fa", "fail" if self.live else "warn", why)

    def keys_differ(self) -> Check:
        import os

        key = self.cfg.exchange.api_key
        other = os.environ.get(TESTNET_API_KEY if self.live else LIVE_API_KEY, "")
        if key and other and key == other:
            return _fail("keys_differ", "the testnet and live API keys are the same key")
        return _ok("keys_differ", "testnet and live keys differ (or only one is configured)")

    def skew(self) -> Check:
        skew, limit = self.e.clock.skew_ms(), self.cfg.risk.max_time_skew_ms
        ntp = self.e.market.readiness.get("ntp")
        detail = f"venue/host skew {skew:+.0f} ms (limit {limit:g})"
        if ntp is not None and self.cfg.clock.ntp_server:
            detail += f"; NTP: {ntp[2]}"
            if not ntp[0]:
                return _fail("clock_skew", detail)
        return _ok("clock_skew", detail) if abs(skew) <= limit else _fail("clock_skew", detail)

    async def venue(self) -> Check:
        v = self.e.venue
        if self.wiring is not None and not self.wiring.venue_ready():
            return _fail("venue", f"{v.name}: user stream down")
        if v.in_process:  # the paper venue: the engine's own book, nothing to reach
            return _ok("venue", f"{v.name}: in-process venue; rules loaded")
        balances = await v.fetch_balances()
        if balances is None:
            return _fail("venue", f"{v.name}: balances could not be fetched")
        missing = [s for s in self.e.symbols if v.limits(s).step_e8 <= 0]
        if missing:
            return _fail("venue", f"trading rules not loaded for {', '.join(missing)}")
        return _ok("venue", f"{v.name} reachable; {len(balances)} balance(s); rules loaded")

    async def reconciliation(self) -> Check:
        rep = await self.b.reconciler.run("preflight")
        orphans = rep.mismatches.get("orphan", 0)
        if rep.ok and not orphans:
            return _ok("reconciliation", f"clean in {rep.duration_ms:.0f} ms; orphans 0")
        why = "; ".join([*rep.alerts, *rep.standing][:3]) or f"orphans {orphans}"
        return _fail("reconciliation", why)

    async def audit_chain(self) -> Check:
        key = load_or_create_key(self.data_dir)
        head = HeadFile(self.data_dir / "audit" / "head.json").read()
        self.b.flush()
        res = await asyncio.wrap_future(
            self.b.writer.call(lambda con: verify_connection(con, key, head))
        )
        if res.ok:
            return _ok("audit_chain", f"{res.checked} rows verified up to the head")
        return _fail("audit_chain", res.reason or "chain broken")

    async def backup(self) -> Check:
        limit_h = self.cfg.live.backup_max_age_h
        files = backups(self.data_dir)
        if not files:
            why = f"no backup in {self.data_dir / BACKUPS_DIR} (`cockpit backup`)"
            return Check("backup", "fail" if self.live else "warn", why)
        newest = files[-1]
        age_h = (time.time() - newest.stat().st_mtime) / 3600
        if age_h > limit_h:
            why = f"newest backup {newest.name} is {age_h:.1f} h old (> {limit_h:g} h)"
            return Check("backup", "fail" if self.live else "warn", why)
        tested = recorded_restore_test(newest)  # `cockpit restore --test` of this very file
        if tested is None:
            key = load_or_create_key(self.data_dir)
            tested = await asyncio.to_thread(restore_test, newest, key)
            await asyncio.to_thread(record_restore_test, tested)
        if not tested["ok"]:
            return _fail("backup", f"restore test of {newest.name}: {tested['reason']}")
        why = f"{newest.name} ({age_h:.1f} h old); restore test passed: {tested['reason']}"
        return _ok("backup", why)

    def breakers(self) -> Check:
        tripped = self.e.breakers.tripped()
        if tripped:
            return _fail("breakers", "tripped: " + "; ".join(tripped))
        why = self_test_breakers(self.cfg.risk)
        return _fail("breakers", why) if why else _ok("breakers", "armed; self-test tripped both")

    def readiness(self) -> Check:
        now_s = self.e.clock.monotonic_ns() / 1e9
        bad = []
        for name in self.cfg.live.readiness_required:
            sig = self.e.market.readiness.get(name)
            if sig is None or not sig[0] or sig[1] < now_s:
                bad.append(f"{name}: {sig[2] if sig else 'no signal'}")
        return _fail("readiness", "; ".join(bad)) if bad else _ok("readiness", "all green")

    def disk(self) -> Check:
        free_mb = shutil.disk_usage(self.data_dir).free / 2**20
        need = self.cfg.live.min_free_disk_mb
        why = f"{free_mb:,.0f} MB free on the data dir's disk (need {need:,.0f})"
        return _ok("disk", why) if free_mb >= need else _fail("disk", why)


def self_test_breakers(risk_cfg: Any) -> str | None:
    """Trip a scratch copy of each breaker on synthetic samples (the live ones are untouched)."""
    kpis = Kpis()
    scratch = Breakers(kpis, risk_cfg)
    n = scratch.by_name["error_rate"].min_sample
    for i in range(n):
        kpis.note_outcome("SELFTEST", i, True)
        kpis.note_slippage("SELFTEST", i, float(risk_cfg.max_slippage_bps) * 2 + 1)
    silent = [name for name, b in scratch.by_name.items() if b.probe(n) is None]
    return f"self-test: {', '.join(silent)} did not trip" if silent else None


async def preflight_and_record(
    booted: Booted, api: EngineAPI, wiring: Any, data_dir: Path, actor: str, role: str | None
) -> dict[str, Any]:
    """Run every check, then keep the result through the API under the caller's role."""
    checks = await Preflight(booted, api, wiring, data_dir).run()
    ok = all(c.status != "fail" for c in checks)
    now_us = booted.engine.clock.now_us()
    pid = (
        time.strftime("pf-%Y%m%dT%H%M%S", time.gmtime(now_us / 1e6))
        + f"{now_us // 1000 % 1000:03d}Z"
    )
    cmd = RecordPreflight(
        preflight_id=pid,
        ok=ok,
        checks=tuple((c.name, c.status, c.reason) for c in checks),
        actor=actor,
    )
    res: CommandResult = api.handle(cmd, role=role)
    return {
        "preflight_id": pid,
        "ok": ok,
        "recorded": res.ok,
        "message": res.message,
        "checks": [{"name": c.name, "status": c.status, "reason": c.reason} for c in checks],
    }
