"""The operator's commands on a running engine: kill switch, safe mode, cancels, risk reset,
orphan acknowledgement, incident notes, configuration changes.

Role: the one class `engine.api.EngineAPI` calls once a command has passed the role and TOTP
checks; nothing else changes engine state on an operator's behalf. The engine's own safety
reactions (`Engine.halt`, `Engine.arm_kill_switch`) live on the engine, which never imports this
module.

Invariants: every action is audited with its actor before it returns; arming the kill switch
also cancels resting orders; a halt cannot be disarmed without a restart; turning safe mode off
needs a reason, written to the incident journal (fail closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from engine.core.events import CommandResult, RecordConfigChange, RecordPreflight
from engine.trading import blocks, config_change, day_counters, golive, kill_scopes
from engine.trading.engine import Engine

log = logging.getLogger("engine")


class Commands:
    """Operator commands over one `Engine` (engine thread only)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def arm_kill_switch(
        self, actor: str, reason: str, symbol: str = "", model: str = ""
    ) -> CommandResult:
        if symbol or model:
            return kill_scopes.arm_scope(self.engine, symbol, model, actor, reason)
        return self.engine.arm_kill_switch(actor, reason)

    def disarm_kill_switch(
        self, actor: str, reason: str, symbol: str = "", model: str = ""
    ) -> CommandResult:
        if symbol or model:
            return kill_scopes.disarm_scope(self.engine, symbol, model, actor, reason)
        e = self.engine
        if e.halted_reason:
            return CommandResult(ok=False, message=f"halted: {e.halted_reason}; restart needed")
        e.risk.kill_switch, e.risk.kill_reason = False, ""
        e.recorder.set_state("kill_switch", "0")
        e.recorder.audit(actor, "kill_switch_disarmed", {"reason": reason})
        e.gates.refresh(e.clock.now_us())
        e.metrics.kill_switch.set(0)
        return CommandResult(ok=True, message="kill switch disarmed")

    def set_reduce_only(self, on: bool, actor: str, reason: str) -> CommandResult:
        return kill_scopes.set_reduce_only(self.engine, on, actor, reason)

    def go_live(self, phrase: str, actor: str, *, totp_enrolled: bool) -> CommandResult:
        res = golive.go_live(self.engine, phrase, actor, totp_enrolled=totp_enrolled)
        if res.ok:  # the shift log: who, when, which preflight
            self.record_incident(actor, f"GO-LIVE: {res.message}")
        return res

    def record_preflight(self, cmd: RecordPreflight) -> CommandResult:
        return golive.record_preflight(self.engine, cmd)

    def flatten(self, actor: str, reason: str) -> CommandResult:
        res = kill_scopes.flatten(self.engine, actor, reason)
        self.record_incident(actor, f"FLATTEN: {reason or 'no reason'} -> {res.message}")
        return res

    def set_safe_mode(self, on: bool, actor: str, reason: str) -> CommandResult:
        e = self.engine
        if not on and e.risk.safe_mode:
            # SPEC §2: turning safe mode off is justified in the incident journal; fail closed
            if not reason.strip():
                e.recorder.audit(
                    actor, "command_denied", {"command": "SetSafeMode", "reason": "no reason"}
                )
                return CommandResult(
                    ok=False,
                    message="safe mode stays ON: turning it off needs a "
                    "reason (it is written to the incident journal)",
                )
            self.record_incident(actor, f"SAFE MODE OFF: {reason}")
        e.risk.safe_mode = on
        e.recorder.set_state("safe_mode", "1" if on else "0")
        e.recorder.audit(actor, "safe_mode", {"on": on, "reason": reason})
        e.gates.refresh(e.clock.now_us())
        e.metrics.safe_mode.set(1 if on else 0)
        return CommandResult(ok=True, message=f"safe mode {'on' if on else 'off'}")

    def cancel(self, client_order_id: str, actor: str, reason: str = "") -> CommandResult:
        e = self.engine
        o = e.order_cache.open_orders.get(client_order_id)
        if o is None:
            return CommandResult(ok=False, message=f"no open order {client_order_id}")
        e.recorder.audit(
            actor, "cancel_requested", {"client_order_id": client_order_id, "reason": reason}
        )
        e.venue.cancel(client_order_id, o.symbol)
        return CommandResult(ok=True, message=f"cancel sent for {client_order_id}")

    def cancel_all(self, symbol: str | None, actor: str, reason: str = "") -> CommandResult:
        e = self.engine
        targets = [
            o for o in e.order_cache.open_orders.values() if symbol is None or o.symbol == symbol
        ]
        e.recorder.audit(
            actor,
            "cancel_all_requested",
            {"symbol": symbol, "reason": reason, "orders": len(targets)},
        )
        for o in targets:
            e.venue.cancel(o.client_order_id, o.symbol)
        return CommandResult(ok=True, message=f"cancel sent for {len(targets)} open order(s)")

    def reset_risk(self, actor: str, reason: str) -> CommandResult:
        """Runbook "Reset budget": re-baseline the daily drawdown at current equity, restart
        today's order budgets (account, symbol, strategy — the MAX_TRADES_PER_DAY count with
        them) and forget recent intents. Says what it reset.

        Not reset: the kill switch, safe mode and the breakers (each has its own critical action),
        and the canary notional of the day (the cap is a share of the whole day).
        """
        e = self.engine
        e.mark_to_market()
        r = e.risk
        before = r.drawdown_pct()
        r.equity_day_start_e8 = r.equity_e8
        day_counters.persist(e)  # the new baseline survives a restart (same UTC day)
        cleared = day_counters.reset_budgets(e, e.clock.now_us())
        r.last_intent_us.clear()
        r.last_order_by_router.clear()
        e.recorder.audit(
            actor,
            "risk_reset",
            {"reason": reason, "drawdown_pct_before": before, "budgets_cleared": cleared},
        )
        e.gates.refresh(e.clock.now_us())
        used = ", ".join(f"{k} {v}" for k, v in cleared.items() if v) or "none used"
        return CommandResult(
            ok=True,
            message=f"risk reset: drawdown baseline {before:.2f}% -> 0.00% at equity "
            f"{r.equity_e8 / 1e8:,.2f}; budgets restarted (orders used: {used})",
        )

    def reset_breaker(self, name: str, actor: str, reason: str) -> CommandResult:
        """Clear a tripped breaker (or ``all`` tripped ones); each starts a fresh window."""
        e = self.engine
        known = e.breakers.by_name
        if name != "all" and name not in known:
            return CommandResult(
                ok=False, message=f"unknown breaker {name!r} (known: {', '.join(known)}, all)"
            )
        names = [n for n in (known if name == "all" else [name]) if known[n].reason]
        if not names:
            return CommandResult(ok=False, message=f"breaker {name} is not tripped")
        for n in names:
            was = known[n].reset()
            e.recorder.set_state(f"breaker_{n}", "")
            e.recorder.audit(actor, "breaker_reset", {"breaker": n, "was": was, "reason": reason})
            self.record_incident(actor, f"BREAKER {n} RESET ({was}): {reason or 'no reason'}")
        e.gates.refresh(e.clock.now_us())
        return CommandResult(ok=True, message=f"breaker reset: {', '.join(names)}")

    def acknowledge_orphans(self, symbol: str, actor: str, reason: str = "") -> CommandResult:
        """Lift an orphan block (the orphan stays tracked read-only by the reconciler)."""
        e = self.engine
        why = e.market.blocked.causes(symbol).get(blocks.ORPHAN, "")
        if not why:
            return CommandResult(ok=False, message=f"{symbol}: no orphan block to acknowledge")
        e.market.blocked.unblock(symbol, blocks.ORPHAN)  # a gap still resyncing keeps its block
        keys = sorted(e.recon.orphan_keys.pop(symbol, set()))
        e.recon.acked_orphans.update(
            keys
        )  # these stay acknowledged across restarts; new ones block again
        e.recorder.set_state(
            "acked_orphans", msgspec.json.encode(sorted(e.recon.acked_orphans)).decode()
        )
        e.recorder.audit(
            actor,
            "orphans_acknowledged",
            {"symbol": symbol, "reason": reason, "was": why, "orders": keys},
        )
        e.gates.refresh(e.clock.now_us())
        return CommandResult(ok=True, message=f"{symbol}: orphan acknowledged, trading allowed")

    def change_config(
        self, cmd: RecordConfigChange, on_applied: Callable[[Any], None]
    ) -> CommandResult:
        """``cockpit config set``: audited (``config_changed``), written to the incident journal,
        a hot key applied when asked (``engine.trading.config_change``)."""
        res, note = config_change.run(self.engine, cmd, on_applied)
        if res.ok:
            self.record_incident(cmd.actor, note)
        return res

    def record_incident(self, actor: str, note: str) -> CommandResult:
        """Incident journal: the note plus UTC time, profile, venue, active gates, flags, metrics."""
        e = self.engine
        r = e.risk
        context = {
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.clock.now_us() / 1e6)),
            "profile": e.cfg.name,
            "venue": e.venue.name,
            "active_gates": {g.name: g.reason for g in e.gates.states.values() if g.active},
            "safe_mode": r.safe_mode,
            "kill_switch": r.kill_switch,
            "halted": e.halted_reason,
            "open_orders": len(e.order_cache.open_orders),
            "equity": r.equity_e8 / 1e8,
            "skew_ms": e.clock.skew_ms(),
            "orders_today": r.orders_today,
        }
        ctx = msgspec.json.encode(context).decode()
        now = e.clock.now_us()
        e.recorder.add("incidents", (now, actor, note, ctx))
        e.recorder.incidents.append(journal_entry(now, actor, note, context))
        e.recorder.audit(actor, "incident", {"note": note, "context": context})
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
