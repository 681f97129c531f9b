"""The cockpit's view of the engine: a typed port, so the app never reaches into the runtime.

``EngineHost`` (the engine on its own thread) implements it; ``cockpit.testkit.FixedHost`` (a
canned snapshot, for screen tests and the widgets benchmark) too. Commands and queries cross as
futures resolved on the engine thread; state crosses as the immutable snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Protocol

from engine.core.events import Command, CommandResult
from engine.snapshot import EngineSnapshot


class EnginePort(Protocol):
    """What the cockpit app may ask of the engine."""

    @property
    def snapshot(self) -> EngineSnapshot | None:
        """The latest published snapshot (None before the first one)."""

    @property
    def alive(self) -> bool:
        """The engine thread runs and has not failed."""

    @property
    def error(self) -> str | None:
        """Why the engine stopped, in one line, if it did."""

    def execute(self, cmd: Command, totp_code: str | None = None) -> Future[CommandResult]:
        """Send a command through the engine's API (role, TOTP, audit)."""

    def needs_totp(self, cmd: Command) -> bool:
        """Whether the API will ask for a TOTP code for this command."""

    def query(self, name: str, args: Mapping[str, Any] | None = None) -> Future[Any]:
        """A read-only answer from the engine's API (reconcile, export, status, ...)."""

    def stop(self, reason: str = "cockpit quit") -> None:
        """Stop the engine cleanly (the app calls it on SIGHUP)."""
