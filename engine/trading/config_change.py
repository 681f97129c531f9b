"""``cockpit config set`` reaching a running engine: record the change, apply a hot key.

Role: :func:`run` carries out the ``RecordConfigChange`` command once ``EngineAPI`` has checked
the role (and the TOTP code when it applies a value): re-checks the request, applies a hot key
when asked (``hot_config.apply``, then ``on_applied(cfg)`` so the strategy and the runtime
follow), audits ``config_changed`` and returns the incident-journal note, which the caller
writes through ``Commands.record_incident``.

Invariants:
- The request is checked again here, never trusted: the key must exist and not be secret; to be
  applied it must be hot, the file must be the engine's own profile and no env var or option may
  override it; the value is parsed and the whole Config cross-checked (a Config that exists is
  valid). A failure refuses the whole command with one line: nothing recorded, nothing applied.
- The audit payload and the journal note are built here for both paths: the stopped-engine
  recorder (``engine.runtime.config_record``) uses :func:`audit_payload` and
  :func:`journal_note` too, so the records read the same either way.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config.edit import find_key, hot_blocker
from engine.config.loader import ConfigError, parse_value, with_value
from engine.config.profiles import profile_file
from engine.core.events import CommandResult, RecordConfigChange
from engine.trading import hot_config

if TYPE_CHECKING:
    from engine.trading.engine import Engine

MAX_TEXT = 4096  # key, values, reason, paths: one line each, never a payload dump
APPLIED = "applied to the running engine"


def audit_payload(cmd: RecordConfigChange, outcome: str) -> dict[str, Any]:
    return {
        "key": cmd.key,
        "old": cmd.old,
        "new": cmd.new,
        "reason": cmd.reason,
        "profile": cmd.profile,
        "backup": cmd.backup,
        "applied": outcome == APPLIED,
        "outcome": outcome,
    }


def journal_note(cmd: RecordConfigChange, outcome: str) -> str:
    return f"CONFIG {cmd.key}: {cmd.old} -> {cmd.new} ({outcome}): {cmd.reason}"


def _refused(message: str) -> tuple[CommandResult, str]:
    return CommandResult(ok=False, message=message), ""


def run(
    e: Engine, cmd: RecordConfigChange, on_applied: Callable[[Any], None]
) -> tuple[CommandResult, str]:
    """The command's result and the journal note to write ("" when refused)."""
    texts = (cmd.key, cmd.old, cmd.new, cmd.reason, cmd.profile, cmd.backup)
    if any(len(t) > MAX_TEXT or "\n" in t for t in texts):
        return _refused("config change refused: a field is over 4096 characters or multi-line")
    if not cmd.reason.strip():
        return _refused("config change refused: a reason is required (it is kept in the journal)")
    try:
        spec = find_key(cmd.key)
    except ConfigError as exc:
        return _refused(str(exc))
    blocker = hot_blocker(spec, Path(cmd.profile), profile_file(e.cfg.sources), e.cfg.sources)
    if cmd.apply:
        if blocker is not None:
            return _refused(f"{cmd.key}: not applied: {blocker}")
        try:
            cfg = _changed(e.cfg, cmd.key, cmd.new)
        except ConfigError as exc:
            return _refused(f"{cmd.key}: not applied: {exc}")
        hot_config.apply(e, cfg)
        on_applied(cfg)
        outcome = APPLIED
    else:
        outcome = f"saved; {blocker or 'not applied to the running engine'}"
    e.recorder.audit(cmd.actor, "config_changed", audit_payload(cmd, outcome))
    message = f"{cmd.key}: {cmd.old} -> {cmd.new}: {outcome}"
    return CommandResult(ok=True, message=message), journal_note(cmd, outcome)


def _changed(cfg: Any, key: str, new: str) -> Any:
    """``cfg`` with ``key`` = the TOML literal ``new``, checked as a profile value is."""
    try:
        value = tomllib.loads(f"v = {new}")["v"]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not a TOML value: {exc}", key=key) from None
    value = parse_value(key, value, "config change")
    return with_value(cfg, key, value, cfg.sources.get("name", "default"))
