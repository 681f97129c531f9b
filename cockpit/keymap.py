"""The cockpit's keys: one table of every binding, and the operator's keymap file over it.

Role: ``KEYS`` lists each binding once (id, default keys, action, footer label, the screen it
belongs to); ``cockpit.app`` and ``cockpit.confirm`` build their Textual ``Binding`` s from it, so a
key the footer shows is a key the keymap can move. A keymap file (TOML, Posting/Harlequin style)
maps binding ids to keys::

    [keys]
    kill_switch = "ctrl+k"          # comma-separated for several keys: "ctrl+k,f12"
    resume_trading = "A"
    confirm.yes = "y"               # the confirmation modal's keys too

Where it comes from: ``--keymap FILE``, else ``$COCKPIT_KEYMAP``, else
``$XDG_CONFIG_HOME/cockpit/keymap.toml`` (``~/.config/...``) when that file exists.

Invariants: a keymap is checked whole before the engine starts; a bad one (unknown id, unknown
key name, an empty value, two actions on one key of the same screen, a key the terminal UI
reserves) is one ``KeymapError`` line naming the file, the id and the value, never a partial
keymap. The kill switch always keeps a key: a keymap can move it, never remove it.
"""

from __future__ import annotations

import os
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.core.envvars import COCKPIT_KEYMAP, HOME, XDG_CONFIG_HOME


class KeymapError(ValueError):
    """A keymap file that cannot be used as written (one line: file, id, value, remedy)."""


@dataclass(frozen=True)
class KeySpec:
    """One binding: ``keys`` are Textual key names, comma-separated."""

    id: str
    keys: str
    action: str
    label: str
    scope: str  # the screen whose bindings it joins: cockpit, confirm, prompt, notice
    priority: bool = False  # checked before focused widgets (works inside inputs and modals)
    show: bool = True  # in the footer (all keys are in the help screen and the palette)


KEYS: tuple[KeySpec, ...] = (
    # the footer (80 columns) shows the keys an operator needs first; every key is in the full
    # help (?) and the command palette (ctrl+p)
    KeySpec("kill_switch", "ctrl+k", "kill_switch", "KILL", "cockpit", priority=True),
    KeySpec("kill_switch.main", "d", "kill_switch", "Kill switch", "cockpit", show=False),
    KeySpec("resume_trading", "a", "resume_trading", "Resume", "cockpit"),
    KeySpec("safe_mode", "s", "safe_mode", "Safe", "cockpit"),
    KeySpec("preflight", "F", "preflight", "Preflight", "cockpit"),
    KeySpec("go_no_go", "g", "go_no_go", "Go/NoGo", "cockpit"),
    KeySpec("go_live", "G", "go_live", "Go live", "cockpit", show=False),
    KeySpec("reconcile", "e", "reconcile", "Reconcile", "cockpit", show=False),
    KeySpec("incident", "n", "incident", "Note", "cockpit", show=False),
    KeySpec("promote", "P", "promote", "Promote", "cockpit", show=False),
    KeySpec("rollback", "R", "rollback", "Rollback", "cockpit", show=False),
    KeySpec("pin", "I", "pin", "Pin model", "cockpit", show=False),
    KeySpec("canary", "C", "canary", "Canary share", "cockpit", show=False),
    KeySpec("risk_reset", "X", "risk_reset", "Risk reset", "cockpit", show=False),
    KeySpec("breaker_reset", "B", "breaker_reset", "Breaker reset", "cockpit", show=False),
    KeySpec("kill_scope", "K", "kill_scope", "Kill scope", "cockpit", show=False),
    KeySpec("lift_scope", "U", "lift_scope", "Lift scope", "cockpit", show=False),
    KeySpec("reduce_only", "r", "reduce_only", "Reduce-only", "cockpit", show=False),
    KeySpec("flatten", "L", "flatten", "Flatten", "cockpit", show=False),
    KeySpec("export", "o", "export", "Export", "cockpit", show=False),
    KeySpec("regulatory", "O", "regulatory", "Regulatory export", "cockpit", show=False),
    KeySpec("backup", "J", "backup", "Backup now", "cockpit", show=False),
    KeySpec("restore_test", "T", "restore_test", "Restore test", "cockpit", show=False),
    KeySpec("db_check", "V", "db_check", "DB check", "cockpit", show=False),
    KeySpec("tab.overview", "1", "show_tab('overview')", "Overview tab", "cockpit", show=False),
    KeySpec("tab.trading", "2", "show_tab('trading')", "Trading tab", "cockpit", show=False),
    KeySpec("tab.feeds", "3", "show_tab('feeds-tab')", "Feeds/SLO tab", "cockpit", show=False),
    KeySpec("tab.model", "4", "show_tab('model-tab')", "Model tab", "cockpit", show=False),
    KeySpec("tab.golive", "5", "show_tab('golive-tab')", "Go-live tab", "cockpit", show=False),
    KeySpec("tab.log", "6", "show_tab('log-tab')", "Log tab", "cockpit", show=False),
    KeySpec("tab.research", "7", "show_tab('research-tab')", "Research tab", "cockpit", show=False),
    KeySpec("help", "question_mark", "help", "Help", "cockpit"),
    KeySpec("quit", "q", "quit_cockpit", "Quit", "cockpit"),
    # priority: they work with the focus in the TOTP field (digits only, so nothing is lost)
    KeySpec("confirm.yes", "y", "confirm", "Confirm", "confirm", priority=True),
    KeySpec("confirm.no", "n", "cancel", "Cancel", "confirm", priority=True),
    KeySpec("confirm.escape", "escape", "cancel", "Cancel", "confirm"),
    KeySpec("prompt.escape", "escape", "cancel", "Cancel", "prompt"),
    KeySpec("notice.ok", "enter", "close", "OK", "notice"),
)
BY_ID: Mapping[str, KeySpec] = {k.id: k for k in KEYS}

# Textual's own keys on every screen (quit, copy, focus): never given to an action of ours
RESERVED = frozenset({"ctrl+q", "ctrl+c", "super+c", "tab", "shift+tab"})
_MODIFIERS = ("ctrl", "alt", "shift", "meta", "super", "hyper")
# Textual's names for keys that are not one character (a test checks each is a Textual key).
# Plain Python, not textual.keys: this is read before the engine boots, and importing Textual
# there would delay the first frame (it is imported while the engine boots).
NAMED_KEYS = frozenset(
    {"escape", "enter", "tab", "space", "backspace", "delete", "insert", "home", "end"}
    | {"pageup", "pagedown", "up", "down", "left", "right"}
    | {f"f{n}" for n in range(1, 25)}
)
_ENV = COCKPIT_KEYMAP


def scope_keys(scope: str) -> list[KeySpec]:
    return [k for k in KEYS if k.scope == scope]


def keymap_path(arg: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """``--keymap``, else ``$COCKPIT_KEYMAP``, else the XDG default when it exists."""
    env = os.environ if env is None else env
    if arg:
        return Path(arg)
    if env.get(_ENV):
        return Path(env[_ENV])
    base = Path(env[XDG_CONFIG_HOME]) if env.get(XDG_CONFIG_HOME) else None
    if base is None and env.get(HOME):
        base = Path(env[HOME]) / ".config"
    default = base / "cockpit" / "keymap.toml" if base is not None else None
    return default if default is not None and default.is_file() else None


def valid_key(key: str) -> bool:
    """A Textual key name: optional modifiers, then one printable character or a named key."""
    *mods, base = key.split("+") if key != "+" else [key]
    if any(m not in _MODIFIERS for m in mods) or len(set(mods)) != len(mods):
        return False
    if len(base) == 1:
        return base.isprintable() and not base.isspace()
    return base in NAMED_KEYS or _unicode_name(base)


def _unicode_name(name: str) -> bool:
    """Textual names a printable character by its Unicode name (``question_mark`` is ?)."""
    try:
        return len(unicodedata.lookup(name.replace("_", " ").upper())) == 1
    except KeyError:
        return False


def _keys(value: object, where: str) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        raise KeymapError(f'{where}: {value!r} is not a key; write a key name such as "ctrl+k"')
    keys = [k.strip() for k in value.split(",")]
    for key in keys:
        if not valid_key(key):
            raise KeymapError(
                f"{where}: {key!r} is not a key name; use names such as a, P, ctrl+k, f5, "
                "escape, question_mark (several: comma-separated)"
            )
        if key in RESERVED:
            raise KeymapError(f"{where}: {key!r} is reserved by the terminal UI; pick another key")
    return keys


def parse_keymap(data: Mapping[str, object], source: str) -> dict[str, str]:
    """Check a decoded keymap (``{"keys": {id: keys}}``) against ``KEYS``: the overrides."""
    unknown = sorted(set(data) - {"keys"})
    if unknown:
        raise KeymapError(f"{source}: unknown table {unknown[0]!r}; a keymap has only [keys]")
    table = data.get("keys", {})
    if not isinstance(table, dict):
        raise KeymapError(f"{source}: keys must be a table ([keys])")
    overrides: dict[str, str] = {}
    for bid, value in _flatten(table):
        where = f"{source}: keys.{bid}"
        if bid not in BY_ID:
            known = ", ".join(k.id for k in KEYS)
            raise KeymapError(f"{where}: unknown binding id; known ids: {known}")
        overrides[bid] = ",".join(_keys(value, where))
    _check_clashes(overrides, source)
    return overrides


def _flatten(table: Mapping[str, object], prefix: str = "") -> list[tuple[str, object]]:
    """``confirm.yes = "y"`` decodes as a nested table in TOML: ids are dotted again here."""
    out: list[tuple[str, object]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _check_clashes(overrides: Mapping[str, str], source: str) -> None:
    for scope in dict.fromkeys(k.scope for k in KEYS):
        owner: dict[str, str] = {}
        for spec in scope_keys(scope):
            for key in overrides.get(spec.id, spec.keys).split(","):
                other = owner.setdefault(key, spec.id)
                if other != spec.id and BY_ID[other].action != spec.action:
                    raise KeymapError(
                        f"{source}: keys.{spec.id}: {key!r} is already the key of {other!r}; "
                        "give one of them another key"
                    )


def load_keymap(path: Path) -> dict[str, str]:
    """Read and check a keymap file; ``KeymapError`` (one line) when it cannot be used."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeymapError(f"{path}: cannot read the keymap ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KeymapError(f"{path}: not valid TOML ({exc}); see cockpit/keymap.py") from None
    return parse_keymap(data, str(path))
