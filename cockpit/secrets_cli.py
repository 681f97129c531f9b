"""``cockpit secrets set|list|delete|rotate``: the project's encrypted keyring from a shell.

Role: secrets (``API_KEY``, ``API_SECRET``, ``TELEGRAM_BOT_TOKEN``, ...) go into
``<data-dir>/secrets/keyring.enc`` under their variable's name, so no env file, unit file or shell
history has to hold them. Values never come from the command line (``ps`` and shell history would
keep them): a hidden prompt on a terminal, else one line on stdin. ``list`` prints names only;
nothing here ever prints a value.

``rotate`` re-encrypts the file under a fresh key. The new key is written first, to the file
``--key-out`` names (0600, never over an existing file), so a crash can never leave the secrets
under a key nobody has. With the engine running it is told the new key over its control socket
before the switch (it then reads with old and new, MultiFernet) and to drop the old one after,
so the engine keeps working; its next start needs ``COCKPIT_KEYRING_KEY`` (or the systemd
credential) set to the new key.

Exit codes: 0 done; 1 nothing to delete; 2 bad input or keystore unusable (key missing / wrong,
loose permissions); 3 the engine refused the key switch.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from engine.config.loader import resolve_data_dir
from engine.core.fsutil import write_all
from engine.runtime.control import NotRunning, call

COMMANDS = ("secrets",)


def add_parsers(sub: Any, common: Any) -> None:
    s = sub.add_parser("secrets", help="encrypted keyring: set, list, delete, rotate")
    ssub = s.add_subparsers(dest="secrets_cmd", required=True)
    st = ssub.add_parser("set", help="store a secret (value from a hidden prompt or stdin)")
    common(st)
    st.add_argument("name", help="the variable's name, e.g. API_KEY or TELEGRAM_BOT_TOKEN")
    ls = ssub.add_parser("list", help="names of the stored secrets (never values)")
    common(ls)
    ls.add_argument("--json", action="store_true")
    de = ssub.add_parser("delete", help="remove a stored secret")
    common(de)
    de.add_argument("name")
    ro = ssub.add_parser("rotate", help="re-encrypt the keyring under a new key")
    common(ro)
    ro.add_argument(
        "--key-out", required=True, help="new file to write the new key to (0600, must not exist)"
    )


def _err(msg: str) -> None:
    print(f"cockpit: {msg}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from engine.runtime.secrets import check_name
    from engine.security.keystore import KeystoreError

    data_dir = resolve_data_dir(args.data_dir)
    try:
        if getattr(args, "name", None) is not None:
            check_name(args.name)
        if args.secrets_cmd == "list":
            return _list(data_dir, args.json)
        if args.secrets_cmd == "set":
            return _set(data_dir, args.name)
        if args.secrets_cmd == "delete":
            return _delete(data_dir, args.name)
        return _rotate(data_dir, Path(args.key_out).absolute())
    except (ValueError, KeystoreError) as exc:
        _err(str(exc))
        return 2


def _list(data_dir: Path, as_json: bool) -> int:
    from engine.runtime.secrets import stored_names

    names = stored_names(data_dir)
    if as_json:
        print(json.dumps({"names": names}))
    else:
        print("\n".join(names) if names else "no secrets stored")
    return 0


def _read_value(name: str) -> str:
    if sys.stdin.isatty():
        value = getpass.getpass(f"{name} (input hidden): ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value.strip():
        raise ValueError(f"{name}: empty value; nothing stored")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{name}: the value holds control characters; nothing stored")
    return value


def _set(data_dir: Path, name: str) -> int:
    from engine.runtime.secrets import SERVICE
    from engine.security.keystore import open_keystore

    kr = open_keystore(data_dir)  # a missing or wrong key fails before the prompt
    value = _read_value(name)
    kr.set_password(SERVICE, name, value)
    print(f"stored {name} in {kr.path} (a running engine reads it at its next start)")
    return 0


def _delete(data_dir: Path, name: str) -> int:
    from keyring.errors import PasswordDeleteError

    from engine.runtime.secrets import SERVICE
    from engine.security.keystore import open_keystore

    kr = open_keystore(data_dir)
    try:
        kr.delete_password(SERVICE, name)
    except PasswordDeleteError:
        _err(f"{name}: not stored in {kr.path}")
        return 1
    print(f"deleted {name} from {kr.path}")
    return 0


def _write_key(path: Path, key: str) -> None:
    """The new key, durably, before anything is encrypted with it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, (key + "\n").encode("ascii"))  # all of it: a cut key opens nothing
        os.fsync(fd)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)  # ours (O_EXCL), and useless: nothing was rotated
        raise
    os.close(fd)


def _rotate(data_dir: Path, key_out: Path) -> int:
    from engine.security.keystore import generate_key, key_texts, open_keystore, rotate

    kr = open_keystore(data_dir)  # the current key must open the file before anything changes
    if key_out.exists() or key_out.is_symlink():
        raise ValueError(f"--key-out {key_out}: file exists; choose a new file")
    new = generate_key()
    try:
        _write_key(key_out, new)
    except OSError as exc:
        raise ValueError(f"--key-out {key_out}: {exc.strerror}; nothing rotated") from None
    running = _engine_keys(data_dir, "add", [new, *key_texts()])
    if running is False:
        return 3
    rotate(kr, new)
    if running:
        _engine_keys(data_dir, "drop", [new])
    print(
        f"keyring re-encrypted under a new key, written to {key_out}. Set COCKPIT_KEYRING_KEY "
        "to it (or replace the systemd credential file) before the next start: the old key no "
        f"longer opens {kr.path}." + (" The running engine already uses it." if running else "")
    )
    return 0


def _engine_keys(data_dir: Path, op: str, keys: list[str]) -> bool | None:
    """Tell a running engine which keys to use: None (no engine), True (done), False (refused)."""
    try:
        call(data_dir, "keyring", {"op": op, "keys": keys})
    except NotRunning:
        return None
    except (RuntimeError, ConnectionError) as exc:
        _err(f"the running engine refused the key switch: {exc}; nothing rotated")
        return False
    return True
