"""The engine's command API: the single entry point for every order-affecting or critical action.

Callers (strategies, the cockpit's bridge, the control socket, scripts) hand an immutable command
and get a ``CommandResult``; nothing else reaches the OMS or a venue. ``handle`` runs on the engine
loop thread; ``execute`` is the coroutine other threads schedule with
``asyncio.run_coroutine_threadsafe`` (never ``call_from_thread``: the engine must not wait on the UI).

Invariants: a refused command is a ``CommandResult(ok=False, message=...)`` with a one-line
reason, never an exception; every accepted critical action is audited with its actor.
"""

from __future__ import annotations

from engine.engine import Engine
from engine.events import (
    AcknowledgeOrphans,
    ArmKillSwitch,
    CancelAll,
    CancelOrder,
    Command,
    CommandResult,
    DisarmKillSwitch,
    PinModel,
    PromoteChallenger,
    ResetRisk,
    RollbackModel,
    SetCanaryShare,
    SetSafeMode,
    SubmitOrder,
)
from engine.strategy import ModelStrategy


class EngineAPI:
    def __init__(self, engine: Engine, models: ModelStrategy | None = None) -> None:
        self.engine = engine
        self.models = models

    async def execute(self, cmd: Command) -> CommandResult:
        return self.handle(cmd)

    def handle(self, cmd: Command) -> CommandResult:
        e = self.engine
        match cmd:
            case SubmitOrder():
                return e.submit(cmd, routed="manual" if cmd.actor != "engine" else "")
            case CancelOrder():
                return e.cancel(cmd.client_order_id, cmd.actor, cmd.reason)
            case CancelAll():
                return e.cancel_all(cmd.symbol, cmd.actor, cmd.reason)
            case ArmKillSwitch():
                return e.arm_kill_switch(cmd.actor, cmd.reason)
            case DisarmKillSwitch():
                return e.disarm_kill_switch(cmd.actor, cmd.reason)
            case SetSafeMode():
                return e.set_safe_mode(cmd.on, cmd.actor, cmd.reason)
            case ResetRisk():
                return e.reset_risk(cmd.actor, cmd.reason)
            case AcknowledgeOrphans():
                return e.acknowledge_orphans(cmd.symbol, cmd.actor, cmd.reason)
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
