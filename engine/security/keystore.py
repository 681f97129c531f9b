"""The project's own ``keyring`` backend: secrets in one Fernet-encrypted file.

Role: on a server reached over SSH ``keyring`` has no usable backend (``NoKeyringError``), and with
``keyrings.alt`` installed it silently stores secrets in plaintext. So every secret (API keys, the
TOTP seed, the Telegram token) lives in ``<data_dir>/secrets/keyring.enc``, read and written by
``EncryptedFileKeyring``, which the process selects explicitly (``select_backend``) instead of
letting ``keyring`` guess. ``refuse_unsafe_backend`` is the start-up check that refuses a
plaintext, ``fail``, ``null`` or priority <= 0 backend.

Invariants:
- The file is one Fernet token (AES-128-CBC + HMAC-SHA256) over a JSON document
  ``{"version": 1, "entries": {service: {username: password}}}``: nothing about the secrets, not
  even the service or user names, is readable without the key.
- Keys come from env ``COCKPIT_KEYRING_KEY`` (one or more comma-separated url-safe base64 Fernet
  keys, newest first) or else from the systemd credential ``$CREDENTIALS_DIRECTORY/
  cockpit-keyring-key`` (same format; commas or newlines). They are never written to disk by this
  module, never logged, and never part of an error message; neither is any secret.
- Encryption always uses the first (newest) key; decryption tries every key (``MultiFernet``).
  ``rotate`` re-encrypts the file under a new key so the old ones can then be dropped.
- The secrets directory is 0700 and the file 0600; a looser mode found on disk is refused rather
  than silently repaired (someone else may already have read it).
- Writes are atomic (temp file in the same directory + fsync + ``os.replace`` + directory fsync) and
  read-modify-write cycles hold an exclusive ``flock`` on ``keyring.lock``, so the engine and a
  CLI command (``cockpit totp enroll``) can both write without losing each other's entries.
- The file is re-read on every operation (another process may have written it); a key that cannot
  decrypt it is a ``KeystoreError`` naming the file, raised already by ``open_keystore``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import keyring
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from keyring.backend import KeyringBackend
from keyring.backends import fail, null
from keyring.errors import PasswordDeleteError

from engine.core.envvars import COCKPIT_KEYRING_KEY, CREDENTIALS_DIRECTORY
from engine.core.fsutil import write_private_atomic

KEY_ENV = COCKPIT_KEYRING_KEY
CREDENTIAL_NAME = "cockpit-keyring-key"
FILE_NAME = "keyring.enc"
LOCK_NAME = "keyring.lock"
FORMAT_VERSION = 1

_HOW_TO_KEY = (
    f"generate one with `python -m engine.security.keystore generate-key` and export it as {KEY_ENV}, "
    f"or provide it as the systemd credential {CREDENTIAL_NAME} (LoadCredential=)"
)


class KeystoreError(Exception):
    """A one-line, secret-free explanation of why the keystore cannot be used."""


def keystore_path(data_dir: Path) -> Path:
    """Where the encrypted keyring file of ``data_dir`` lives."""
    return data_dir / "secrets" / FILE_NAME


def generate_key() -> str:
    """A fresh Fernet key (url-safe base64 text), suitable for ``COCKPIT_KEYRING_KEY``."""
    return Fernet.generate_key().decode("ascii")


def _parse_keys(raw: str, source: str) -> list[Fernet]:
    parts = [p.strip() for p in raw.replace("\n", ",").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise KeystoreError(f"{source} is empty: {_HOW_TO_KEY}")
    fernets = []
    for i, part in enumerate(parts, start=1):
        try:
            fernets.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            # Never echo the value: it is a secret.
            raise KeystoreError(
                f"{source}: key #{i} is not a Fernet key (32 bytes, url-safe base64)"
            ) from None
    return fernets


# Set in a running engine while ``cockpit secrets rotate`` switches its key (newest first): the
# engine's own environment still holds the old key, and must keep reading the file after it.
_process_keys: list[str] = []


def use_process_keys(keys: list[str]) -> None:
    """From now on this process opens the keyring with ``keys`` (newest first), not the env's."""
    _parse_keys(",".join(keys), "new key")  # refuse a bad key before anything changes
    _process_keys[:] = keys


def key_texts(env: Mapping[str, str] | None = None) -> list[str]:
    """The keys in use, as text, newest first (process keys, else env, else credential)."""
    if _process_keys:
        return list(_process_keys)
    environ = os.environ if env is None else env
    raw = environ.get(KEY_ENV, "")
    if not raw.strip():
        cred = Path(environ.get(CREDENTIALS_DIRECTORY, "") or "/nonexistent") / CREDENTIAL_NAME
        if cred.is_file():
            raw = cred.read_text(encoding="ascii")
    return [p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()]


def load_keys(env: Mapping[str, str] | None = None) -> list[Fernet]:
    """The keyring keys, newest first, from the environment or the systemd credential."""
    if _process_keys and env is None:
        return _parse_keys(",".join(_process_keys), "rotated keys")
    environ = os.environ if env is None else env
    raw = environ.get(KEY_ENV, "")
    if raw.strip():
        return _parse_keys(raw, KEY_ENV)
    cred_dir = environ.get(CREDENTIALS_DIRECTORY, "")
    if cred_dir:
        cred = Path(cred_dir) / CREDENTIAL_NAME
        if cred.is_file():
            try:
                text = cred.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise KeystoreError(f"{cred}: cannot read the keyring key credential") from exc
            return _parse_keys(text, str(cred))
    raise KeystoreError(f"{KEY_ENV} not set: {_HOW_TO_KEY}")


def _check_private(path: Path, want: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeystoreError(
            f"{path}: mode {mode:04o} lets other users in; expected {want:04o} "
            f"(fix with chmod {want:o} {path})"
        )


class EncryptedFileKeyring(KeyringBackend):
    """A ``keyring`` backend storing every secret in one encrypted file (see module docstring)."""

    # High enough to win over anything keyring might detect, were it ever offered for detection.
    # keyring's own detection cannot construct this class (its constructor needs a path and keys),
    # so it is only ever used when selected explicitly.
    priority = 9

    def __init__(self, path: Path, keys: list[Fernet]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not keys:
            raise KeystoreError(f"{KEY_ENV} not set: {_HOW_TO_KEY}")
        self._path = Path(path)
        self._keys = list(keys)
        self._fernet = MultiFernet(self._keys)

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"EncryptedFileKeyring({str(self._path)!r}, keys={len(self._keys)})"

    # --- keyring API --------------------------------------------------------------------------

    def get_password(self, service: str, username: str) -> str | None:
        entries = self._read()
        return entries.get(service, {}).get(username)

    def names(self, service: str) -> list[str]:
        """The names stored under ``service`` (never their values)."""
        return sorted(self._read().get(service, {}))

    def set_password(self, service: str, username: str, password: str) -> None:
        if not isinstance(password, str):
            raise TypeError("password must be a str")
        with self._locked():
            entries = self._read()
            entries.setdefault(service, {})[username] = password
            self._write(entries)

    def delete_password(self, service: str, username: str) -> None:
        with self._locked():
            entries = self._read()
            users = entries.get(service, {})
            if username not in users:
                raise PasswordDeleteError(f"no secret stored for {service}/{username}")
            del users[username]
            if not users:
                del entries[service]
            self._write(entries)

    # --- internals ----------------------------------------------------------------------------

    def _ensure_dir(self) -> Path:
        d = self._path.parent
        if not d.exists():
            d.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(d, 0o700)
        _check_private(d, 0o700)
        return d

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        d = self._ensure_dir()
        fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read_token(self) -> bytes | None:
        try:
            _check_private(self._path, 0o600)
            return self._path.read_bytes()
        except FileNotFoundError:
            return None

    def check(self) -> None:
        """Read and decrypt the file now: a wrong key or a loose mode raises `KeystoreError`."""
        self._read()

    def _read(self) -> dict[str, dict[str, str]]:
        token = self._read_token()
        if token is None:
            return {}
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken:
            raise KeystoreError(
                f"{self._path}: cannot decrypt with the key(s) in {KEY_ENV} "
                "(wrong key, a key dropped before `rotate`, or a corrupt file)"
            ) from None
        try:
            doc = json.loads(plain)
            entries = doc["entries"]
            if doc.get("version") != FORMAT_VERSION or not isinstance(entries, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise KeystoreError(f"{self._path}: decrypted but not a keyring document") from None
        return {str(s): dict(u) for s, u in entries.items()}

    def _write(self, entries: Mapping[str, Mapping[str, str]]) -> None:
        doc = {"version": FORMAT_VERSION, "entries": entries}
        self._write_token(self._fernet.encrypt(json.dumps(doc, sort_keys=True).encode("utf-8")))

    def _write_token(self, token: bytes) -> None:
        self._ensure_dir()
        write_private_atomic(self._path, token)

    def rotate_key(self, new_key: Fernet) -> None:
        keys = [new_key, *self._keys]
        fernet = MultiFernet(keys)
        with self._locked():
            token = self._read_token()
            if token is not None:
                try:
                    token = fernet.rotate(token)
                except InvalidToken:
                    raise KeystoreError(
                        f"{self._path}: cannot decrypt with the current key(s); nothing rotated"
                    ) from None
                self._write_token(token)
        self._keys = keys
        self._fernet = fernet


def open_keystore(data_dir: Path, env: Mapping[str, str] | None = None) -> EncryptedFileKeyring:
    """The keyring of ``data_dir``; fails now (``KeystoreError``) if the key is missing or wrong."""
    kr = EncryptedFileKeyring(keystore_path(data_dir), load_keys(env))
    kr.check()  # a wrong key or a loose file mode must stop start-up, not the first secret read
    return kr


def rotate(kr: EncryptedFileKeyring, new_key: str) -> None:
    """Re-encrypt ``kr``'s file under ``new_key`` (``MultiFernet.rotate``).

    Afterwards the file decrypts with ``new_key`` alone: set ``COCKPIT_KEYRING_KEY=<new_key>`` and
    drop the old key(s). Until then ``kr`` keeps the old keys as decryption fallbacks.
    """
    (fernet,) = _parse_keys(new_key, "new key")
    kr.rotate_key(fernet)


def refuse_unsafe_backend(backend: Any) -> None:
    """Raise ``KeystoreError`` unless ``backend`` is a keyring backend that keeps secrets safe.

    Refused: plaintext backends (``keyrings.alt.file.PlaintextKeyring`` or any class whose name
    contains "Plaintext"), ``keyring.backends.fail.Keyring``, ``keyring.backends.null.Keyring``,
    and any backend of priority <= 0 (keyring's own marker for "not recommended"). A chainer is
    refused if any backend it chains is.
    """
    cls = type(backend)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if not isinstance(backend, KeyringBackend):
        raise KeystoreError(f"keyring backend {name} is not a keyring backend; refusing to start")
    if "plaintext" in cls.__name__.lower():
        raise KeystoreError(
            f"keyring backend {name} stores secrets in plaintext; refusing to start"
        )
    if isinstance(backend, fail.Keyring):
        raise KeystoreError(f"keyring backend {name} has no usable storage; refusing to start")
    if isinstance(backend, null.Keyring):
        raise KeystoreError(f"keyring backend {name} discards secrets; refusing to start")
    try:
        priority = float(backend.priority)
    except Exception as exc:  # noqa: BLE001 - a backend signals "not viable" by raising
        raise KeystoreError(
            f"keyring backend {name} is not viable ({type(exc).__name__}); refusing to start"
        ) from None
    if priority <= 0:
        raise KeystoreError(
            f"keyring backend {name} has priority {priority:g} (not recommended); refusing to start"
        )
    for inner in getattr(backend, "backends", None) or ():
        refuse_unsafe_backend(inner)


def select_backend(kr: KeyringBackend) -> None:
    """Make ``kr`` the process-wide ``keyring`` backend, after checking it is safe."""
    refuse_unsafe_backend(kr)
    keyring.set_keyring(kr)


def _main(argv: list[str]) -> int:
    if argv == ["generate-key"]:
        print(generate_key())
        return 0
    print("usage: python -m engine.security.keystore generate-key")
    return 2


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
