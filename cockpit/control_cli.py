"""Operator commands that change a running engine's state, sent over its control socket.

Role: ``cockpit ack-orphans SYMBOL`` is the shell's way to do what the TUI's orphan panel does.
The engine runs it through ``EngineAPI`` like any TUI command: it refuses it for an observer
engine, checks TOTP when 2FA is enrolled and audits it under the caller the kernel reports
(``unix:<user>(uid …,pid …)``). The CLI only carries the code: ``--totp CODE``, or a prompt on a
terminal when the engine asks for one.

Exit codes: 0 done; 1 the engine refused (wrong code, observer, nothing to acknowledge);
2 bad input; 3 no engine runs on this data dir (these commands need one).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from engine.config.loader import resolve_data_dir
from engine.runtime.control import NotRunning, call

COMMANDS = ("ack-orphans",)


def _err(msg: str) -> None:
    print(f"cockpit: {msg}", file=sys.stderr)


def add_parsers(sub: Any, common: Any) -> None:
    a = sub.add_parser(
        "ack-orphans", help="acknowledge foreign venue orders on SYMBOL (unblock it)"
    )
    common(a)
    a.add_argument("symbol", help="the blocked symbol, e.g. BTC/USDT")
    a.add_argument("--reason", default="", help="why (kept in the audit trail)")
    a.add_argument("--totp", help="6-digit TOTP code (prompted on a terminal when needed)")


def _needs_code(message: str) -> bool:
    return "TOTP code" in message and "must be" in message


def run(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    request = {"symbol": args.symbol, "reason": args.reason}
    code = args.totp
    for _ in range(2):
        try:
            result = call(data_dir, "ack_orphans", {**request, "totp": code})
        except NotRunning:
            _err(f"no engine runs on {data_dir} (its control socket does not answer)")
            return 3
        except RuntimeError as exc:
            message = str(exc)
            if code is None and sys.stdin.isatty() and _needs_code(message):
                code = getpass.getpass("TOTP code: ")  # not echoed, never in shell history
                continue
            _err(message)
            return 1
        print(result["message"])
        return 0
    return 1
