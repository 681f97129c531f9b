"""The runtime's side of the one door: it builds the engine's one ``EngineAPI``, registers the
read-only queries, and maps control-socket requests onto the API.

Role: ``build_api`` applies the 2FA enrolment policy (``engine.security.totp.enrolment_policy``)
and records its outcome; ``queries`` are the read-only answers (status, reconcile report, health,
audit verification, backup, export, diagnostics) that the cockpit and the socket share;
``socket_handlers`` turns the socket's JSON requests into API calls — a mutating request becomes
a command through ``EngineAPI.handle`` (role, TOTP, audit under the socket peer), a read-only one
a ``query``. Nothing here changes engine state itself.

Invariants: every socket request name is either in ``SOCKET_COMMANDS`` (mutating) or a query; a
new mutating request cannot be added without a command, so it cannot skip role, TOTP or audit.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from engine.api import EngineAPI, Query
from engine.core.events import (
    AcknowledgeOrphans,
    ArmKillSwitch,
    Command,
    DisarmKillSwitch,
    Flatten,
    GoLive,
    PinModel,
    PromoteChallenger,
    RecordConfigChange,
    RecordIncident,
    ResetBreaker,
    ResetRisk,
    RollbackModel,
    SetCanaryShare,
    SetChallenger,
    SetReduceOnly,
    SetSafeMode,
)
from engine.obs import gcwatch, memwatch
from engine.runtime.backups import backups, record_restore_test, restore_test
from engine.runtime.boot import db_path
from engine.runtime.booted import Booted
from engine.runtime.config_record import running_config
from engine.runtime.control import peer
from engine.runtime.daily import plan, produce
from engine.runtime.dbcheck import check_connection
from engine.runtime.gonogo import go_no_go
from engine.runtime.maintenance import backup_target, copy_db, healthcheck_online
from engine.runtime.preflight import preflight_and_record
from engine.security.audit import HeadFile, load_or_create_key, verify_connection
from engine.security.keystore import open_keystore, use_process_keys
from engine.security.totp import enrolment_policy
from engine.strategy.strategies import ModelStrategy


def build_api(booted: Booted, *, role: str, data_dir: Path, totp_secret: str | None) -> EngineAPI:
    """The one construction of the engine's API (headless and under the cockpit alike).

    ``totp_secret`` is read from the keystore before the engine boots, so a missing or wrong
    keyring key stops the start before anything is written; a data dir that ran with 2FA
    refuses to run without it (``enrolment_policy``)."""
    engine = booted.engine
    rec = engine.recorder
    verdict = enrolment_policy(
        totp_secret,
        enrolled_before=rec.state("totp_enrolled") == "1",
        saved_state=rec.state("totp_state"),
        data_dir=data_dir,
    )
    if verdict.newly_enrolled:
        rec.set_state("totp_enrolled", "1")  # from now on its absence is an error
    risk = engine.risk
    if risk.kill_switch and "KeystoreError" in risk.kill_reason:
        # armed by an older release when a start failed on the key: the switch stays armed (fail
        # closed, an operator disarms it), but the banner follows the key that works now
        risk.kill_reason = (
            "armed by an earlier start that could not open the keystore; "
            "the current key opens it: review, then disarm"
        )
    strategy = booted.strategy
    models = strategy if isinstance(strategy, ModelStrategy) else None  # the bench has none
    api = EngineAPI(engine, models, role=role, totp=verdict.guard)
    # a hot config change: the runtime's copy follows (preflight and reports read booted.cfg)
    api.config_hooks.append(lambda cfg: setattr(booted, "cfg", cfg))
    return api


def _str(args: Mapping[str, Any], key: str, default: str = "") -> str:
    v = args.get(key, default)
    if not isinstance(v, str):
        raise ValueError(f"{key} must be a string, got {type(v).__name__}")
    return v


def _bool(args: Mapping[str, Any], key: str) -> bool:
    v = args.get(key)
    if not isinstance(v, bool):
        raise ValueError(f"{key} must be true or false, got {v!r}")
    return v


def _share(args: Mapping[str, Any]) -> float:
    v = args.get("share")
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
        raise ValueError(f"share must be a number within 0..1, got {v!r}")
    return float(v)


def _scope(args: Mapping[str, Any]) -> dict[str, str]:
    return {"symbol": _str(args, "symbol"), "model": _str(args, "model")}


# Socket requests that change engine state, each as the command it becomes (the actor is the
# peer the kernel reports; the request cannot name it).
SOCKET_COMMANDS: dict[str, Callable[[Mapping[str, Any], str], Command]] = {
    "ack_orphans": lambda a, who: AcknowledgeOrphans(
        symbol=_str(a, "symbol"), actor=who, reason=_str(a, "reason")
    ),
    "kill_switch_arm": lambda a, who: ArmKillSwitch(
        actor=who, reason=_str(a, "reason"), **_scope(a)
    ),
    "kill_switch_disarm": lambda a, who: DisarmKillSwitch(
        actor=who, reason=_str(a, "reason"), **_scope(a)
    ),
    "reduce_only": lambda a, who: SetReduceOnly(
        on=_bool(a, "on"), actor=who, reason=_str(a, "reason")
    ),
    "flatten": lambda a, who: Flatten(actor=who, reason=_str(a, "reason")),
    "safe_mode": lambda a, who: SetSafeMode(on=_bool(a, "on"), actor=who, reason=_str(a, "reason")),
    "model_pin": lambda a, who: PinModel(model_id=_str(a, "model_id") or None, actor=who),
    "model_challenger": lambda a, who: SetChallenger(
        model_id=_str(a, "model_id"), actor=who, reason=_str(a, "reason")
    ),
    "model_promote": lambda a, who: PromoteChallenger(actor=who, reason=_str(a, "reason")),
    "model_rollback": lambda a, who: RollbackModel(actor=who, reason=_str(a, "reason")),
    "canary_share": lambda a, who: SetCanaryShare(share=_share(a), actor=who),
    "risk_reset": lambda a, who: ResetRisk(actor=who, reason=_str(a, "reason")),
    "breaker_reset": lambda a, who: ResetBreaker(
        name=_str(a, "name"), actor=who, reason=_str(a, "reason")
    ),
    "incident_note": lambda a, who: RecordIncident(note=_str(a, "note"), actor=who),
    "go_live": lambda a, who: GoLive(phrase=_str(a, "phrase"), actor=who),
    "config_change": lambda a, who: RecordConfigChange(
        **{f: _str(a, f) for f in ("key", "old", "new", "reason", "profile", "backup")},
        actor=who,
        apply=a.get("apply") is True,
    ),
}
# Read-only requests only the socket answers (they concern the socket caller): what a command
# needs from that caller (role, confirmation, TOTP) before it is sent.
SOCKET_ONLY = ("policy",)
DIAGNOSTICS = ("bench_stats", "mem_stats")
# Read-only socket requests (any role), each answered by the API query of the same name.
QUERIES = (
    "reconcile",
    "healthcheck",
    "audit_verify",
    "backup",
    "status",
    "export",
    "report",
    "regulatory",
    "keyring",
    "db_check",
    "restore_test",
    "preflight",
    "go_no_go",
    "config",
    *DIAGNOSTICS,
)


def queries(
    booted: Booted,
    wiring: Any,
    data_dir: Path,
    cfg_name: str,
    diagnostics: bool = False,
    api: EngineAPI | None = None,
) -> dict[str, Query]:
    """The read-only answers, by name; each returns what the offline CLI path returns.

    ``preflight`` also *keeps* its result, through ``api`` as a ``RecordPreflight`` command under
    ``args.actor`` / ``args.role`` — set by the cockpit in process, and by the control socket from
    the kernel's peer credentials (the socket never passes a client's own args to it)."""
    engine = booted.engine

    async def on_writer(fn: Callable[[Any], Any]) -> Any:
        booted.flush()  # everything decided so far is in the DB before we look at it
        return await asyncio.wrap_future(booted.writer.call(fn))

    async def reconcile(args: Mapping[str, Any]) -> Any:
        report = await booted.reconciler.run("manual")
        return report if args.get("typed") else msgspec.to_builtins(report)

    async def healthcheck(args: Mapping[str, Any]) -> Any:
        ready = wiring.venue_ready() if wiring is not None else True
        return healthcheck_online(engine, booted.reconciler, ready, booted.alerts)

    async def audit_verify(args: Mapping[str, Any]) -> Any:
        key = load_or_create_key(data_dir)
        head_file = HeadFile(data_dir / "audit" / "head.json")
        result = await on_writer(lambda con: verify_connection(con, key, head_file.read()))
        return result._asdict()

    async def backup(args: Mapping[str, Any]) -> Any:
        out = backup_target(data_dir, args.get("out"))  # refused before the writer is touched
        return await on_writer(lambda con: copy_db(con, db_path(data_dir), out))

    async def status(args: Mapping[str, Any]) -> Any:
        out = {**engine.status(), "alerts_firing": booted.alerts.names_firing()}
        if isinstance(engine.strategy, ModelStrategy):  # `cockpit signal` decides with these
            reg = engine.strategy.registry
            out["models"] = {"champion": reg.champion_id, "challenger": reg.challenger_id,
                             "pinned": reg.pinned, "canary_share": reg.canary_share}  # fmt: skip
        return out

    async def export(args: Mapping[str, Any]) -> Any:  # the TUI's export key: today's report
        return {"path": (await report({"date": "today"}))["report"]}

    async def on_reader(fn: Callable[[Any], Any]) -> Any:
        """Run ``fn`` on its own DuckDB cursor in a worker thread: a report of a busy day takes
        seconds, and the writer (which persists every order) must not wait for it."""
        booted.flush()  # everything decided so far is committed before the cursor opens
        cur = await asyncio.wrap_future(booted.writer.call(lambda con: con.cursor()))
        try:
            return await asyncio.to_thread(fn, cur)
        finally:
            cur.close()

    async def daily(kind: str, args: Mapping[str, Any]) -> dict[str, Any]:
        now_us = engine.clock.now_us()
        req = plan(kind, data_dir, args.get("date"), args.get("out"), now_us)
        cfg, venue = booted.cfg, engine.venue.name
        res = await on_reader(lambda cur: produce(cur, req, cfg, venue, now_us))
        if kind == "report" and booted.notify is not None:
            booted.notify("report", f"daily report ready: {req.out.name}")
        return dict(res)

    async def report(args: Mapping[str, Any]) -> Any:
        return await daily("report", args)

    async def regulatory(args: Mapping[str, Any]) -> Any:
        return await daily("regulatory", args)

    async def keyring(args: Mapping[str, Any]) -> Any:
        """``cockpit secrets rotate``: read with ``keys`` from now on (the CLI re-encrypts the
        file in between). Only the engine's own user, as operator: the key opens every secret."""
        who = peer()
        if api is not None and api.role == "observer":
            raise ValueError("observers cannot act: this engine runs as observer")
        if who.role != "operator" or who.uid != os.geteuid():
            raise ValueError("only the engine's own user, as operator, may switch its keyring key")
        op, keys = _str(args, "op"), args.get("keys")
        if op not in ("add", "drop") or not isinstance(keys, list) or not keys:
            raise ValueError("keyring: op must be add or drop, with a list of keys")
        use_process_keys([str(k) for k in keys])
        if op == "drop":
            await asyncio.to_thread(lambda: open_keystore(data_dir).check())
        engine.recorder.audit(who.actor, "keyring_key_switched", {"op": op, "keys": len(keys)})
        return {"op": op, "keys": len(keys)}

    async def db_check(args: Mapping[str, Any]) -> Any:
        key = load_or_create_key(data_dir)
        head = HeadFile(data_dir / "audit" / "head.json").read()
        return await on_reader(lambda cur: check_connection(cur, key, head, data_dir))

    async def restore_test_query(args: Mapping[str, Any]) -> Any:
        found = backups(data_dir)
        if not found:
            raise ValueError(f"no backup in {data_dir / 'backups'}: take one first")
        key = load_or_create_key(data_dir)
        result = await asyncio.to_thread(restore_test, found[-1], key)
        await asyncio.to_thread(record_restore_test, result)
        return result

    async def preflight(args: Mapping[str, Any]) -> Any:
        if api is None:
            raise ValueError("preflight needs the engine's API")
        role = args.get("role")
        actor = str(args.get("actor") or api.role)
        return await preflight_and_record(
            booted, api, wiring, data_dir, actor, str(role) if role else None
        )

    found: dict[str, Query] = {
        "reconcile": reconcile,
        "healthcheck": healthcheck,
        "audit_verify": audit_verify,
        "backup": backup,
        "status": status,
        "export": export,
        "report": report,
        "regulatory": regulatory,
        "keyring": keyring,
        "db_check": db_check,
        "restore_test": restore_test_query,
        "preflight": preflight,
        "go_no_go": lambda args: go_no_go(booted),
        "config": lambda args: running_config(engine),
    }
    found.update(_diagnostics(booted) if diagnostics else _diagnostics_off())
    assert tuple(found) == QUERIES, "door.QUERIES must list every query"  # noqa: S101 - import-time wiring check
    return found


def _diagnostics_off() -> dict[str, Query]:
    async def off(args: Mapping[str, Any]) -> Any:
        raise ValueError("diagnostics are off: set `[control] diagnostics = true` in the profile")

    return dict.fromkeys(DIAGNOSTICS, off)


def _garbage_seconds(raw: Any) -> float:
    """``bench_stats``' ``garbage`` window: a finite number of seconds in (0, 60]."""
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"garbage must be seconds in (0, 60] (got {raw!r})") from None
    if not 0 < seconds <= 60:  # NaN fails this too
        raise ValueError(f"garbage must be seconds in (0, 60] (got {raw!r})")
    return seconds


def _diagnostics(booted: Booted) -> dict[str, Query]:
    """Loop- and memory-inspection answers (they hold the loop): only with `[control]
    diagnostics = true`."""
    engine = booted.engine

    async def bench_stats(args: Mapping[str, Any]) -> Any:
        def pct(values: Any, q: float) -> float:
            v = sorted(values)
            return float(v[min(len(v) - 1, int(len(v) * q))]) if v else 0.0

        lat = list(engine.kpis.tick_to_submit_us)
        lag = list(booted.lag_us or ())
        wake = list(booted.feed_wake_us or ())
        if args.get("garbage"):  # what the collector frees over that many seconds, by type
            seconds = _garbage_seconds(args["garbage"])
            with gcwatch.saving_garbage() as saved:
                await asyncio.sleep(seconds)
            return {"garbage_top": saved.top(25)}
        if args.get("reset"):
            gcwatch.reset()
            engine.kpis.tick_to_submit_us.clear()
            for ring in (booted.feed_wake_us, booted.lag_us):
                if ring is not None:
                    ring.clear()
        return {
            "orders": len(lat),
            "tick_to_submit_us_p50": pct(lat, 0.5),
            "tick_to_submit_us_p99": pct(lat, 0.99),
            "tick_to_submit_us_max": max(lat, default=0),
            "loop_lag_us_p99": pct(lag, 0.99),
            "loop_lag_us_max": max(lag, default=0),
            "ticks": engine.market.ticks,
            "gc": gcwatch.stats(),
            "feed_wake_us": [pct(wake, q) for q in (0.5, 0.9, 0.99, 0.999)],
            "gc_top": gcwatch.top_types() if args.get("types") else [],
        }

    async def mem_stats(args: Mapping[str, Any]) -> Any:
        out = memwatch.process(objects=bool(args.get("objects")))
        out["duckdb_mib"] = None
        duck = await asyncio.wrap_future(booted.writer.call(memwatch.duckdb_bytes))
        if duck is not None:
            out["duckdb_mib"] = round(duck / 2**20, 1)
        out["orders_in_memory"] = len(engine.order_cache.orders)
        if args.get("tags"):
            out["duckdb_tags"] = await asyncio.wrap_future(booted.writer.call(memwatch.duckdb_tags))
        if args.get("trace"):  # a diagnosis run under PYTHONTRACEMALLOC: growth by source line
            out["trace_growth"] = await asyncio.to_thread(memwatch.trace_growth, int(args["trace"]))
        return out

    return {"bench_stats": bench_stats, "mem_stats": mem_stats}
