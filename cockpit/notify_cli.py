"""``cockpit notify test``: send one Telegram message with the configured bot and chat.

Role: proves the alert channel end to end before an incident needs it. The chat id comes from the
loaded configuration (``TELEGRAM_CHAT_ID`` / ``alerts.telegram_chat_id``); the bot token from the
data dir's encrypted keystore (service "cockpit", user ``TELEGRAM_BOT_TOKEN``), else from the
configuration (env ``TELEGRAM_BOT_TOKEN``); the Bot API base URL from env
``TELEGRAM_API_BASE_URL`` (default Telegram's own), so it can be pointed at the loopback
``venuesim.botapi`` server.

Invariants: the token is never printed, in any mode or error (``engine.obs.notify`` redacts it
from every reason and log line); one attempt, no retries (a 429 is reported, not waited out).

Exit codes: 0 sent; 1 send failed (token refused, rate limited, chat refused, unreachable: the
reason is printed); 2 not configured (no token or no chat id, an unusable keystore, a bad profile):
one line naming what is missing and how to set it. ``--json`` prints ``{"ok", "reason"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from engine.config.loader import Config, ConfigError, load_config, resolve_data_dir
from engine.core.envvars import TELEGRAM_API_BASE_URL
from engine.obs.notify import send_test_message
from engine.security.keystore import KeystoreError, keystore_path, open_keystore

EXIT_SENT, EXIT_FAILED, EXIT_NOT_CONFIGURED = 0, 1, 2
TOKEN_NAME = "TELEGRAM_BOT_TOKEN"  # noqa: S105 - a variable name (and keystore user), not a secret
CHAT_NAME = "TELEGRAM_CHAT_ID"
BASE_URL_ENV = TELEGRAM_API_BASE_URL
_HOW_TOKEN = f"store it with `cockpit secrets set {TOKEN_NAME}` or export {TOKEN_NAME}"
_HOW_CHAT = f"export {CHAT_NAME}=<chat id> or set alerts.telegram_chat_id in the profile"


def add_parsers(sub: Any, common: Any) -> None:
    n = sub.add_parser("notify", help="Telegram notifications")
    nsub = n.add_subparsers(dest="notify_cmd", required=True)
    t = nsub.add_parser(
        "test", help="send a test message; exit 0 sent, 1 send failed, 2 not configured"
    )
    common(t)
    t.add_argument("--json", action="store_true", help='print {"ok": ..., "reason": ...}')
    t.add_argument("--text", help="message text (default: a test line naming profile and host)")


def telegram_token(data_dir: Path, cfg: Config) -> str:
    """The bot token: the keystore's entry first, else the configuration's (env); "" if none.

    A keystore that exists but cannot be opened (key missing or wrong) raises ``KeystoreError``
    unless the configuration has a token to fall back on.
    """
    fallback = cfg.alerts.telegram_bot_token
    if not keystore_path(data_dir).exists():
        return fallback
    try:
        stored = open_keystore(data_dir).get_password("cockpit", TOKEN_NAME)
    except KeystoreError:
        if fallback:
            return fallback
        raise
    return stored or fallback


def _emit(args: argparse.Namespace, ok: bool, reason: str) -> None:
    if args.json:
        print(json.dumps({"ok": ok, "reason": reason}))
    elif ok:
        print(f"telegram: {reason}")
    else:
        print(f"cockpit: telegram test: {reason}", file=sys.stderr)


def _missing(token: str, chat_id: str) -> str:
    parts = []
    if not token:
        parts.append(f"{TOKEN_NAME} is not set ({_HOW_TOKEN})")
    if not chat_id:
        parts.append(f"{CHAT_NAME} is not set ({_HOW_CHAT})")
    return "; ".join(parts)


def _default_text(cfg: Config) -> str:
    utc = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return f"cockpit test notification: profile {cfg.name}, host {socket.gethostname()}, {utc}"


def run(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    try:
        cfg = load_config(args.profile)
        token = telegram_token(data_dir, cfg)
    except (ConfigError, KeystoreError) as exc:
        _emit(args, False, str(exc))
        return EXIT_NOT_CONFIGURED
    chat_id = cfg.alerts.telegram_chat_id.strip()
    missing = _missing(token, chat_id)
    if missing:
        _emit(args, False, missing)
        return EXIT_NOT_CONFIGURED
    base_url = os.environ.get(BASE_URL_ENV) or None
    text = args.text if args.text is not None else _default_text(cfg)
    ok, reason = asyncio.run(send_test_message(token, chat_id, base_url, text))
    _emit(args, ok, reason)
    return EXIT_SENT if ok else EXIT_FAILED
