"""``cockpit config set|history`` and ``config show --running``: change one profile key with a
record of who, when, what and why (runbook §9: backup, one minimal change, recorded with its
reason), list those records, and show what a running engine actually uses.

``config set KEY VALUE --reason TEXT``: the key must exist (else the closest is named), must not
be secret (secrets go to ``cockpit secrets set``) and the value is checked with the loader's
own rules; then the whole new profile is loaded as a start would load it. The file: ``--profile``
(a name is looked up as a start looks it up), else ``EXEC_PROFILE``, else the running engine's
own profile, else ``paper``. Only then: a backup of
the file (``<profile dir>/.history/``), the new file atomically in place, and the record — with
an engine running, through its control socket as the ``RecordConfigChange`` command (role
checked, audited under the kernel-reported caller; a hot key of the profile it runs is applied
at once, which counts as a critical action: confirmation, TOTP when enrolled); with none, under
the data-dir lock, straight into its audit chain and incident journal. Either way one line is
appended to ``<data-dir>/config_history.jsonl``. A change the engine refuses (an observer, a
wrong code) or that cannot be recorded puts the old file back.

Exit codes: 0 done (or nothing to change); 1 the engine refused, or did not answer (the file
then holds the new value: see the history and the journal); 2 bad input (key, value, reason,
profile, confirmation or code missing off a terminal): the file is untouched; 3 an engine
started or stopped meanwhile (retry); 4 storage (the data dir's DB or a file cannot be written).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import pwd
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.control_cli import shown
from engine.config import profile_write
from engine.config.edit import edit_text, file_value, find_key, hot_blocker, literal, parse_new
from engine.config.loader import ConfigError, FieldSpec, load_config, parse_value, resolve_data_dir
from engine.config.profiles import display, resolve_profile
from engine.core.envvars import EXEC_PROFILE
from engine.core.events import RecordConfigChange
from engine.runtime.config_record import (
    append_history,
    check_offline,
    read_history,
    record_offline,
)
from engine.runtime.control import NotRunning, call
from engine.store.lockfile import AlreadyRunning, acquire
from engine.store.writer import StoreError
from engine.trading.config_change import APPLIED

COMMANDS = ("set", "history")
OFFLINE = "saved; the engine is not running: it takes effect at the next start"


def add_parsers(csub: Any, show: argparse.ArgumentParser, common: Any) -> None:
    show.add_argument(
        "--running",
        action="store_true",
        help="the running engine's effective configuration (hot changes included)",
    )
    s = csub.add_parser("set", help="change one profile key, with a backup and a record")
    common(s)
    s.add_argument("key", help="dotted key, e.g. risk.max_daily_drawdown_pct (or symbols)")
    s.add_argument("value", help="new value, as in an env var (2.5, true, BTC/USDT,ETH/USDT)")
    s.add_argument("--reason", required=True, help="why (kept in the audit trail and history)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--yes", action="store_true", help="do not ask to confirm a hot apply")
    s.add_argument("--totp", help="6-digit TOTP code (prompted on a terminal when needed)")
    h = csub.add_parser("history", help="the recorded configuration changes")
    h.add_argument("--data-dir", help="data directory (default ./data or $COCKPIT_DATA_DIR)")
    h.add_argument("--key", help="only this key")
    h.add_argument("--json", action="store_true")


def _err(msg: str) -> None:
    print(f"cockpit: {shown(msg)}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    if args.config_cmd == "history":
        return _history(data_dir, args.key, args.json)
    if args.config_cmd == "show":  # --running
        try:
            sys.stdout.write(call(data_dir, "config")["text"])
        except NotRunning:
            _err(f"engine not running on {data_dir}: `cockpit config show` shows the profile")
            return 3
        return 0
    try:
        info: dict[str, Any] | None = call(data_dir, "config")
    except NotRunning:
        info = None
    except RuntimeError as exc:  # e.g. an engine of an older release: no `config` request
        _err(f"the running engine refused: {exc}; nothing was changed")
        return 1
    try:
        change = _prepare(args, info)
    except ConfigError as exc:
        _err(str(exc))
        return 2
    if change is None:
        return 0
    try:
        if info is not None:
            return _set_online(args, data_dir, change, info)
    except NotRunning:  # it stopped meanwhile (before anything was written)
        pass
    except RuntimeError as exc:  # the policy request refused (before anything was written)
        _err(f"the running engine refused: {exc}; nothing was changed")
        return 1
    return _set_offline(args, data_dir, change)


@dataclass(frozen=True)
class _Change:
    spec: FieldSpec
    path: Path
    old_bytes: bytes
    text: str  # the new file
    old: str  # TOML literals, as recorded
    new: str
    reason: str
    comments_kept: bool

    def command(self, backup: Path | None, apply: bool) -> RecordConfigChange:
        return RecordConfigChange(
            key=self.spec.key,
            old=self.old,
            new=self.new,
            reason=self.reason,
            profile=str(self.path.absolute()),
            backup=str(backup or ""),
            actor=_actor(),
            apply=apply,
        )


def _profile(args: argparse.Namespace, info: dict[str, Any] | None) -> Path:
    """``--profile``, else ``EXEC_PROFILE``, else the running engine's own file, else paper."""
    named = args.profile or os.environ.get(EXEC_PROFILE)
    if not named and info is not None and info.get("file"):
        return Path(info["file"])
    return resolve_profile(named or "paper", os.environ)


def _prepare(args: argparse.Namespace, info: dict[str, Any] | None) -> _Change | None:
    """Every check that needs no write (ConfigError: exit 2); None when nothing changes."""
    reason = " ".join(args.reason.split())
    if not reason:
        raise ConfigError("a reason is required (kept in the audit trail)", origin="--reason")
    spec = find_key(args.key)
    value = parse_new(spec, args.value)
    path = _profile(args, info)
    try:
        old_bytes = path.read_bytes()
        text = old_bytes.decode("utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot edit: {exc}", origin=display(path)) from None
    current = file_value(data, spec)
    if current is not None and _same_value(spec, current, value):
        print(shown(f"{spec.key} is already {literal(value)} in {path}: nothing changed"))
        return None
    default = "" if spec.default is None else literal(spec.default)
    old = literal(current) if current is not None else f"(unset; default {default})"
    new_text, kept = edit_text(text, spec, value)
    return _Change(spec, path, old_bytes, new_text, old, literal(value), reason, kept)


def _same_value(spec: FieldSpec, current: Any, value: Any) -> bool:
    try:
        return bool(parse_value(spec.key, current, "profile") == value)
    except ConfigError:
        return False  # the file holds a bad value: replacing it is a change


def _stage_valid(change: _Change) -> Path:
    """The new file beside the old one, loaded exactly as a start loads a profile."""
    tmp = profile_write.stage(change.path, change.text)
    try:
        load_config(str(tmp), env={})
    except ConfigError as exc:
        profile_write.discard(tmp)
        raise ConfigError(exc.problem, origin=display(change.path), key=exc.key) from None
    return tmp


def _actor() -> str:
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return f"unix:{user}(uid {uid},pid {os.getpid()})"


def _set_offline(args: argparse.Namespace, data_dir: Path, change: _Change) -> int:
    """No engine: hold the data-dir lock, write, record in the DB ourselves."""
    try:
        lock = acquire(data_dir)
    except AlreadyRunning as exc:
        _err(f"{exc}: an engine is starting; retry once it answers (nothing was changed)")
        return 3
    try:
        try:
            ready = check_offline(data_dir)
            tmp = _stage_valid(change)
        except StoreError as exc:
            _err(str(exc))
            return 4
        except ConfigError as exc:
            _err(str(exc))
            return 2
        backup = profile_write.backup(change.path, change.old_bytes)
        profile_write.commit(tmp, change.path)
        cmd = change.command(backup, apply=False)
        recorded = f"history only: no database in {data_dir} yet"
        if ready is not None:
            try:
                record_offline(data_dir, cmd, OFFLINE, ready)
            except Exception as exc:  # noqa: BLE001 - any failure: the old file goes back
                profile_write.restore(change.path, change.old_bytes, backup)
                _err(f"{data_dir}: cannot record the change ({exc}); {change.path} left unchanged")
                return 4
            recorded = "audit chain and incident journal (engine stopped)"
    finally:
        lock.release()
    return _finish(args, data_dir, change, cmd, OFFLINE, recorded)


def _set_online(
    args: argparse.Namespace, data_dir: Path, change: _Change, info: dict[str, Any]
) -> int:
    """An engine runs: it records the change (and applies a hot key of its own profile)."""
    running = Path(info["file"]) if info.get("file") else None
    blocker = hot_blocker(change.spec, change.path, running, info.get("sources") or {})
    cmd = change.command(None, apply=blocker is None)
    req = {f: getattr(cmd, f) for f in ("key", "old", "new", "reason", "profile", "apply")}
    policy = call(data_dir, "policy", {"command": "config_change", "args": req})
    if policy["role"] == "observer":  # refused and audited by the engine; the file untouched
        return _refused(data_dir, req)
    if not _confirmed(args, policy, change, cmd):
        return 2
    if policy["needs_totp"]:
        code = _ask(args.totp, "TOTP code: ")
        if code is None:
            return 2
        req["totp"] = code
    try:
        tmp = _stage_valid(change)
    except ConfigError as exc:
        _err(str(exc))
        return 2
    backup = profile_write.backup(change.path, change.old_bytes)
    profile_write.commit(tmp, change.path)
    cmd = change.command(backup, cmd.apply)
    req["backup"] = cmd.backup
    try:
        call(data_dir, "config_change", req)
    except (RuntimeError, NotRunning) as exc:  # refused, or never reached it: nothing recorded
        profile_write.restore(change.path, change.old_bytes, backup)
        gone = isinstance(exc, NotRunning)
        why = "the engine stopped meanwhile; retry" if gone else str(exc)
        _err(f"{why}; {change.path} left unchanged")
        return 3 if gone else 1
    except OSError as exc:  # sent, but no answer: it may have been recorded
        _err(
            f"the engine did not answer ({exc}); {change.path} holds the new value: check "
            "`cockpit config history` and the incident journal"
        )
        _finish(
            args, data_dir, change, cmd, f"unknown: {exc}", "unknown: the engine did not answer"
        )
        return 1
    outcome = APPLIED if cmd.apply else f"saved; {blocker}"
    return _finish(args, data_dir, change, cmd, outcome, "audit chain and incident journal")


def _refused(data_dir: Path, req: dict[str, Any]) -> int:
    try:
        call(data_dir, "config_change", req)
    except RuntimeError as exc:
        _err(f"{exc}; the profile was not changed")
        return 1
    _err("the engine accepted a change from an observer: report this")  # pragma: no cover
    return 1


def _confirmed(
    args: argparse.Namespace, policy: dict[str, Any], change: _Change, cmd: RecordConfigChange
) -> bool:
    if not policy["critical"] or args.yes:
        return True
    effect = f"set {cmd.key} = {cmd.new} in the running engine (was {cmd.old})"
    if not sys.stdin.isatty():
        _err(f"{effect}: needs confirmation; add --yes (not a terminal)")
        return False
    if input(f"{effect}? [y/N] ").strip().lower() in ("y", "yes"):
        return True
    print(f"not confirmed: {change.path} not changed")
    return False


def _ask(given: str | None, prompt: str) -> str | None:
    if given is not None:
        return given
    if not sys.stdin.isatty():
        _err(f"{prompt.strip().rstrip(':')} needed: pass it with --totp (not a terminal)")
        return None
    return getpass.getpass(prompt)


def _finish(
    args: argparse.Namespace,
    data_dir: Path,
    change: _Change,
    cmd: RecordConfigChange,
    outcome: str,
    recorded: str,
) -> int:
    """The history line, then what the operator reads."""
    uid = os.getuid()
    now = time.time()
    entry = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "ts_us": int(now * 1e6),
        "actor": cmd.actor,
        "uid": uid,
        "key": cmd.key,
        "old": cmd.old,
        "new": cmd.new,
        "reason": cmd.reason,
        "profile": cmd.profile,
        "backup": cmd.backup,
        "outcome": outcome,
        "recorded": recorded,
        "comments_kept": change.comments_kept,
    }
    append_history(data_dir, entry)
    if args.json:
        print(json.dumps(entry, sort_keys=True))
        return 0
    print(shown(f"{cmd.key}: {cmd.old} -> {cmd.new} in {cmd.profile} (backup {cmd.backup})"))
    print(shown(outcome))
    if recorded.startswith("history only"):
        print(shown(f"note: {recorded}"))
    if not change.comments_kept:
        print("note: the file was rewritten without its comments (the backup keeps them)")
    return 0


def _history(data_dir: Path, key: str | None, as_json: bool) -> int:
    entries = [e for e in read_history(data_dir) if key is None or e.get("key") == key]
    if as_json:
        print(json.dumps(entries, sort_keys=True))
        return 0
    if not entries:
        print(f"no configuration change recorded in {data_dir}" + (f" for {key}" if key else ""))
        return 0
    for e in entries:
        g = e.get
        print(
            shown(
                f"{g('ts')}  {g('actor')}  {g('key')}: {g('old')} -> {g('new')}  "
                f"[{g('outcome')}]  reason: {g('reason')}  profile: {g('profile')}  "
                f"backup: {g('backup') or '-'}"
            )
        )
    return 0
