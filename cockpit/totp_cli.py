"""``cockpit totp enroll``: create the operator's TOTP seed and show it as a terminal QR code.

Role: the one place a TOTP seed is born. It goes straight into the project's encrypted keystore
(``engine.security.keystore.EncryptedFileKeyring``, selected explicitly as the ``keyring`` backend, under
service "cockpit", user ``totp:<account>``); the engine later reads it with
``engine.security.totp.load_totp_secret`` to guard critical actions.

Invariants:
- An unsafe keyring backend (plaintext / fail / null) is refused before a seed is generated.
- The seed is shown exactly once, on ``out`` (the terminal): as a QR code of the ``otpauth://``
  URI (``qrcode`` package; without it, the URI only) plus the base32 text for manual entry, since
  some authenticators or terminals cannot scan. It is never logged, and never written anywhere but
  the encrypted keystore. ``run`` warns on stderr when stdout is not a terminal.
- With a ``prompt`` (interactive runs), the seed is stored only after the operator typed a valid
  current code from the authenticator: a mis-scanned enrolment never locks anyone out.
- An existing enrolment is replaced only with ``force``.

Exit codes: 0 enrolled; 1 not enrolled (already enrolled without --force, verification failed);
2 keystore unusable (key missing / wrong, unsafe backend, loose permissions).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import keyring
import pyotp

from engine.core.fsutil import make_private_dir
from engine.security.keystore import KeystoreError, open_keystore, select_backend
from engine.security.totp import SERVICE, TotpGuard, load_totp_secret, totp_username

EXIT_OK, EXIT_NOT_ENROLLED, EXIT_KEYSTORE = 0, 1, 2
VERIFY_ATTEMPTS = 3


def _err(msg: str) -> None:
    print(f"cockpit: {msg}", file=sys.stderr)


def _print_qr(uri: str, out: TextIO) -> bool:
    try:
        import qrcode
    except ImportError:
        return False
    qr = qrcode.QRCode(border=1)
    qr.add_data(uri)
    qr.make(fit=True)
    qr.print_ascii(out=out, invert=True)
    return True


def _grouped(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def load_secret(
    data_dir: Path, account: str = "operator", env: Mapping[str, str] | None = None
) -> str | None:
    """``account``'s TOTP seed, or None if not enrolled (see ``engine.security.totp.load_totp_secret``)."""
    return load_totp_secret(data_dir, account, env)


def enroll(
    data_dir: Path,
    *,
    account: str = "operator",
    issuer: str = "cockpit",
    out: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    force: bool = False,
    prompt: Callable[[str], str] | None = None,
) -> int:
    """Enroll ``account`` for TOTP; returns an exit code (module docstring). ``out``: stdout."""
    out = sys.stdout if out is None else out
    try:
        # 0700 like every command creates it (else the keystore's mkdir of secrets/ would create
        # the data dir as a parent, with the umask's mode)
        make_private_dir(data_dir)
        kr = open_keystore(data_dir, env)
        select_backend(kr)
        existing = keyring.get_password(SERVICE, totp_username(account))
    except KeystoreError as exc:
        _err(str(exc))
        return EXIT_KEYSTORE
    if existing and not force:
        _err(f"{account}: already enrolled for TOTP in {kr.path}; pass --force to replace it")
        return EXIT_NOT_ENROLLED

    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)
    print(f"TOTP enrolment for {account!r} (issuer {issuer!r})", file=out)
    print("Scan this QR code with your authenticator app:", file=out)
    if not _print_qr(uri, out):
        print("(no QR code: the 'qrcode' package is not installed; use the URI below)", file=out)
    print(f"URI: {uri}", file=out)
    print(f"Manual entry key (shown once; stored only encrypted): {_grouped(secret)}", file=out)

    if prompt is not None:
        guard = TotpGuard(secret, max_failures=VERIFY_ATTEMPTS + 1)
        for _ in range(VERIFY_ATTEMPTS):
            result = guard.verify(prompt("Enter the 6-digit code shown by the app: "), "enrolment")
            if result.ok:
                break
            print(result.message, file=out)
        else:
            print("Not enrolled: no valid code entered; run `cockpit totp enroll` again.", file=out)
            return EXIT_NOT_ENROLLED

    try:
        keyring.set_password(SERVICE, totp_username(account), secret)
    except KeystoreError as exc:
        _err(str(exc))
        return EXIT_KEYSTORE
    print(f"Enrolled: the seed is stored encrypted in {kr.path}.", file=out)
    if prompt is None:
        print(
            "Check it now: critical actions will ask for the 6-digit code your app shows.",
            file=out,
        )
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register ``cockpit totp enroll`` on the top-level subparsers action ``sub``."""
    t = sub.add_parser("totp", help="TOTP second factor for critical actions")
    tsub = t.add_subparsers(dest="totp_cmd", required=True)
    e = tsub.add_parser("enroll", help="create the TOTP seed and show it as a QR code")
    # SUPPRESS keeps a top-level `cockpit --data-dir D totp enroll` from being reset to None.
    e.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="data directory (default ./data or $COCKPIT_DATA_DIR)",
    )
    e.add_argument("--account", default="operator", help="account name (default: operator)")
    e.add_argument("--issuer", default="cockpit", help="issuer shown by the app (default: cockpit)")
    e.add_argument("--force", action="store_true", help="replace an existing enrolment")


def run(args: argparse.Namespace) -> int:
    """Dispatch ``cockpit totp ...`` (only ``enroll`` today)."""
    from engine.config.loader import resolve_data_dir

    data_dir = resolve_data_dir(getattr(args, "data_dir", None))
    interactive = sys.stdin.isatty()
    if not sys.stdout.isatty():
        _err("warning: stdout is not a terminal; the TOTP seed is being written to it")
    return enroll(
        data_dir,
        account=args.account,
        issuer=args.issuer,
        force=args.force,
        prompt=input if interactive else None,
    )
