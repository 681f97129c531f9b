"""``cockpit`` command line: the cockpit (headless until the TUI lands), config and audit tools.

Exit codes: 0 ok; 1 a check failed (e.g. audit chain broken); 2 bad input (profile, arguments);
3 engine already running on this data dir; 4 storage problem (corrupt / locked / behind head).
Every error is one line on stderr naming what and where. Importing this module does not import
Textual: headless runs and scripts stay light.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import math
import os
import sys
from pathlib import Path
from typing import Any

from cockpit import (
    campaign_cli,
    config_cli,
    control_cli,
    data_cli,
    notify_cli,
    ops_cli,
    report_cli,
    research_cli,
    secrets_cli,
    service_cli,
    signal_cli,
    totp_cli,
)
from engine.api import RoleRefused, effective_role
from engine.config.live_locks import check_live_locks
from engine.config.loader import (
    Config,
    ConfigError,
    load_config,
    render_config,
    render_env_sample,
    resolve_data_dir,
)

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_RUNNING, EXIT_STORAGE = 0, 1, 2, 3, 4
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _err(msg: str) -> None:
    print(f"cockpit: {msg}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr and exit 2 (not argparse's usage block)."""

    def error(self, message: str) -> Any:
        _err(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_BAD_INPUT)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trading-cockpit")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"invalid log level {text!r} (valid: {', '.join(LOG_LEVELS)})"
        )
    return level


def _duration(text: str) -> float:
    """Seconds: a finite number > 0 (``nan``, ``inf``, ``-5`` and ``0`` are refused)."""
    try:
        seconds = float(text) if text.strip().isascii() else math.nan
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0 (got {text!r})")
    return seconds


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", help="profile name (profiles/NAME.toml) or path to a .toml file")
    p.add_argument("--data-dir", help="data directory (default ./data or $COCKPIT_DATA_DIR)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cockpit", description="Terminal trading cockpit")
    p.add_argument("--version", action="version", version=f"cockpit {_version()}")
    _common(p)
    p.add_argument("--headless", action="store_true", help="run the engine without the TUI")
    p.add_argument("--duration", type=_duration, help="stop cleanly after S seconds (> 0)")
    # a string: the config loader parses it like SIM_SEED (ASCII digits, documented range)
    p.add_argument("--seed", help="market simulator seed (sim.seed)")
    p.add_argument("--log-level", type=_log_level, default="INFO", help="|".join(LOG_LEVELS))
    p.add_argument(
        "--keymap",
        help='TOML keymap ([keys] id = "key"); default $COCKPIT_KEYMAP, else '
        "~/.config/cockpit/keymap.toml when it exists",
    )
    p.add_argument(
        "--role",
        choices=("operator", "observer"),
        default=None,
        help="observer: sees everything, can act on nothing (enforced in the engine); a profile "
        "with observer_start = true (staging) always runs as observer",
    )
    sub = p.add_subparsers(dest="cmd")
    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_cmd", required=True)
    show = csub.add_parser("show", help="effective configuration with sources, secrets redacted")
    _common(show)
    config_cli.add_parsers(csub, show, _common)
    es = sub.add_parser("env-sample", help="write a documented env sample")
    es.add_argument("--output", "-o", help="file to write (default: stdout)")
    a = sub.add_parser("audit", help="audit chain tools")
    asub = a.add_subparsers(dest="audit_cmd", required=True)
    v = asub.add_parser("verify", help="verify the hash chain; exit 0 when intact")
    _common(v)
    ops_cli.add_parsers(sub, _common)
    report_cli.add_parsers(sub, _common)
    notify_cli.add_parsers(sub, _common)
    service_cli.add_parsers(sub, _common)
    secrets_cli.add_parsers(sub, _common)
    data_cli.add_parsers(sub, _common)
    campaign_cli.add_parsers(sub, _common)
    control_cli.add_parsers(sub, _common)
    signal_cli.add_parsers(sub, _common)
    totp_cli.add_parser(sub)
    return p


def _load(args: argparse.Namespace) -> Any:
    overrides: dict[str, object] = {}
    if getattr(args, "seed", None) is not None:
        overrides["sim.seed"] = args.seed
    return load_config(args.profile, overrides=overrides or None)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    from engine.core.fsutil import private_umask

    private_umask()  # everything we create is owner-only (the metrics textfile sets its own mode)
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "env-sample":
            text = render_env_sample()
            if args.output:
                _write_atomic(Path(args.output), text)
            else:
                sys.stdout.write(text)
            return EXIT_OK
        if args.cmd == "config":
            if args.config_cmd in config_cli.COMMANDS or args.running:
                return config_cli.run(args)
            sys.stdout.write(render_config(_load(args)))
            return EXIT_OK
        if args.cmd == "audit":
            return _audit_verify(resolve_data_dir(args.data_dir))
        if args.cmd in ("reconcile", "healthcheck", "backup", "restore", "db"):
            return ops_cli.run(args)
        if args.cmd == "totp":
            return totp_cli.run(args)
        if args.cmd in report_cli.COMMANDS:
            return report_cli.run(args)
        if args.cmd == "notify":
            return notify_cli.run(args)
        if args.cmd in service_cli.COMMANDS:
            return service_cli.run(args)
        if args.cmd in secrets_cli.COMMANDS:
            return secrets_cli.run(args)
        if args.cmd == "data":
            return data_cli.run(args)
        if args.cmd == "campaign":
            return campaign_cli.run(args)
        if args.cmd == "model" and args.model_cmd in research_cli.MODEL_COMMANDS:
            return research_cli.run(args)
        if args.cmd in signal_cli.COMMANDS:
            return signal_cli.run(args)
        if args.cmd in control_cli.COMMANDS:
            return control_cli.run(args)
        if args.cmd is not None:  # a subcommand nobody dispatched must never start trading
            _err(f"{args.cmd}: no handler for this command (a bug): nothing was done")
            return EXIT_BAD_INPUT
        cfg = _load(args)
        args.role = effective_role(cfg.observer_start, args.role)
        data_dir = resolve_data_dir(args.data_dir)
        return _run(cfg, data_dir, args)
    except (ConfigError, RoleRefused) as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    except OSError as exc:
        return _os_error(exc, getattr(args, "data_dir", None))


_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM}


def _os_error(exc: OSError, where: object) -> int:
    """One line naming the file (or the data dir when the OS did not say which file): a storage
    failure (full disk, read-only, I/O error, permissions) is exit 4, anything else bad input."""
    name = exc.filename or where or resolve_data_dir(None)
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in _STORAGE_ERRNOS:
        hint = (
            "free space on that file system"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else ("check the file system and its permissions")
        )
        _err(f"{name}: {what}; {hint}, then try again")
        return EXIT_STORAGE
    _err(f"{name}: {what}")
    return EXIT_BAD_INPUT


def _run(cfg: Config, data_dir: Path, args: argparse.Namespace) -> int:
    from engine.runtime.datacheck import data_dir_mode_problem
    from engine.security.keystore import KeystoreError
    from engine.store.writer import StoreError
    from engine.venues.venue_errors import VenueUnreachable

    try:  # before the lock: the live profile refuses an open data dir without touching it
        warning = data_dir_mode_problem(data_dir, getattr(cfg, "kind", ""))
    except StoreError as exc:
        _err(str(exc))
        return EXIT_STORAGE
    if warning:
        _err(f"warning: {warning}")
    check_live_locks(cfg)  # a live profile without its locks: refused before the lock or a dial
    try:
        if not args.headless:
            return _run_tui(cfg, data_dir, args)
        return _run_headless(cfg, data_dir, args)
    except (KeystoreError, VenueUnreachable) as exc:  # the key or the network: fix and retry
        _err(str(exc))
        return EXIT_BAD_INPUT


def _run_headless(cfg: Any, data_dir: Path, args: argparse.Namespace) -> int:
    from engine.obs.logs import setup_logging
    from engine.runtime.runner import run_headless
    from engine.store.lockfile import AlreadyRunning, acquire
    from engine.store.writer import StoreError

    try:
        # the lock comes first: a second instance must leave the data dir exactly as it was
        lock = acquire(data_dir)
        setup_logging(data_dir, args.log_level)
        return asyncio.run(
            run_headless(
                cfg,
                data_dir,
                args.duration,
                lock,
                role=args.role,
            )
        )
    except AlreadyRunning as exc:
        _err(str(exc))
        return EXIT_RUNNING
    except StoreError as exc:
        _err(str(exc))
        return EXIT_STORAGE
    except OSError as exc:
        return _os_error(exc, data_dir)
    except KeyboardInterrupt:
        return EXIT_OK


def _run_tui(cfg: Any, data_dir: Path, args: argparse.Namespace) -> int:
    """The cockpit: engine on its own thread, Textual on this one; both stop together."""
    from cockpit.keymap import KeymapError
    from engine.obs.logs import setup_logging
    from engine.store.lockfile import AlreadyRunning, acquire
    from engine.store.writer import StoreError

    try:  # before anything is locked or started: a bad keymap is one line, exit 2
        keymap = _keymap(args.keymap)
    except KeymapError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    try:
        lock = acquire(data_dir)
    except AlreadyRunning as exc:
        _err(str(exc))
        return EXIT_RUNNING
    setup_logging(data_dir, args.log_level, stdout=False)  # stdout belongs to the screen
    from cockpit.host import EngineHost

    host = EngineHost(cfg, data_dir, lock, role=args.role)
    try:
        host.launch()  # the engine boots while Textual is imported (first frame sooner)
        try:
            from cockpit.app import CockpitApp
        except BaseException:  # no UI: the booting engine must not run on unseen
            with contextlib.suppress(Exception):
                host.start()  # let the boot finish, so the stop below is the clean one
            raise
        host.start()
    except (StoreError, RuntimeError) as exc:
        host.stop("start failed")
        _err(str(exc).splitlines()[0])
        lock.release()
        return EXIT_STORAGE
    except BaseException:
        host.stop("start failed")
        lock.release()
        raise
    reason = "cockpit quit"
    failure: str | None = None
    try:
        app = CockpitApp(host, role=host.role, keymap=keymap, data_dir=data_dir)
        app.run()
        if app.hangup:
            reason = "SIGHUP"
        elif app.return_code not in (None, 0):
            failure = app.failure or f"exit {app.return_code}"
    except OSError as exc:
        if exc.errno not in (errno.EIO, errno.EPIPE, errno.ENXIO):
            failure = _ui_crash(exc)
        else:
            reason = "SIGHUP (terminal gone)"  # SSH drop / tmux kill: a clean stop, not a fault
    except BaseException as exc:  # noqa: BLE001 - reported below, with the traceback, exit 1
        failure = _ui_crash(exc)
    finally:
        if failure is not None:
            reason = f"cockpit UI failed: {failure}"
            host.arm_kill_switch_now(reason)  # the UI is gone: never trade unseen
        host.stop(reason)
    if failure is not None:  # the screen is restored: this stays on the operator's terminal
        _err(
            f"the UI failed ({failure}); trading halted: kill switch armed (it stays armed at "
            f"the next start: disarm it once checked); traceback in {data_dir / 'logs'}"
        )
        return EXIT_CHECK_FAILED
    return EXIT_OK if host.error is None else EXIT_CHECK_FAILED


def _keymap(arg: str | None) -> dict[str, str]:
    from cockpit.keymap import keymap_path, load_keymap

    path = keymap_path(arg)
    return load_keymap(path) if path is not None else {}


def _ui_crash(exc: BaseException) -> str:
    """A failure of the UI outside Textual's own handler (driver, terminal): logged and shown."""
    import logging
    import traceback

    what = f"{type(exc).__name__}: {exc}".splitlines()[0]
    logging.getLogger("cockpit").critical("cockpit UI failed: %s", what, exc_info=exc)
    traceback.print_exception(exc, file=sys.stderr)
    return what


def _audit_verify(data_dir: Path) -> int:
    from engine.runtime.boot import db_path
    from engine.runtime.control import NotRunning, call
    from engine.security.audit import (
        KEY_ENV,
        HeadFile,
        VerifyResult,
        load_or_create_key,
        verify_db,
    )

    try:  # a running engine owns the file: it verifies through its own connection
        return _verify_result(VerifyResult(**call(data_dir, "audit_verify")))
    except NotRunning:
        pass

    db = db_path(data_dir)
    if not db.exists():
        _err(f"{db}: no database here (wrong --data-dir?)")
        return EXIT_BAD_INPUT
    if not (data_dir / "secrets" / "audit.key").exists() and not os.environ.get(KEY_ENV):
        _err(f"{data_dir / 'secrets' / 'audit.key'}: audit key missing; cannot verify")
        return EXIT_BAD_INPUT
    try:
        key = load_or_create_key(data_dir)
        head = HeadFile(data_dir / "audit" / "head.json").read()
        result = verify_db(db, key, head)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - e.g. DB locked by a running engine
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _err(f"{db}: cannot read: {first}")
        return EXIT_STORAGE
    return _verify_result(result)


def _verify_result(result: Any) -> int:
    if result.ok:
        print(f"audit chain intact: {result.checked} rows verified")
        return EXIT_OK
    if result.first_bad_seq is None:  # e.g. the external head is missing: not verifiable
        print(f"audit chain NOT VERIFIED: {result.reason}")
    else:
        print(f"audit chain BROKEN at seq {result.first_bad_seq}: {result.reason}")
    return EXIT_CHECK_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
