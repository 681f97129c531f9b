"""Secrets from the project's encrypted keyring, applied to the configuration at start.

Role: every secret the program uses (exchange API key and secret, the Telegram bot token, the
TOTP seed) is stored in ``<data-dir>/secrets/keyring.enc`` under the service ``cockpit`` and the
name of its environment variable (``API_KEY``, ``API_SECRET``, ``TELEGRAM_BOT_TOKEN``...).
``apply_keyring`` gives the engine a configuration whose secret fields come from there; the
environment is only a fallback (a warning says so), so a server's env, unit file or shell history
need not hold them.

Invariants: a value never appears in a log line, an error or a return value meant for display;
``stored_names`` returns names only. No keyring file means nothing stored (no key needed).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

from engine.config.loader import Config, iter_fields
from engine.security.keystore import keystore_path, open_keystore

SERVICE = "cockpit"
NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
log = logging.getLogger("engine.runtime.secrets")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(
            f"secret name {name!r}: use the variable's name, A-Z 0-9 _ (e.g. API_KEY, "
            "TELEGRAM_BOT_TOKEN)"
        )
    return name


def stored_names(data_dir: Path) -> list[str]:
    if not keystore_path(data_dir).exists():
        return []
    return open_keystore(data_dir).names(SERVICE)


def secret_env_names() -> list[str]:
    """The env variables of the configuration's secret fields (what ``apply_keyring`` fills)."""
    return [s.env for s in iter_fields() if s.secret and s.env]


def apply_keyring(cfg: Config, data_dir: Path) -> Config:
    """``cfg`` with every secret field the keyring holds taken from the keyring."""
    if not keystore_path(data_dir).exists():
        return cfg
    kr = open_keystore(data_dir)
    out = cfg
    for spec in iter_fields():
        if not (spec.secret and spec.env and spec.section):
            continue
        value = kr.get_password(SERVICE, spec.env)
        if value:
            section = dataclasses.replace(getattr(out, spec.section), **{spec.name: value})
            out = dataclasses.replace(out, **{spec.section: section})
        elif spec.get(cfg):
            log.warning("%s comes from the environment, not the keyring", spec.env)
    return out
