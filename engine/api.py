"""The engine's command API: the single entry point for every order-affecting or critical action.

Callers (strategies, the cockpit's bridge, the control socket, scripts) hand an immutable command
and get a ``CommandResult``; nothing else reaches the OMS or a venue. ``handle`` runs on the engine
loop thread; ``execute`` is the coroutine other threads schedule with
``asyncio.run_coroutine_threadsafe`` (never ``call_from_thread``: the engine must not wait on the UI).

Invariants: a refused command is a ``CommandResult(ok=False, message=...)`` with a one-line
reason, never an exception; every accepted critical action is audited with its actor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.core.events import (
    AcknowledgeOrphans,
    ArmKillSwitch,
    CancelAll,
    CancelOrder,
    Command,
    CommandResult,
    DisarmKillSwitch,
    PinModel,
    PromoteChallenger,
    RecordIncident,
    ResetRisk,
    RollbackModel,
    SetCanaryShare,
    SetSafeMode,
    SubmitOrder,
)
from engine.strategy.strategies import ModelStrategy
from engine.trading.commands import Commands
from engine.trading.engine import Engine

# Critical actions (SPEC §4): confirmed in the UI and, when 2FA is enrolled, TOTP-checked here.
CRITICAL = (ArmKillSwitch, DisarmKillSwitch, PromoteChallenger, RollbackModel, SetCanaryShare,
            ResetRisk, PinModel, AcknowledgeOrphans)  # fmt: skip
ROLES = ("operator", "observer")


class RoleRefused(ValueError):
    """The requested role contradicts the profile (e.g. ``--role operator`` on staging)."""


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
    """``role``: observers see everything and can act on nothing — enforced here, in the engine.
    ``totp``: a guard with ``enrolled`` and ``verify(code, action)``; critical actions (and safe
    mode off) need a valid, never-replayed code when it is enrolled."""

    def __init__(self, engine: Engine, models: ModelStrategy | None = None, *,
                 role: str = "operator", totp: Any = None) -> None:  # fmt: skip
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
        self.engine = engine
        self.commands = Commands(engine)
        self.models = models
        self.role = role
        self.totp = totp

    async def execute(self, cmd: Command, totp_code: str | None = None) -> CommandResult:
        return self.handle(cmd, totp_code)

    def needs_totp(self, cmd: Command) -> bool:
        critical = isinstance(cmd, CRITICAL) or (isinstance(cmd, SetSafeMode) and not cmd.on)
        return critical and self.totp is not None and bool(self.totp.enrolled)

    def handle(self, cmd: Command, totp_code: str | None = None) -> CommandResult:
        e = self.engine
        name = type(cmd).__name__
        if self.role == "observer":
            e.recorder.audit(getattr(cmd, "actor", "observer"), "command_denied",
                     {"command": name, "reason": "observer role"})  # fmt: skip
            return CommandResult(ok=False, message=f"{name} denied: observers cannot act")
        if self.needs_totp(cmd):
            res = self.totp.verify(totp_code or "", name)
            # replay protection and lockout survive restarts
            e.recorder.set_state("totp_state", json.dumps(self.totp.state()))
            if not res.ok:
                e.recorder.audit(getattr(cmd, "actor", "operator"), "command_denied",
                         {"command": name, "reason": res.message})  # fmt: skip
                return CommandResult(ok=False, message=f"{name} denied: {res.message}")
        c = self.commands
        match cmd:
            case SubmitOrder():
                return e.submit(cmd, routed="manual" if cmd.actor != "engine" else "")
            case CancelOrder():
                return c.cancel(cmd.client_order_id, cmd.actor, cmd.reason)
            case CancelAll():
                return c.cancel_all(cmd.symbol, cmd.actor, cmd.reason)
            case ArmKillSwitch():
                return c.arm_kill_switch(cmd.actor, cmd.reason)
            case DisarmKillSwitch():
                return c.disarm_kill_switch(cmd.actor, cmd.reason)
            case SetSafeMode():
                return c.set_safe_mode(cmd.on, cmd.actor, cmd.reason)
            case ResetRisk():
                return c.reset_risk(cmd.actor, cmd.reason)
            case RecordIncident():
                return c.record_incident(cmd.actor, cmd.note)
            case AcknowledgeOrphans():
                return c.acknowledge_orphans(cmd.symbol, cmd.actor, cmd.reason)
            case PinModel() | PromoteChallenger() | RollbackModel() | SetCanaryShare():
                return self._models(cmd)
        return CommandResult(ok=False, message=f"unknown command {type(cmd).__name__}")

    def _models(self, cmd: Command) -> CommandResult:
        m = self.models
        if m is None:
            return CommandResult(ok=False, message="no model strategy is running")
        match cmd:
            case PinModel():
                return m.pin(cmd.model_id, cmd.actor)
            case PromoteChallenger():
                return m.promote(cmd.actor)
            case RollbackModel():
                return m.rollback(cmd.actor)
            case SetCanaryShare():
                return m.set_canary_share(cmd.share, cmd.actor)
        return CommandResult(ok=False, message=f"not a model command: {type(cmd).__name__}")


def build_api(engine: Engine, strategy: Any, *, role: str, data_dir: Path,
              totp_secret: str | None) -> EngineAPI:  # fmt: skip
    """The one construction of the engine's command API, for the cockpit and the control socket.

    ``totp_secret`` is read from the keystore *before* the engine boots (``load_totp_secret``), so
    a missing or wrong keyring key stops the start before anything is written. Once enrolled, a
    data dir remembers it (``totp_enrolled``): a seed that has since vanished refuses the start
    (fail closed) instead of silently dropping 2FA.
    """
    from engine.security.keystore import KeystoreError, keystore_path
    from engine.security.totp import TotpGuard

    enrolled_before = engine.recorder.state("totp_enrolled") == "1"
    if totp_secret is None and enrolled_before:
        raise KeystoreError(
            f"2FA was enrolled for {data_dir} but its secret is gone "
            f"({keystore_path(data_dir)}): restore the keystore or re-enroll with "
            "`cockpit totp enroll --force`; refusing to run without 2FA"
        )
    if totp_secret is not None and not enrolled_before:
        engine.recorder.set_state("totp_enrolled", "1")  # from now on its absence is an error
    risk = engine.risk
    if risk.kill_switch and "KeystoreError" in risk.kill_reason:
        # armed by an older release when a start failed on the key: the switch stays armed (fail
        # closed, an operator disarms it), but the banner follows the key that works now
        risk.kill_reason = ("armed by an earlier start that could not open the keystore; "
                            "the current key opens it: review, then disarm")  # fmt: skip
    raw = engine.recorder.state("totp_state")
    guard = TotpGuard(totp_secret, state=json.loads(raw) if raw else None)
    models = strategy if hasattr(strategy, "registry") else None  # the bench strategy has none
    return EngineAPI(engine, models, role=role, totp=guard)
