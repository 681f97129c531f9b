"""The stop gates: the kill switch (global and per symbol / model), reduce-only mode, safe mode.

Invariants: they fail closed (see ``engine.trading.gates``); an operator's flatten order
(``SubmitOrder.reduce_only`` and reducing on its whole size) passes the kill switch in every
scope, reduce-only and safe mode, so "close everything" works while trading is stopped; every
other order they stop while their condition holds. Their state lives in ``RiskState`` (written by
``trading.commands`` / ``trading.kill_scopes``); the gates only read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.trading.gates import GateContext

if TYPE_CHECKING:
    from engine.trading.risk import RiskState


def _flatten(ctx: GateContext) -> bool:
    """An operator's flatten order: flagged reduce-only and reducing on its whole size."""
    return ctx.reduce_only and ctx.reduces


class KillSwitchGate:
    name = "kill_switch"

    def __init__(self, risk: RiskState) -> None:
        self.risk = risk

    def probe(self, now_us: int) -> str | None:
        r = self.risk
        return f"kill switch armed: {r.kill_reason or 'no reason given'}" if r.kill_switch else None

    def check(self, ctx: GateContext) -> str | None:
        return None if _flatten(ctx) else self.probe(ctx.now_us)


class KillScopeGate:
    """The kill switch for one symbol or one model: its orders stop, the rest trade on."""

    name = "kill_scope"

    def __init__(self, risk: RiskState) -> None:
        self.scopes = risk.kill_scopes

    def probe(self, now_us: int) -> str | None:
        if not self.scopes:
            return None
        return "; ".join(f"{k} killed: {v}" for k, v in sorted(self.scopes.items()))

    def check(self, ctx: GateContext) -> str | None:
        if not self.scopes or _flatten(ctx):
            return None
        for key in (f"symbol:{ctx.symbol}", f"model:{ctx.model_id}"):
            why = self.scopes.get(key)
            if why is not None:
                return f"kill switch armed for {key}: {why}"
        return None


class ReduceOnlyGate:
    """Reduce-only mode: only orders that wholly reduce exposure pass; data keeps flowing."""

    name = "reduce_only"

    def __init__(self, risk: RiskState) -> None:
        self.risk = risk

    def probe(self, now_us: int) -> str | None:
        why = self.risk.reduce_only
        return f"reduce-only mode: {why}" if why else None

    def check(self, ctx: GateContext) -> str | None:
        if ctx.reduces:
            return None
        if ctx.reduce_only:
            return "reduce-only order would add exposure (it is larger than what it reduces)"
        why = self.risk.reduce_only
        return f"reduce-only mode ({why}): this order adds exposure" if why else None


class SafeModeGate:
    name = "safe_mode"

    def __init__(self, risk: RiskState) -> None:
        self.risk = risk

    def probe(self, now_us: int) -> str | None:
        return "SAFE_MODE=1: new orders blocked (cancels allowed)" if self.risk.safe_mode else None

    def check(self, ctx: GateContext) -> str | None:
        return None if _flatten(ctx) else self.probe(ctx.now_us)
