"""The go-live actions of the cockpit: preflight, go/no-go, go-live, breakers, kill-switch scopes,
reduce-only and flatten — each the same engine command the shell sends (``cockpit.control_cli``).

Role: a mixin of ``CockpitApp``; every critical action goes through the app's one confirmation
modal (``_critical``): one key for what only reduces risk (a scope's kill switch, reduce-only on),
confirm + TOTP for what can add risk (lifting a scope, reduce-only off, flatten, breaker reset,
go-live). Reports (preflight, go/no-go) are read-only queries shown in a notice.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from cockpit.confirm import NoticeScreen, PromptScreen
from engine.core.events import (
    ArmKillSwitch,
    Command,
    CommandResult,
    DisarmKillSwitch,
    Flatten,
    GoLive,
    ResetBreaker,
    SetReduceOnly,
)
from engine.snapshot import EngineSnapshot


class _App(Protocol):
    host: Any
    snap: EngineSnapshot | None

    @property
    def actor(self) -> str: ...

    def _critical(self, action: str, effect: str, cmd: Command) -> None: ...
    def to_ui(self, fn: Any, *args: Any) -> None: ...
    def _result(self, res: CommandResult) -> None: ...
    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...


def _scope(text: str) -> dict[str, str]:
    """``BTC/USDT`` → a symbol scope; ``model:ID`` (or ``m:ID``) → a model scope."""
    t = text.strip()
    for prefix in ("model:", "m:"):
        if t.startswith(prefix):
            return {"model": t[len(prefix) :].strip()}
    return {"symbol": t.upper()}


def _report(app: _App, name: str, render: Callable[[Any], str]) -> None:
    """Run a read-only report on the engine; show it in a notice (from the UI loop)."""

    def done(f: Future[Any]) -> None:
        exc = f.exception()
        text = f"{name} failed: {exc}" if exc is not None else render(f.result())
        app.to_ui(app.push_screen, NoticeScreen(text))

    app.host.query(name.replace("-", "_")).add_done_callback(done)


def _db_check_text(res: Any) -> str:
    lines = [f"DATABASE: {'OK' if res['ok'] else 'DAMAGED'}"]
    lines += [f"{c['status'].upper():>4} {c['name']}: {c['detail']}" for c in res["checks"]]
    return "\n".join(lines + ([f"remedy: {res['remedy']}"] if res["remedy"] else []))


class OpsActions:
    """The daily routines (runbook 001/002): backup, restore test, DB check, regulatory export —
    the same engine queries ``cockpit backup|restore --test|db check|export regulatory`` send."""

    def action_backup(self: _App) -> None:
        _report(self, "backup", lambda r: f"backup written: {r['backup']} ({r['bytes']} bytes)")

    def action_restore_test(self: _App) -> None:
        def render(r: Any) -> str:
            return f"restore test {'passed' if r['ok'] else 'FAILED'}: {r['backup']}: {r['reason']}"

        _report(self, "restore_test", render)

    def action_db_check(self: _App) -> None:
        _report(self, "db_check", _db_check_text)

    def action_regulatory(self: _App) -> None:
        _report(
            self, "regulatory", lambda r: f"regulatory export: {r['export']} ({r['rows']} records)"
        )


class GoLiveActions:
    """Actions bound in ``cockpit.keymap`` (ids: preflight, go_no_go, go_live, breaker_reset,
    kill_scope, lift_scope, reduce_only, flatten)."""

    def action_preflight(self: _App) -> None:
        def render(res: Any) -> str:
            lines = [f"PREFLIGHT {res['preflight_id']}: {'GREEN' if res['ok'] else 'RED'}"]
            lines += [f"{c['status'].upper():>4} {c['name']}: {c['reason']}" for c in res["checks"]]
            if not res["recorded"]:
                lines.append(f"not recorded: {res['message']}")
            return "\n".join(lines)

        _report(self, "preflight", render)

    def action_go_no_go(self: _App) -> None:
        def render(res: Any) -> str:
            lines = [f"GO / NO-GO: {res['verdict']}"]
            lines += [
                f"{'PASS' if c['ok'] else 'FAIL'} {c['name']}: {c['value']} ({c['threshold']})"
                for c in res["criteria"]
            ]
            return "\n".join(lines)

        _report(self, "go-no-go", render)

    def action_go_live(self: _App) -> None:
        def got(phrase: str | None) -> None:
            if phrase is None:
                return
            self._critical(
                "GO LIVE",
                "Opens live trading with real money (every lock is checked by the engine).",
                GoLive(phrase=phrase, actor=self.actor),
            )

        self.push_screen(PromptScreen("Type the LIVE_CONFIRM phrase to go live"), got)

    def action_breaker_reset(self: _App) -> None:
        def got(name: str | None) -> None:
            if name:
                self._critical(
                    f"RESET BREAKER {name}",
                    "The breaker re-arms with a fresh window; new orders pass it again.",
                    ResetBreaker(name=name, actor=self.actor, reason="operator"),
                )

        self.push_screen(PromptScreen("Reset which breaker? (error_rate, slippage, all)"), got)

    def action_kill_scope(self: _App) -> None:
        def got(text: str | None) -> None:
            if text:
                cmd = ArmKillSwitch(actor=self.actor, reason="operator: scope", **_scope(text))
                self._critical(
                    f"KILL {text.strip()}",
                    "Stops new orders on this scope only and cancels its resting orders.",
                    cmd,
                )

        self.push_screen(PromptScreen("Kill which scope? SYMBOL or model:ID", "BTC/USDT"), got)

    def action_lift_scope(self: _App) -> None:
        def got(text: str | None) -> None:
            if text:
                cmd = DisarmKillSwitch(actor=self.actor, reason="operator", **_scope(text))
                self._critical(
                    f"LIFT KILL {text.strip()}", "Orders on this scope are allowed again.", cmd
                )

        self.push_screen(PromptScreen("Lift the kill switch of which scope?"), got)

    def action_reduce_only(self: _App) -> None:
        on = not (self.snap.stops.reduce_only if self.snap else "")
        self._critical(
            f"REDUCE-ONLY {'ON' if on else 'OFF'}",
            "Only orders that reduce exposure pass; market data keeps flowing."
            if on
            else "Orders that add exposure are allowed again (other gates still apply).",
            SetReduceOnly(on=on, actor=self.actor, reason="operator"),
        )

    def action_flatten(self: _App) -> None:
        self._critical(
            "FLATTEN",
            "Cancels every open order and closes every position at market.",
            Flatten(actor=self.actor, reason="operator"),
        )
