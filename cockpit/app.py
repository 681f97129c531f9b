"""The Textual cockpit: panels pulled from engine snapshots, keyboard-first, critical actions
double-confirmed (TOTP when enrolled), observers read-only (enforced in the engine too).

Invariants:
- Exactly one bridge (``pull``) moves state from engine to UI: a timer that re-arms itself after
  each pass (never overlapping), reads the host's latest snapshot by reference and pushes it down
  into the widgets — one update pass per refresh, unchanged widgets skip their own work. It pauses
  while a modal is open.
- Every key is a ``Binding`` with an id and an ``action_*`` method, built from the one key table
  ``cockpit.keymap.KEYS`` (the operator's keymap file moves keys by id); ctrl+k (kill switch) is
  a priority binding reachable from every screen and modal.
- If the engine thread dies the operator is told at once (blocking notice, halted status); the
  UI never silently outlives its engine.
- Once a quit has begun no action runs (a key typed right after ``q`` must not open a screen on
  an app that is tearing down). A UI failure is logged with its traceback the moment it happens
  and recorded in ``failure``; the caller (``cockpit.cli._run_tui``) halts trading, shows it and
  exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import App, ComposeResult, ScreenStackError
from textual.binding import BindingType
from textual.containers import Grid, Vertical, VerticalScroll
from textual.widgets import Footer, TabbedContent, TabPane

from cockpit.actions import GoLiveActions, OpsActions
from cockpit.confirm import ConfirmScreen, NoticeScreen, PromptScreen, bindings
from cockpit.palette import CockpitCommands, HelpScreen
from cockpit.port import EnginePort
from cockpit.research_view import ResearchTab, promote_verdict
from engine.core.events import (
    ArmKillSwitch,
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
)
from engine.snapshot import EngineSnapshot
from widgets import (
    SNAPSHOT_WIDGETS,
    AlertRulesPanel,
    AlertsPanel,
    AuditPanel,
    BudgetsPanel,
    DecisionsPanel,
    FeedsPanel,
    FillsPanel,
    GatesPanel,
    IncidentsPanel,
    KpiPanel,
    ModelPanel,
    OrdersPanel,
    PnlPanel,
    PositionsPanel,
    PreflightPanel,
    PriceSparklines,
    ReconPanel,
    SkewPanel,
    StatusBar,
    StopsPanel,
    plain,
)


def tui_actor(role: str) -> str:
    """Who acted, as the audit trail records it: the Unix user at this terminal and the role."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"tui:{user}({role})"


log = logging.getLogger("cockpit.app")


class CockpitApp(GoLiveActions, OpsActions, App[None]):
    """The cockpit screen: panels fed by one bridge (``pull``), keys from ``cockpit.keymap``, critical
    actions through the one confirmation modal, commands through the engine port."""

    CSS_PATH = "app.tcss"
    TITLE = "cockpit"
    # every key comes from cockpit.keymap.KEYS, so the operator's keymap file can move it
    BINDINGS: ClassVar[list[BindingType]] = bindings("cockpit")
    # ctrl+p: every action by name (80 columns cannot show every key in the footer)
    COMMANDS = App.COMMANDS | {CockpitCommands}

    def __init__(
        self,
        host: EnginePort,
        *,
        refresh_hz: float = 4.0,
        role: str = "operator",
        keymap: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        super().__init__()
        # the research tab and the promote modal read <data-dir>/research/campaigns.duckdb; the CLI
        # passes it, an EngineHost also knows it (on its runtime), a FixedHost has none
        self.data_dir = data_dir or getattr(getattr(host, "runtime", None), "data_dir", None)
        self.keymap_overrides = dict(keymap or {})  # shown by the help screen and palette
        if keymap:  # checked whole by cockpit.keymap before the engine started
            self.set_keymap(dict(keymap))
        self.host = host
        self.role = role
        self.refresh_s = 1.0 / refresh_hz
        self.last_seq = -1
        self.snap: EngineSnapshot | None = None
        self.engine_lost = False
        self.passes = 0
        self._panels: list[Any] = []
        self.hangup = False
        self.quitting = False
        self.failure: str | None = None  # first line of the UI error that ended the app

    # --- lifecycle ----------------------------------------------------------------------------

    def exit(self, *args: Any, **kwargs: Any) -> None:
        self.quitting = True
        super().exit(*args, **kwargs)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # keys already queued behind a quit (q then n, typed fast) must not open screens on an
        # app that is shutting down: that mounted a half-built prompt and crashed the UI
        return not self.quitting

    def _handle_exception(self, error: Exception) -> None:
        # Textual's single funnel for an unhandled UI exception (it then exits with code 1 and
        # prints the traceback once the screen is restored): log it now, with the traceback,
        # so the failure is on record even if the terminal is gone.
        if self.failure is None:
            self.failure = f"{type(error).__name__}: {error}".splitlines()[0]
        self.quitting = True
        log.critical("cockpit UI failed: %s", self.failure, exc_info=error)
        super()._handle_exception(error)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with TabbedContent(initial="overview"):
            with TabPane("Overview", id="overview"), Grid(id="overview-grid"):
                yield GatesPanel(id="gates")
                with Vertical(id="overview-right"):
                    yield BudgetsPanel(id="budgets")
                    yield SkewPanel(id="skew")
                    yield ReconPanel(id="recon")
            with TabPane("Trading", id="trading"), VerticalScroll():
                yield PositionsPanel(id="positions")
                yield PriceSparklines(id="prices")
                yield PnlPanel(id="pnl")
                yield OrdersPanel(id="orders")
                yield FillsPanel(id="fills")
            with TabPane("Feeds/SLO", id="feeds-tab"), VerticalScroll():
                yield FeedsPanel(id="feeds")
                yield KpiPanel(id="kpi")
            with TabPane("Model", id="model-tab"), VerticalScroll():
                yield ModelPanel(id="model")
                yield DecisionsPanel(id="decisions")
            with TabPane("Go-live", id="golive-tab"), VerticalScroll():
                yield PreflightPanel(id="preflight")
                yield StopsPanel(id="stops")
                yield AlertRulesPanel(id="alert-rules")
            with TabPane("Log", id="log-tab"), VerticalScroll():
                yield AlertsPanel(id="alerts")
                yield IncidentsPanel(id="incidents")
                yield AuditPanel(id="audit")
            with TabPane("Research", id="research-tab"):
                yield ResearchTab(self.data_dir, id="research-view")
        yield Footer()

    def on_mount(self) -> None:
        self._ui_loop = asyncio.get_running_loop()
        # SSH drop / tmux kill: the same clean shutdown as quit (not on loops without signals)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_hangup)
        self._panels = [w for w in self.query("*") if isinstance(w, SNAPSHOT_WIDGETS)]
        self._pin_console_size(self.size.width, self.size.height)
        self.pull()

    def on_resize(self, event: events.Resize) -> None:
        self._pin_console_size(event.size.width, event.size.height)

    def _pin_console_size(self, width: int, height: int) -> None:
        # Rich asks the terminal (an ioctl) every time it builds console options unless the
        # console's size is set; panels measure their text on every update (with DataTables that
        # was ~12% of the UI thread — GIL time the engine waits for). The app knows its size:
        # hand it over on every resize.
        self.console.size = (width, height)

    def _on_hangup(self) -> None:
        """SSH drop / tmux kill. The terminal is gone, and Textual's own teardown can block on
        it (its output queue never drains), so the engine is stopped cleanly first — in-flight
        orders answered, rows committed, final textfile, ``shutdown`` audit row, DB closed —
        and then the process leaves without waiting on the dead terminal."""
        self.hangup = True
        try:
            self.host.stop("SIGHUP")
        finally:
            os._exit(0)

    # --- the bridge ---------------------------------------------------------------------------

    def pull(self) -> None:
        """The bridge: take the newest snapshot (if any) into every panel, then re-arm."""
        if self.quitting:
            return  # the app is shutting down: the bridge stops with it (no re-arm)
        try:
            screen = self.screen
        except ScreenStackError:
            return
        try:
            if not self.host.alive and not self.engine_lost:
                self.engine_lost = True
                self.query_one(StatusBar).set_class(True, "-halted")
                self.push_screen(
                    NoticeScreen(
                        f"ENGINE STOPPED: {self.host.error or 'thread ended'}\\n"
                        "Trading is halted (kill switch armed). Restart the cockpit."
                    )
                )
            elif not isinstance(screen, ModalLike):
                snap = self.host.snapshot
                if snap is not None and snap.seq != self.last_seq:
                    self.last_seq = snap.seq
                    self.snap = snap
                    self.passes += 1
                    for w in self._panels:
                        w.update_snapshot(snap)
        finally:
            self.set_timer(self.refresh_s, self.pull)  # re-arm after finishing: no overlap

    # --- commands -----------------------------------------------------------------------------

    def _send(self, cmd: Command, totp: str = "") -> None:
        fut: Future[CommandResult] = self.host.execute(cmd, totp or None)

        fut.add_done_callback(lambda f: self.to_ui(self._result, f.result()))

    def to_ui(self, fn: Any, *args: Any) -> None:
        """Hand a result to the UI loop without waiting (called on the engine thread: it must
        never block there, so no ``call_from_thread``)."""
        self._ui_loop.call_soon_threadsafe(fn, *args)

    def _result(self, res: CommandResult) -> None:
        # venue text may contain brackets (never parsed as markup) or bidi/control characters
        # (escaped, as on every panel)
        self.notify(plain(res.message), severity="information" if res.ok else "error", markup=False)
        self.last_seq = -1  # show the effect at the next pass

    @property
    def actor(self) -> str:
        return tui_actor("observer" if self._observer() else "operator")

    def _observer(self) -> bool:
        return self.role == "observer" or (self.snap is not None and self.snap.role == "observer")

    def _critical(
        self, action: str, effect: str, cmd: Command, detail: Callable[[], str] | None = None
    ) -> None:
        if self._observer():  # refused and audited by the engine, before any prompt
            self._send(cmd)
            return
        needs = self.host.needs_totp(cmd)

        def answered(result: tuple[bool, str] | None) -> None:
            if result and result[0]:
                self._send(cmd, result[1])

        self.push_screen(ConfirmScreen(action, effect, repr(cmd), needs, detail=detail), answered)

    def action_kill_switch(self) -> None:
        if isinstance(self.screen, ConfirmScreen) and "kill switch" in self.screen.action_name:
            return
        self._critical(
            "ARM KILL SWITCH",
            "Blocks every new order at once and cancels resting "
            "orders. Trading stays stopped until an operator disarms it.",
            ArmKillSwitch(actor=self.actor, reason="operator: ctrl+k"),
        )

    def action_resume_trading(self) -> None:
        self._critical(
            "RESUME TRADING (disarm the kill switch)",
            "New orders are allowed again, subject to every other gate.",
            DisarmKillSwitch(actor=self.actor, reason="operator"),
        )

    def action_safe_mode(self) -> None:
        on = not (self.snap.safe_mode if self.snap else False)
        if on:  # turning safe mode ON only makes things safer: no confirmation
            self._send(SetSafeMode(on=True, actor=self.actor, reason="operator toggle"))
            return

        def got(reason: str | None) -> None:  # the prompt strips; empty / escape give None
            if not reason:
                self.notify("Safe mode stays ON (no reason given).", severity="warning")
                return
            self._critical(
                "SAFE MODE OFF",
                "New orders are allowed again (subject to gates). "
                "The reason goes to the incident journal.",
                SetSafeMode(on=False, actor=self.actor, reason=reason),
            )

        # SPEC §2: the reason for turning safe mode off is written to the incident journal
        self.push_screen(PromptScreen("Reason for turning SAFE MODE off (incident journal)"), got)

    def action_promote(self) -> None:
        self._critical(
            "PROMOTE CHALLENGER",
            "The challenger becomes champion; the champion becomes challenger.",
            PromoteChallenger(actor=self.actor),
            # the challenger's latest walk-forward verdict, read off the UI thread by the modal
            detail=partial(
                promote_verdict, self.data_dir, self.snap.model.challenger if self.snap else ""
            ),
        )

    def action_rollback(self) -> None:
        self._critical(
            "ROLLBACK MODELS",
            "Restore the champion/challenger pair before the last promote.",
            RollbackModel(actor=self.actor),
        )

    def action_risk_reset(self) -> None:
        self._critical(
            "RISK RESET",
            "Re-baseline the daily drawdown at current equity.",
            ResetRisk(actor=self.actor, reason="operator"),
        )

    def action_pin(self) -> None:
        def got(value: str | None) -> None:
            if value is not None:
                model = None if value == "-" else value
                self._critical(
                    f"PIN MODEL {model or '(unpin)'}",
                    "Every decision uses this model (canary routing bypassed).",
                    PinModel(model_id=model, actor=self.actor),
                )

        self.push_screen(PromptScreen("Pin which model id? ('-' unpins)", "trend_v1"), got)

    def action_canary(self) -> None:
        def got(value: str | None) -> None:
            if value is None:
                return
            try:
                share = float(value)
            except ValueError:
                self.notify(f"not a number: {plain(value)}", severity="error", markup=False)
                return
            self._critical(
                f"CANARY SHARE {share:g}",
                "This share of decisions goes to the challenger.",
                SetCanaryShare(share=share, actor=self.actor),
            )

        self.push_screen(PromptScreen("Canary share (0..1; ramp 0.05 → 0.10 → 0.20)", "0.10"), got)

    def action_reconcile(self) -> None:
        def done(f: Future[Any]) -> None:
            exc = f.exception()
            res = (
                CommandResult(ok=False, message=f"reconciliation failed: {exc}")
                if exc is not None
                else CommandResult(
                    ok=f.result().ok, message=f"reconciliation: {f.result().mismatches}"
                )
            )
            self.to_ui(self._result, res)

        self.host.query("reconcile", {"typed": True}).add_done_callback(done)

    def action_incident(self) -> None:
        def got(note: str | None) -> None:
            if note:
                self._send(RecordIncident(note=note, actor=self.actor))

        self.push_screen(PromptScreen("Incident note (context is attached automatically)"), got)

    def action_export(self) -> None:
        def done(f: Future[Any]) -> None:
            exc = f.exception()
            res = (
                CommandResult(ok=False, message=f"report failed: {exc}")
                if exc is not None
                else CommandResult(ok=True, message=f"report written: {f.result()['path']}")
            )
            self.to_ui(self._result, res)

        self.host.query("export").add_done_callback(done)

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.keymap_overrides))

    def action_quit_cockpit(self) -> None:
        open_orders = self.snap.open_orders if self.snap else 0
        if open_orders:

            def answered(result: tuple[bool, str] | None) -> None:
                if result and result[0]:
                    self.exit()

            self.push_screen(
                ConfirmScreen(
                    "QUIT WITH OPEN ORDERS",
                    f"{open_orders} order(s) stay open at the venue; the engine stops cleanly.",
                    "quit",
                    False,
                ),
                answered,
            )
        else:
            # no exit message: Textual prints only the first exit renderable, and a "quit" there
            # hid the traceback of any UI error that followed it
            self.exit()


ModalLike = (ConfirmScreen, PromptScreen, NoticeScreen, HelpScreen)
