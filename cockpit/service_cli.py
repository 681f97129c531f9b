"""``cockpit install-service``: render the systemd units that run the headless engine as a service.

Role: turns a handful of flags into the five unit files of one engine instance (engine service,
report and backup oneshots with their timers; see ``engine.runtime.service_units``), printed with
``--print`` or written with ``--out-dir``, plus the root commands that finish the installation.
It never touches systemd itself: installing a service that trades is an administrator's act.

Invariants:
- Every input is validated before anything is printed or written; a bad one is exit 2 with one
  line on stderr naming the value and the remedy, never a traceback.
- With ``--print`` stdout carries only the units (``# ---- <file> ----`` before each), so it can
  be piped; the follow-up steps then go to stderr.
- ``--out-dir`` files are written atomically (temp file, fsync, rename) with mode 0644 whatever
  the umask: systemd and ``systemctl link`` must be able to read them; they hold no secret.

Exit codes: 0 ok, 2 bad input (or an output directory that cannot be written).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.core.fsutil import write_all
from engine.runtime import service_units as su

COMMANDS = ("install-service",)
EXIT_OK, EXIT_BAD_INPUT = 0, 2

# `--exec /usr/bin/python3` means "that interpreter, -m cockpit".
_PYTHON = re.compile(r"python[0-9.]*")


def add_parsers(sub: Any, common: Any) -> None:
    """Add ``install-service``. ``common`` (the usual --profile/--data-dir) is not applied: here
    both describe the service to be, with service defaults, not the caller's own data dir."""
    del common
    p = sub.add_parser(
        "install-service",
        help="render systemd units running the headless engine (--print or --out-dir)",
    )
    p.add_argument("--print", dest="print_units", action="store_true", help="units to stdout")
    p.add_argument("--out-dir", help="write the unit files (0644) into this directory")
    p.add_argument("--name", default=su.DEFAULT_NAME, help="instance name (default: main)")
    p.add_argument("--user", default=su.DEFAULT_USER, help="service user (default: cockpit)")
    p.add_argument("--group", help="service group (default: the user's name)")
    p.add_argument("--data-dir", help="data dir (default: /var/lib/cockpit/NAME)")
    p.add_argument("--profile", default=su.DEFAULT_PROFILE, help="profile (default: paper)")
    p.add_argument(
        "--exec",
        dest="exec_path",
        help="absolute path of the cockpit script, or of a Python interpreter (run as PATH -m "
        "cockpit); default: the cockpit script next to this interpreter",
    )
    p.add_argument("--workdir", help="WorkingDirectory= (default: the data dir)")
    p.add_argument(
        "--credential-file",
        help="host file holding the keyring key (default: /etc/cockpit/NAME.keyring-key)",
    )


def _err(msg: str) -> None:
    print(f"cockpit: install-service: {msg}", file=sys.stderr)


def _exec_cmd(path: str | None) -> list[str]:
    if path is None:
        return su.default_exec()
    if _PYTHON.fullmatch(os.path.basename(path)):
        return [path, "-m", "cockpit"]
    return [path]


def _render(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    name = su.check_name(args.name)
    exec_cmd = _exec_cmd(args.exec_path)
    units = su.render_units(
        name,
        args.user,
        args.data_dir if args.data_dir is not None else su.default_data_dir(name),
        exec_cmd,
        args.profile,
        group=args.group,
        workdir=args.workdir,
        credential_file=args.credential_file,
    )
    return units, exec_cmd


def _write_unit(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        try:
            os.fchmod(fd, 0o644)  # the CLI runs under umask 077; systemd must read this file
            write_all(fd, text.encode("utf-8"))  # a full disk: never a truncated unit
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_all(out_dir: Path, units: dict[str, str]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in units.items():
        _write_unit(out_dir / file_name, text)
        written.append(out_dir / file_name)
    dir_fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)  # the renames survive a crash
    finally:
        os.close(dir_fd)
    return written


def follow_up(args: argparse.Namespace, units: dict[str, str], out_dir: Path | None) -> str:
    """The root commands that finish the installation, as a shell-comment block."""
    name, user = args.name, args.user
    group = args.group or user
    data_dir = args.data_dir or su.default_data_dir(name)
    cred = args.credential_file or su.default_credential_file(name)
    engine_unit, *_rest = units
    timers = [u for u in units if u.endswith(".timer")]
    q = shlex.quote
    account = (
        f"useradd --system --user-group --home /var/lib/cockpit --shell /usr/sbin/nologin {user}"
        if group == user
        else f"groupadd --system {group}  # if missing\n"
        f"useradd --system --gid {group} --home /var/lib/cockpit --shell /usr/sbin/nologin {user}"
    )
    lines = [
        "Follow-up steps, as root:",
        f"{account}  # once, if the user does not exist",
        f"install -d -m 0700 -o root -g root {q(os.path.dirname(cred))}",
        f"(umask 077 && {q(sys.executable)} -m engine.security.keystore generate-key > {q(cred)})",
        "  # an existing data dir: put its current COCKPIT_KEYRING_KEY there instead (a new key",
        "  # cannot decrypt an existing secrets/keyring.enc)",
    ]
    if not data_dir.startswith(su.STATE_ROOT + "/"):
        lines.append(f"install -d -m 0700 -o {user} -g {group} {q(data_dir)}")
    lines.append(f"chown -R {user}:{group} {q(data_dir)}  # only if it already holds data")
    if out_dir is not None:
        where = q(str(out_dir.absolute()))
        lines.append(f"cp {' '.join(f'{where}/{u}' for u in units)} /etc/systemd/system/")
    else:
        lines.append("put the units (--print or --out-dir DIR) into /etc/systemd/system/")
    lines += [
        "systemctl daemon-reload",
        f"systemctl enable --now {engine_unit} {' '.join(timers)}",
        f"systemctl status {engine_unit}; journalctl -u {engine_unit} -f",
    ]
    return "".join(f"# {line}\n" for line in lines)


def _warn_exec(exec_cmd: Sequence[str]) -> None:
    prog = exec_cmd[0]
    if not (os.path.isfile(prog) and os.access(prog, os.X_OK)):
        _err(
            f"warning: {prog} is not an executable file on this host (fine if the units are for another)"
        )


def run(args: argparse.Namespace) -> int:
    try:
        units, exec_cmd = _render(args)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    _warn_exec(exec_cmd)
    out_dir = Path(args.out_dir) if args.out_dir else None
    if out_dir is not None:
        try:
            written = _write_all(out_dir, units)
        except OSError as exc:
            _err(f"{exc.filename or out_dir}: {exc.strerror or exc}; choose a writable --out-dir")
            return EXIT_BAD_INPUT
        for path in written:
            print(f"wrote {path}", file=sys.stderr if args.print_units else sys.stdout)
    if args.print_units:
        for file_name, text in units.items():
            sys.stdout.write(f"# ---- {file_name} ----\n{text}")
    steps = follow_up(args, units, out_dir)
    if out_dir is None and not args.print_units:
        print(
            "Nothing written: use --print to see the units or --out-dir DIR to write them.\n"
            f"Units for this instance: {', '.join(units)}"
        )
    print(steps, end="", file=sys.stderr if args.print_units else sys.stdout)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m cockpit.service_cli install-service ...``)."""

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:
            _err(f"{message} (see `{self.prog} --help`)")
            raise SystemExit(EXIT_BAD_INPUT)

    parser = _Parser(prog="cockpit")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_parsers(sub, None)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
