"""TOTP second factor for critical actions: replay-proof, with lockout.

Role: the engine holds one ``TotpGuard`` built from the operator's TOTP seed (kept in the encrypted
keystore, see ``load_totp_secret``) and calls ``verify(code, action)`` before a critical action
(kill switch, promote / rollback, canary share, risk reset, safe mode off, go live). The guard
decides only whether the code is acceptable; the caller decides policy (e.g. what "not enrolled"
means for a live profile) and persists ``state()`` after each call.

Invariants:
- Acceptance is pyotp's ``TOTP.verify(code, valid_window=1)`` (6 digits, 30 s steps, SHA-1; the
  current step and one on each side), but the guard computes the matched step itself and records
  it: a code whose step is <= the last accepted step is refused, even inside the window
  (RFC 6238 §5.2). A code is therefore accepted at most once, and never an older one after it.
- ``max_failures`` consecutive failed verifications (wrong code or replay) lock the guard for
  ``lockout_s`` seconds: every verify is refused meanwhile, even with a valid code, and attempts
  during the lockout neither extend it nor count. Input that is not 6 digits is refused without
  counting (it cannot be a guess). A success resets the failure count.
- ``state()`` holds everything needed to keep these guarantees across restarts (``last_step``,
  ``failures``, ``locked_until`` in clock seconds); the constructor takes it back.
- The seed never appears in a result message, a log line, ``repr`` or ``state()``; neither does a
  submitted code.
- Not enrolled (no seed) → ``verify`` returns ok=True with the message "2FA not enrolled".
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp

SERVICE = "cockpit"
DIGITS = 6
INTERVAL = 30
VALID_WINDOW = 1


def totp_username(account: str) -> str:
    """The keyring user name under which ``account``'s TOTP seed is stored (service "cockpit")."""
    return f"totp:{account}"


def load_totp_secret(
    data_dir: Path, account: str = "operator", env: Mapping[str, str] | None = None
) -> str | None:
    """``account``'s TOTP seed from the encrypted keystore of ``data_dir``; None if not enrolled.

    No keystore file yet means nothing was ever enrolled: None, and no key is needed. Once the
    file exists the keyring key is required (``KeystoreError`` otherwise).
    """
    from engine.security.keystore import keystore_path, open_keystore

    if not keystore_path(data_dir).exists():
        return None
    return open_keystore(data_dir, env).get_password(SERVICE, totp_username(account))


@dataclass(frozen=True, slots=True)
class TotpResult:
    ok: bool
    message: str


class TotpStateError(ValueError):
    """A persisted guard state that cannot be trusted (wrong keys or types)."""


class TotpGuard:
    """Verifies TOTP codes for critical actions (see module docstring for the guarantees)."""

    def __init__(
        self,
        secret: str | None,
        *,
        state: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        max_failures: int = 5,
        lockout_s: float = 300.0,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be >= 1")
        if lockout_s < 0:
            raise ValueError("lockout_s must be >= 0")
        self._totp: pyotp.TOTP | None = None
        if secret:
            totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
            try:
                totp.generate_otp(0)
            except Exception:  # noqa: BLE001 - binascii.Error & co; never echo the secret
                raise ValueError("TOTP secret is not valid base32") from None
            self._totp = totp
        self._clock = clock
        self._max_failures = max_failures
        self._lockout_s = float(lockout_s)
        self._lock = threading.Lock()
        self._last_step: int | None = None
        self._failures = 0
        self._locked_until = 0.0
        if state:
            self._load_state(state)

    def __repr__(self) -> str:
        return f"TotpGuard(enrolled={self.enrolled}, failures={self._failures})"

    @property
    def enrolled(self) -> bool:
        return self._totp is not None

    def state(self) -> dict[str, Any]:
        """What the engine persists after each ``verify`` (JSON-serialisable, no secret)."""
        with self._lock:
            return {
                "last_step": self._last_step,
                "failures": self._failures,
                "locked_until": self._locked_until,
            }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        last = state.get("last_step")
        failures = state.get("failures", 0)
        locked = state.get("locked_until", 0.0)
        if last is not None and (isinstance(last, bool) or not isinstance(last, int)):
            raise TotpStateError("TOTP state: last_step must be an integer or null")
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
            raise TotpStateError("TOTP state: failures must be a non-negative integer")
        if isinstance(locked, bool) or not isinstance(locked, int | float) or math.isnan(locked):
            raise TotpStateError("TOTP state: locked_until must be a number")
        self._last_step = last
        self._failures = failures
        self._locked_until = float(locked)

    def verify(self, code: str, action: str) -> TotpResult:
        """Whether ``code`` authorises ``action`` now; updates the replay / lockout state."""
        if self._totp is None:
            return TotpResult(True, "2FA not enrolled")
        with self._lock:
            now = self._clock()
            if now < self._locked_until:
                left = max(1, math.ceil(self._locked_until - now))
                return TotpResult(
                    False, f"TOTP locked out for {left} s after repeated wrong codes ({action})"
                )
            code = (code or "").strip().replace(" ", "")
            if len(code) != DIGITS or not code.isascii() or not code.isdigit():
                return TotpResult(False, f"TOTP code for {action} must be {DIGITS} digits")
            step = int(now // INTERVAL)
            matched = [
                s
                for s in range(step - VALID_WINDOW, step + VALID_WINDOW + 1)
                if hmac.compare_digest(code, self._totp.generate_otp(s))
            ]
            fresh = [s for s in matched if self._last_step is None or s > self._last_step]
            if fresh:
                self._last_step = max(fresh)
                self._failures = 0
                return TotpResult(True, f"TOTP accepted for {action}")
            why = "already used" if matched else "wrong"
            self._failures += 1
            if self._failures >= self._max_failures:
                self._failures = 0
                self._locked_until = now + self._lockout_s
                return TotpResult(
                    False,
                    f"TOTP code for {action} {why}; locked out for "
                    f"{math.ceil(self._lockout_s)} s after {self._max_failures} failures",
                )
            left = self._max_failures - self._failures
            return TotpResult(
                False, f"TOTP code for {action} {why} ({left} attempts left before lockout)"
            )


@dataclass(frozen=True)
class Enrolment:
    """The 2FA policy's verdict at start: the guard to use, and whether the data dir must now
    remember that 2FA is enrolled (so a seed that later vanishes refuses the start)."""

    guard: TotpGuard
    newly_enrolled: bool


def enrolment_policy(
    secret: str | None, *, enrolled_before: bool, saved_state: str, data_dir: Path
) -> Enrolment:
    """The enrolled-secret policy, fail closed: once a data dir has run with 2FA, a missing seed
    refuses the start (``KeystoreError``) instead of silently dropping the second factor.

    ``secret`` is read from the keystore before the engine boots (``load_totp_secret``), so a
    missing or wrong keyring key stops the start before anything is written; ``saved_state`` is
    the guard's persisted replay/lockout state (JSON, or "" for none)."""
    import json

    from engine.security.keystore import KeystoreError, keystore_path

    if secret is None and enrolled_before:
        raise KeystoreError(
            f"2FA was enrolled for {data_dir} but its secret is gone "
            f"({keystore_path(data_dir)}): restore the keystore or re-enroll with "
            "`cockpit totp enroll --force`; refusing to run without 2FA"
        )
    guard = TotpGuard(secret, state=json.loads(saved_state) if saved_state else None)
    return Enrolment(guard=guard, newly_enrolled=secret is not None and not enrolled_before)
