"""Discoverability at 80×24: every action in the command palette, and a full-screen key list.

- ``CockpitCommands``: a Textual command-palette provider (ctrl+p) listing every cockpit action
  from the one key table (``cockpit.keymap.KEYS``) with its current key; choosing one runs the
  same ``action_*`` the key runs (so the confirmation modal, TOTP and the engine checks apply).
- ``HelpScreen``: the whole key table on its own screen (``?``), so the main view is never
  squeezed; escape / ``?`` / q close it.

Invariants: both are built from ``KEYS`` and the app's active keymap, so a remapped key shows as
remapped; nothing here runs a command itself.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from cockpit.keymap import KEYS, KeySpec


def _shown_key(spec: KeySpec, keymap: dict[str, str]) -> str:
    keys = keymap.get(spec.id, spec.keys)
    return keys.replace("question_mark", "?").replace("ctrl+", "^")


def _cockpit_keys() -> list[KeySpec]:
    return [k for k in KEYS if k.scope == "cockpit" and k.id != "kill_switch.main"]


class CockpitCommands(Provider):
    """Every cockpit action, by name and key."""

    def _entries(self) -> list[tuple[str, str]]:
        keymap = dict(getattr(self.app, "keymap_overrides", {}) or {})
        return [(f"{k.label} ({_shown_key(k, keymap)})", k.action) for k in _cockpit_keys()]

    async def discover(self) -> Hits:
        for title, action in self._entries():
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=action)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action))


class HelpScreen(ModalScreen[None]):
    """Every key on its own full screen."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100%; height: 100%; background: $panel; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def __init__(self, keymap: dict[str, str] | None = None) -> None:
        super().__init__()
        self.keymap = keymap or {}

    def compose(self) -> ComposeResult:
        text = Text("Keys (ctrl+p: search every action; escape / ? closes)\n\n", style="bold")
        for k in _cockpit_keys():
            text.append(f"{_shown_key(k, self.keymap):>8}  ", style="bold")
            text.append(f"{k.label}\n")
        text.append("\nCritical actions open one confirmation: y confirms, n / escape cancel;\n")
        text.append("where a TOTP code is asked, type it and press Enter.\n")
        with VerticalScroll():
            yield Static(text, id="keys")

    def action_close(self) -> None:
        self.dismiss(None)
