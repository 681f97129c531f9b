"""Operator and safety commands of the engine (kill switch, safe mode, cancels, risk reset, halt).

Functions over an ``Engine`` (which exposes them as methods), so the command surface reads
in one place. Invariants: every action is
audited with its actor before it returns; arming the kill switch also cancels resting orders;
a halt (invariant violation) arms the kill switch and cannot be disarmed without a restart.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from engine.core.events import CommandResult
from engine.trading import blocks, day_counters, oms

if TYPE_CHECKING:
    from engine.trading.engine import Engine

log = logging.getLogger("engine")


def arm_kill_switch(e: Engine, actor: str, reason: str) -> CommandResult:
    r = e.risk
    r.kill_switch, r.kill_reason = True, reason or f"armed by {actor}"
    e._set_state("kill_switch", "1")
    e._set_state("kill_reason", r.kill_reason)
    e._audit(actor, "kill_switch_armed", {"reason": r.kill_reason})
    e.gates.refresh(e.clock.now_us())
    e.metrics.kill_switch.set(1)
    for o in list(e.open_orders.values()):  # stop resting exposure too
        if o.status in (oms.ACCEPTED, oms.PARTIALLY_FILLED):
            e.venue.cancel(o.client_order_id, o.symbol)
    log.warning("kill switch armed by %s: %s", actor, r.kill_reason)
    return CommandResult(ok=True, message=f"kill switch armed: {r.kill_reason}")


def disarm_kill_switch(e: Engine, actor: str, reason: str) -> CommandResult:
    if e.halted_reason:
        return CommandResult(ok=False, message=f"halted: {e.halted_reason}; restart needed")
    e.risk.kill_switch, e.risk.kill_reason = False, ""
    e._set_state("kill_switch", "0")
    e._audit(actor, "kill_switch_disarmed", {"reason": reason})
    e.gates.refresh(e.clock.now_us())
    e.metrics.kill_switch.set(0)
    return CommandResult(ok=True, message="kill switch disarmed")


def set_safe_mode(e: Engine, on: bool, actor: str, reason: str) -> CommandResult:
    if not on and e.risk.safe_mode:
        # SPEC §2: turning safe mode off is justified in the incident journal; fail closed
        if not reason.strip():
            e._audit(actor, "command_denied", {"command": "SetSafeMode", "reason": "no reason"})
            return CommandResult(ok=False, message="safe mode stays ON: turning it off needs a "
                                 "reason (it is written to the incident journal)")  # fmt: skip
        record_incident(e, actor, f"SAFE MODE OFF: {reason}")
    e.risk.safe_mode = on
    e._set_state("safe_mode", "1" if on else "0")
    e._audit(actor, "safe_mode", {"on": on, "reason": reason})
    e.gates.refresh(e.clock.now_us())
    e.metrics.safe_mode.set(1 if on else 0)
    return CommandResult(ok=True, message=f"safe mode {'on' if on else 'off'}")


def cancel(e: Engine, client_order_id: str, actor: str, reason: str = "") -> CommandResult:
    o = e.open_orders.get(client_order_id)
    if o is None:
        return CommandResult(ok=False, message=f"no open order {client_order_id}")
    e._audit(actor, "cancel_requested", {"client_order_id": client_order_id,
                                            "reason": reason})  # fmt: skip
    e.venue.cancel(client_order_id, o.symbol)
    return CommandResult(ok=True, message=f"cancel sent for {client_order_id}")


def cancel_all(e: Engine, symbol: str | None, actor: str, reason: str = "") -> CommandResult:
    targets = [o for o in e.open_orders.values() if symbol is None or o.symbol == symbol]
    e._audit(actor, "cancel_all_requested", {"symbol": symbol, "reason": reason,
                                                "orders": len(targets)})  # fmt: skip
    for o in targets:
        e.venue.cancel(o.client_order_id, o.symbol)
    return CommandResult(ok=True, message=f"cancel sent for {len(targets)} open order(s)")


def reset_risk(e: Engine, actor: str, reason: str) -> CommandResult:
    """Re-baseline the daily drawdown at current equity and forget recent intents.

    Budgets and trade counts are *not* reset (they are the day's limits), nor are the kill
    switch and safe mode (each has its own critical action).
    """
    e.mark_to_market()
    r = e.risk
    before = r.drawdown_pct()
    r.equity_day_start_e8 = r.equity_e8
    day_counters.persist(e)  # the new baseline survives a restart (same UTC day)
    r.last_intent_us.clear()
    r.last_order_by_router.clear()
    e._audit(actor, "risk_reset", {"reason": reason, "drawdown_pct_before": before})
    e.gates.refresh(e.clock.now_us())
    return CommandResult(ok=True, message=f"risk reset (drawdown was {before:.2f}%)")


def halt(e: Engine, reason: str) -> None:
    """Invariant violation: stop trading loudly, keep running for the operator."""
    if not e.halted_reason:
        e.halted_reason = reason
        log.critical("HALT: %s", reason)
        e.alerts.append(f"HALT: {reason}")
        e.arm_kill_switch("engine", f"halted: {reason}")


def acknowledge_orphans(e: Engine, symbol: str, actor: str, reason: str = "") -> CommandResult:
    """Lift an orphan block (the orphan stays tracked read-only by the reconciler)."""
    why = e.market_blocked.causes(symbol).get(blocks.ORPHAN, "")
    if not why:
        return CommandResult(ok=False, message=f"{symbol}: no orphan block to acknowledge")
    e.market_blocked.unblock(symbol, blocks.ORPHAN)  # a gap still resyncing keeps its block
    keys = sorted(e.orphan_keys.pop(symbol, set()))
    e.acked_orphans.update(keys)  # these stay acknowledged across restarts; new ones block again
    e._set_state("acked_orphans", msgspec.json.encode(sorted(e.acked_orphans)).decode())
    e._audit(actor, "orphans_acknowledged", {"symbol": symbol, "reason": reason, "was": why,
                                             "orders": keys})  # fmt: skip
    e.gates.refresh(e.clock.now_us())
    return CommandResult(ok=True, message=f"{symbol}: orphan acknowledged, trading allowed")


def record_incident(e: Engine, actor: str, note: str) -> CommandResult:
    """Incident journal: the note plus UTC time, profile, venue, active gates, flags, metrics."""
    import time

    r = e.risk
    context = {
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.clock.now_us() / 1e6)),
        "profile": e.cfg.name,
        "venue": e.venue.name,
        "active_gates": {g.name: g.reason for g in e.gates.states.values() if g.active},
        "safe_mode": r.safe_mode,
        "kill_switch": r.kill_switch,
        "halted": e.halted_reason,
        "open_orders": len(e.open_orders),
        "equity": r.equity_e8 / 1e8,
        "skew_ms": e.clock.skew_ms(),
        "orders_today": r.orders_today,
    }
    ctx = msgspec.json.encode(context).decode()
    now = e.clock.now_us()
    e.batch.append["incidents"].append((now, actor, note, ctx))
    e.batch.rows += 1
    e.incidents.append(journal_entry(now, actor, note, context))
    e._audit(actor, "incident", {"note": note, "context": context})
    return CommandResult(ok=True, message="incident recorded")


def journal_entry(
    ts_us: int, actor: str, note: str, context: dict[str, object]
) -> tuple[int, str, str, str, str]:
    """An incident as screens show it: (ts_us, actor, note, active gates, flags). Built from the
    same context the DB row stores, so a journal read back at start-up looks the same."""
    gates = context.get("active_gates") or {}
    names = ", ".join(sorted(gates)) if isinstance(gates, dict) else ""
    flags = [name for name in ("kill_switch", "safe_mode") if context.get(name)]
    if context.get("halted"):
        flags.append("halted")
    return ts_us, actor, note, names or "-", ", ".join(flags) or "-"
