"""The one confirmation modal for every critical action, and a small text prompt.

Invariants: the modal names the action, its effect and the exact command it will send (shown
literally, never as markup). Without a code to type, focus starts on Cancel and one key (``y``)
confirms. When the action needs a TOTP code, focus starts in the code field: digits go there,
Enter confirms (so "type the code, press Enter" never cancels), ``y`` confirms too and
``n``/escape cancel — those keys are priority bindings, so they work inside the digits-only field.
Every key comes from ``cockpit.keymap`` and a keymap file can move it. The kill-switch key is an
app-level priority binding, so it is never typed into the field either. Context for the decision
(promote: the challenger's latest campaign verdict) comes from a blocking reader the modal runs
off the UI thread once it is up: the keys work meanwhile, and a failing reader is one line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from cockpit.keymap import scope_keys


def bindings(scope: str) -> list[BindingType]:
    """The Textual bindings of one screen, from the one key table (``cockpit.keymap.KEYS``)."""
    return [
        Binding(k.keys, k.action, k.label, show=k.show, priority=k.priority, id=k.id)
        for k in scope_keys(scope)
    ]


class ConfirmScreen(ModalScreen[tuple[bool, str]]):
    """Dismisses with ``(confirmed, totp_code)``."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 72; height: auto; max-height: 20; border: thick $warning; background: $panel;
        padding: 0 1;
    }
    ConfirmScreen #title { text-style: bold; color: $warning; }
    ConfirmScreen #command { color: $accent; }
    ConfirmScreen #detail { color: $text-muted; }
    ConfirmScreen #error { color: $error; }
    ConfirmScreen Horizontal { height: 3; align: right middle; }
    """
    BINDINGS: ClassVar[list[BindingType]] = bindings("confirm")

    # focused once mounted: the first match in DOM order — the code field when one is needed
    # (it comes first), else Cancel
    AUTO_FOCUS = "#totp, #cancel"

    def __init__(
        self,
        action: str,
        effect: str,
        command: str,
        needs_totp: bool,
        *,
        detail: Callable[[], str] | None = None,
    ) -> None:
        super().__init__()
        self.action_name = action
        self.effect = effect
        self.command = command
        self.needs_totp = needs_totp
        # context worth reading before confirming (promote: the challenger's latest campaign
        # verdict), from a blocking reader run off the UI thread once the modal is up
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Confirm: {self.action_name}"), id="title")
            yield Static(Text(self.effect), id="effect")
            yield Static(Text(f"command: {self.command}"), id="command")
            if self.detail is not None:
                yield Static(Text("reading…"), id="detail")
            if self.needs_totp:
                yield Input(
                    placeholder="TOTP code (6 digits), Enter to confirm",
                    id="totp",
                    max_length=6,
                    restrict=r"[0-9]*",
                )
            yield Static("", id="error")
            with Horizontal():
                yield Button("Cancel (n)", id="cancel", variant="primary")
                yield Button("Confirm (y)", id="ok", variant="warning")

    def on_mount(self) -> None:
        if self.detail is not None:
            self.run_worker(self._show_detail(self.detail), group="confirm-detail")

    async def _show_detail(self, detail: Callable[[], str]) -> None:
        try:
            text = await asyncio.to_thread(detail)
        except Exception as exc:  # the modal works whatever its context's reader does
            logging.getLogger("cockpit.confirm").warning("confirm detail failed", exc_info=exc)
            text = f"(not available: {type(exc).__name__})"
        self.query_one("#detail", Static).update(Text(text))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_confirm()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_confirm()

    def action_confirm(self) -> None:
        code = ""
        if self.needs_totp:
            code = self.query_one("#totp", Input).value.strip()
            if len(code) != 6:
                self.query_one("#error", Static).update("enter the 6-digit TOTP code first")
                self.query_one("#totp", Input).focus()
                return
        self.dismiss((True, code))

    def action_cancel(self) -> None:
        self.dismiss((False, ""))


class PromptScreen(ModalScreen[str | None]):
    """One line of text (incident note, model id, canary share); escape cancels."""

    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 72; height: auto; border: thick $accent; background: $panel;
                              padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = bindings("prompt")

    AUTO_FOCUS = "#value"

    def __init__(self, title: str, placeholder: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title_text))
            yield Input(placeholder=self.placeholder, id="value")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class NoticeScreen(ModalScreen[None]):
    """A blocking notice the operator must acknowledge (e.g. the engine stopped)."""

    DEFAULT_CSS = """
    NoticeScreen { align: center middle; }
    NoticeScreen > Vertical { width: 72; height: auto; border: thick $error; background: $panel;
                              padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = bindings("notice")

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.text))
            yield Button("OK (enter)", id="ok", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
