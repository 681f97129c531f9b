"""Every environment variable the program reads that is not a configuration key.

Role: the one registry of those variables — name, group and doc — so ``cockpit env-sample`` can
list them all ("also read") and nothing reads an undocumented one. Configuration keys backed by
a variable (``SAFE_MODE``, ``MAX_ERROR_RATE``, ``API_KEY`` ...) are declared with their field in
``engine.config.structs`` (``_f(..., env=...)``) and are *not* repeated here.

Invariants:
- Code that reads one of these variables imports its name from here (``from
  engine.core.envvars import COCKPIT_DATA_DIR``), never spells it as a string literal:
  ``tests/engine/config/test_envvars.py`` scans ``engine/``, ``cockpit/``, ``venuesim/`` and
  ``widgets/`` (AST) and fails on a variable read that is neither a config field's env nor
  registered here, and on a literal name.
- Lives in ``engine.core`` (the lowest layer) because readers sit in every layer: the audit key
  in ``security``, the crash points in ``core``, the keymap in ``cockpit``. Stdlib only.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple


class EnvVar(NamedTuple):
    name: str
    group: str  # cockpit | systemd | standard | testing
    doc: str


GROUPS = {
    "cockpit": "the program's own",
    "systemd": "set by systemd for a service (deploy/systemd)",
    "standard": "standard (XDG base directories)",
    "testing": "tests and incident reproduction only (refused or ignored in live)",
}

_registry: dict[str, EnvVar] = {}


def _var(name: str, group: str, doc: str) -> str:
    if name in _registry or group not in GROUPS:
        raise ValueError(f"{name}: registered twice or unknown group {group!r}")
    _registry[name] = EnvVar(name, group, doc)
    return name


EXEC_PROFILE = _var(
    "EXEC_PROFILE", "cockpit", "profile name or path to a .toml file (default paper)"
)
COCKPIT_DATA_DIR = _var("COCKPIT_DATA_DIR", "cockpit", "data directory (default ./data)")
COCKPIT_PROFILES_DIR = _var(
    "COCKPIT_PROFILES_DIR",
    "cockpit",
    "the only directory profiles are looked up in (default: ./profiles, "
    "$XDG_CONFIG_HOME/cockpit, /etc/cockpit, then the built-in <repo>/profiles)",
)
COCKPIT_AUDIT_KEY = _var(
    "COCKPIT_AUDIT_KEY",
    "cockpit",
    "audit-chain HMAC key, 64 hex chars (default <data-dir>/secrets/audit.key)",
)
COCKPIT_KEYRING_KEY = _var(
    "COCKPIT_KEYRING_KEY",
    "cockpit",
    "Fernet key(s) of the encrypted keyring, newest first, comma-separated "
    "(else the systemd credential cockpit-keyring-key)",
)
COCKPIT_KEYMAP = _var(
    "COCKPIT_KEYMAP",
    "cockpit",
    "TOML keymap file (default $XDG_CONFIG_HOME/cockpit/keymap.toml when it exists)",
)
COCKPIT_GC_POLICY = _var(
    "COCKPIT_GC_POLICY",
    "cockpit",
    "the cockpit's garbage-collector policy: on | paced | off (default paced; the others are "
    "for the benchmark's A/B)",
)
LIVE_API_KEY = _var(
    "LIVE_API_KEY",
    "cockpit",
    "the live venue's API key, read by testnet runs only to check their keys differ "
    "(never used to trade)",
)
TESTNET_API_KEY = _var(
    "TESTNET_API_KEY",
    "cockpit",
    "the testnet API key, read by the live preflight only to check the keys differ",
)
TELEGRAM_API_BASE_URL = _var(
    "TELEGRAM_API_BASE_URL",
    "cockpit",
    "Telegram Bot API base URL of the alert notifier and `cockpit notify test` (default "
    "https://api.telegram.org/bot; for tests and self-hosted Bot API servers)",
)
NOTIFY_SOCKET = _var("NOTIFY_SOCKET", "systemd", "sd_notify socket: READY=1, STOPPING=1, status")
WATCHDOG_USEC = _var("WATCHDOG_USEC", "systemd", "watchdog interval; pinged every half of it")
WATCHDOG_PID = _var("WATCHDOG_PID", "systemd", "the process the watchdog expects pings from")
CREDENTIALS_DIRECTORY = _var(
    "CREDENTIALS_DIRECTORY", "systemd", "LoadCredential= directory (the keyring key)"
)
XDG_CONFIG_HOME = _var(
    "XDG_CONFIG_HOME", "standard", "per-user config directory (default ~/.config)"
)
HOME = _var("HOME", "standard", "home directory (for ~/.config when XDG_CONFIG_HOME is unset)")
COCKPIT_CRASH_AT = _var(
    "COCKPIT_CRASH_AT",
    "testing",
    "crash point POINT[:N]: SIGKILL the process the Nth time it passes POINT",
)

ENV_VARS = MappingProxyType(_registry)
