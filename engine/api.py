"""The engine's one door: every command in, every read-only query out.

Callers — the cockpit (through its port), the control socket (for the CLI), strategies and
scripts — hand an immutable command to ``handle`` (or ``execute`` from another thread) and get a
``CommandResult``; nothing else changes engine state on anyone's behalf. Read-only requests
(status, reconcile report, health, audit verification, backup, export) go through ``query``,
whose handlers the runtime registers when it builds the API (``engine.runtime.runner``); the
runtime builds exactly one API per engine, headless and under the cockpit alike.

Invariants: ``handle`` checks the role first (an observer can act on nothing; the denial is
audited), then the TOTP code for critical actions when 2FA is enrolled (replay-proof; its state is
persisted after every check), then runs the command through ``trading.commands.Commands`` or the
model strategy, which audit it with its actor. A refusal is a ``CommandResult(ok=False)`` with a
one-line reason, never an exception. ``emergency_stop`` (arming the kill switch when the UI
itself fails) is the one command without role or TOTP: it can only reduce risk, and it is audited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from engine.core.events import (
    AcknowledgeOrphans,
    ArmKillSwitch,
    CancelAll,
    CancelOrder,
    Command,
    CommandResult,
    DisarmKillSwitch,
    Flatten,
    GoLive,
    PinModel,
    PromoteChallenger,
    RecordConfigChange,
    RecordIncident,
    RecordPreflight,
    ResetBreaker,
    ResetRisk,
    RollbackModel,
    SetCanaryShare,
    SetChallenger,
    SetReduceOnly,
    SetSafeMode,
    SubmitOrder,
)
from engine.security.totp import TotpGuard
from engine.strategy.strategies import ModelStrategy
from engine.trading.commands import Commands
from engine.trading.engine import Engine

# Critical actions: each is confirmed (TUI modal, CLI prompt or --yes). Those that can add risk
# also need a TOTP code when 2FA is enrolled; those that only reduce it (arming a kill switch,
# reduce-only on, safe mode on) never wait for a code — in an emergency a code costs seconds.
RISK_INCREASING = (
    DisarmKillSwitch,
    PromoteChallenger,
    SetChallenger,
    RollbackModel,
    SetCanaryShare,
    ResetRisk,
    ResetBreaker,
    PinModel,
    AcknowledgeOrphans,
    Flatten,  # it sends market orders: confirm + TOTP, like the go-live runbook asks
    GoLive,
)
RISK_REDUCING = (ArmKillSwitch,)
CRITICAL = RISK_INCREASING + RISK_REDUCING
ROLES = ("operator", "observer")

# A read-only query: arguments in, a JSON-able answer out (runs on the engine loop).
Query = Callable[[Mapping[str, Any]], Awaitable[Any]]


def adds_risk(cmd: Command) -> bool:
    """Commands that can add risk (TOTP when enrolled): see ``RISK_INCREASING``."""
    if isinstance(cmd, SetSafeMode | SetReduceOnly):
        return not cmd.on  # turning a protection off
    if isinstance(cmd, RecordConfigChange):
        return cmd.apply  # a limit changed on the running engine (it may be loosened)
    return isinstance(cmd, RISK_INCREASING)


def is_critical(cmd: Command) -> bool:
    """Confirmed before it runs (one modal / prompt for all of them)."""
    return isinstance(cmd, CRITICAL) or adds_risk(cmd)


class RoleRefused(ValueError):
    """The requested role contradicts the profile (e.g. ``--role operator`` on staging)."""


class UnknownQuery(ValueError):
    """A query name the engine does not answer."""


def effective_role(observer_start: bool, requested: str | None) -> str:
    """The role an engine runs with: a profile with ``observer_start = true`` (staging) always
    runs as observer, whatever the command line asks — an explicit ``--role operator`` there is
    refused rather than silently ignored, so nobody believes they can act."""
    if requested is not None and requested not in ROLES:
        raise RoleRefused(f"unknown role {requested!r} (known: {', '.join(ROLES)})")
    if observer_start:
        if requested == "operator":
            raise RoleRefused(
                "this profile starts as observer (observer_start = true): --role operator is "
                "refused; drop --role or use a profile meant for operating"
            )
        return "observer"
    return requested or "operator"


class EngineAPI:
    """The one door of one engine. ``role``: observers see everything and can act on nothing.
    ``totp``: critical actions (and safe mode off) need a valid, never-replayed code when 2FA is
    enrolled. ``queries``: the read-only surface, by name."""

    def __init__(
        self,
        engine: Engine,
        models: ModelStrategy | None = None,
        *,
        role: str = "operator",
        totp: TotpGuard | None = None,
        queries: Mapping[str, Query] | None = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
        self.engine = engine
        self.commands = Commands(engine)
        self.models = models
        self.role = role
        self.totp = totp
        self.queries: dict[str, Query] = dict(queries or {})
        # called with the new Config once a hot config change is applied (the runtime's copy)
        self.config_hooks: list[Callable[[Any], None]] = []

    # --- commands ------------------------------------------------------------------------------

    async def execute(
        self, cmd: Command, totp_code: str | None = None, role: str | None = None
    ) -> CommandResult:
        return self.handle(cmd, totp_code, role)

    def needs_totp(self, cmd: Command) -> bool:
        """A code is needed for what can add risk, once 2FA is enrolled."""
        return adds_risk(cmd) and self.totp is not None and self.totp.enrolled

    def handle(
        self, cmd: Command, totp_code: str | None = None, role: str | None = None
    ) -> CommandResult:
        """``role``: the caller's own role (a control-socket peer's, from the roles file); the
        weaker of it and the engine's role applies."""
        rec = self.engine.recorder
        name = type(cmd).__name__
        actor = getattr(cmd, "actor", self.role)
        if self.role == "observer" or role == "observer":
            rec.audit(actor, "command_denied", {"command": name, "reason": "observer role"})
            return CommandResult(ok=False, message=f"{name} denied: observers cannot act")
        if self.totp is not None and self.needs_totp(cmd):
            res = self.totp.verify(totp_code or "", name)
            # replay protection and lockout survive restarts
            rec.set_state("totp_state", _json(self.totp.state()))
            if not res.ok:
                rec.audit(actor, "command_denied", {"command": name, "reason": res.message})
                return CommandResult(ok=False, message=f"{name} denied: {res.message}")
        return self._run(cmd)

    def _run(self, cmd: Command) -> CommandResult:
        e, c = self.engine, self.commands
        match cmd:
            case SubmitOrder():
                return e.submit(cmd, routed="manual" if cmd.actor != "engine" else "")
            case CancelOrder():
                return c.cancel(cmd.client_order_id, cmd.actor, cmd.reason)
            case CancelAll():
                return c.cancel_all(cmd.symbol, cmd.actor, cmd.reason)
            case ArmKillSwitch():
                return c.arm_kill_switch(cmd.actor, cmd.reason, cmd.symbol, cmd.model)
            case DisarmKillSwitch():
                return c.disarm_kill_switch(cmd.actor, cmd.reason, cmd.symbol, cmd.model)
            case SetReduceOnly():
                return c.set_reduce_only(cmd.on, cmd.actor, cmd.reason)
            case Flatten():
                return c.flatten(cmd.actor, cmd.reason)
            case RecordPreflight():
                return c.record_preflight(cmd)
            case GoLive():
                return c.go_live(cmd.phrase, cmd.actor, totp_enrolled=self._enrolled())
            case SetSafeMode():
                return c.set_safe_mode(cmd.on, cmd.actor, cmd.reason)
            case ResetRisk():
                return c.reset_risk(cmd.actor, cmd.reason)
            case ResetBreaker():
                return c.reset_breaker(cmd.name, cmd.actor, cmd.reason)
            case RecordIncident():
                return c.record_incident(cmd.actor, cmd.note)
            case RecordConfigChange():
                return c.change_config(cmd, self._config_applied)
            case AcknowledgeOrphans():
                return c.acknowledge_orphans(cmd.symbol, cmd.actor, cmd.reason)
            case (
                PinModel()
                | SetChallenger()
                | PromoteChallenger()
                | RollbackModel()
                | SetCanaryShare()
            ):
                return self._models(cmd)
        return CommandResult(ok=False, message=f"unknown command {type(cmd).__name__}")

    def _models(self, cmd: Command) -> CommandResult:
        m = self.models
        if m is None:
            return CommandResult(ok=False, message="no model strategy is running")
        match cmd:
            case PinModel():
                return m.pin(cmd.model_id, cmd.actor)
            case SetChallenger():
                return m.set_challenger(cmd.model_id, cmd.actor)
            case PromoteChallenger():
                return m.promote(cmd.actor)
            case RollbackModel():
                return m.rollback(cmd.actor)
            case SetCanaryShare():
                return m.set_canary_share(cmd.share, cmd.actor)
        return CommandResult(ok=False, message=f"not a model command: {type(cmd).__name__}")

    def _config_applied(self, cfg: Any) -> None:
        """A hot config change is in the engine's gates: the strategy and the runtime follow."""
        if self.models is not None:
            self.models.apply_config(cfg)
        for hook in self.config_hooks:
            hook(cfg)

    def _enrolled(self) -> bool:
        return self.totp is not None and self.totp.enrolled

    def emergency_stop(self, actor: str, reason: str) -> CommandResult:
        """Arm the kill switch with no role or TOTP check: for the UI's own failure path only
        (it can only reduce risk). Audited like any arming."""
        return self.engine.arm_kill_switch(actor, reason)

    # --- queries -------------------------------------------------------------------------------

    def serve(self, queries: Mapping[str, Query]) -> None:
        """Register read-only queries (the runtime does, once its parts are up)."""
        self.queries.update(queries)

    async def query(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        """A read-only answer by name (any role); ``UnknownQuery`` for a name not registered."""
        fn = self.queries.get(name)
        if fn is None:
            raise UnknownQuery(f"unknown query {name!r} (known: {', '.join(sorted(self.queries))})")
        return await fn(args or {})


def _json(obj: object) -> str:
    import json

    return json.dumps(obj)
