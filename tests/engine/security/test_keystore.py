"""Tests for engine.keystore: encrypted file keyring, 0600/0700, rotation, unsafe backend refusal."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null
from keyring.errors import PasswordDeleteError

from engine.security.keystore import (
    EncryptedFileKeyring,
    KeystoreError,
    generate_key,
    keystore_path,
    open_keystore,
    refuse_unsafe_backend,
    rotate,
    select_backend,
)

SECRET = "api-secret-Zq9#only-in-the-keystore"


@pytest.fixture
def key() -> str:
    return generate_key()


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    saved = keyring.core._keyring_backend
    yield
    keyring.core._keyring_backend = saved


def _env(*keys: str) -> dict[str, str]:
    return {"COCKPIT_KEYRING_KEY": ",".join(keys)}


class PlaintextKeyring(KeyringBackend):
    """Stands in for keyrings.alt.file.PlaintextKeyring (matched by class name)."""

    priority = 0.5  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        pass


class LowPriorityKeyring(KeyringBackend):
    priority = 0  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        pass


def test_set_then_get_when_same_key_then_secret_round_trips(tmp_path: Path, key: str) -> None:
    kr = open_keystore(tmp_path, _env(key))
    kr.set_password("cockpit", "binance:api_secret", SECRET)
    kr.set_password("cockpit", "telegram", "tg-token")

    reopened = open_keystore(tmp_path, _env(key))

    assert reopened.get_password("cockpit", "binance:api_secret") == SECRET
    assert reopened.get_password("cockpit", "telegram") == "tg-token"
    assert reopened.get_password("cockpit", "absent") is None


def test_set_password_when_written_then_file_holds_no_plaintext(tmp_path: Path, key: str) -> None:
    kr = open_keystore(tmp_path, _env(key))
    kr.set_password("cockpit-service-name", "user-name-xyz", SECRET)

    raw = keystore_path(tmp_path).read_bytes()

    assert SECRET.encode() not in raw
    assert b"cockpit-service-name" not in raw
    assert b"user-name-xyz" not in raw
    assert key.encode() not in raw


def test_set_password_when_written_then_file_0600_in_dir_0700(tmp_path: Path, key: str) -> None:
    old_umask = os.umask(0o022)
    try:
        open_keystore(tmp_path, _env(key)).set_password("cockpit", "u", SECRET)
    finally:
        os.umask(old_umask)

    path = keystore_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_open_when_file_world_readable_then_refused_naming_file(tmp_path: Path, key: str) -> None:
    open_keystore(tmp_path, _env(key)).set_password("cockpit", "u", SECRET)
    os.chmod(keystore_path(tmp_path), 0o644)

    with pytest.raises(KeystoreError, match=r"keyring\.enc: mode 0644"):
        open_keystore(tmp_path, _env(key))


_WRITER = """
import sys
from pathlib import Path
from engine.security.keystore import open_keystore
kr = open_keystore(Path(sys.argv[1]))
for i in range(15):
    kr.set_password("cockpit", f"{sys.argv[2]}:{i}", "v")
"""


def test_set_password_when_processes_write_concurrently_then_no_entry_lost(
    tmp_path: Path, key: str
) -> None:
    env = {
        **os.environ,
        "COCKPIT_KEYRING_KEY": key,
        "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
    }
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), f"w{n}"], env=env)
        for n in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4

    kr = open_keystore(tmp_path, _env(key))
    missing = [
        (n, i)
        for n in range(4)
        for i in range(15)
        if kr.get_password("cockpit", f"w{n}:{i}") is None
    ]
    assert missing == []


def test_delete_password_when_present_then_gone_and_when_absent_then_error(
    tmp_path: Path, key: str
) -> None:
    kr = open_keystore(tmp_path, _env(key))
    kr.set_password("cockpit", "a", "1")
    kr.set_password("cockpit", "b", "2")

    kr.delete_password("cockpit", "a")

    assert kr.get_password("cockpit", "a") is None
    assert kr.get_password("cockpit", "b") == "2"
    with pytest.raises(PasswordDeleteError):
        kr.delete_password("cockpit", "a")


def test_open_when_key_missing_then_error_names_env_var_and_remedy(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError) as err:
        open_keystore(tmp_path, {})

    msg = str(err.value)
    assert msg.startswith("COCKPIT_KEYRING_KEY not set: ")
    assert "generate-key" in msg
    assert "\n" not in msg


def test_open_when_key_malformed_then_error_without_echoing_it(tmp_path: Path) -> None:
    bad = "not-a-fernet-key-SECRETISH"
    with pytest.raises(KeystoreError) as err:
        open_keystore(tmp_path, _env(generate_key(), bad))

    assert "key #2" in str(err.value)
    assert bad not in str(err.value)


def test_open_when_wrong_key_then_error_names_file_not_key(tmp_path: Path, key: str) -> None:
    open_keystore(tmp_path, _env(key)).set_password("cockpit", "u", SECRET)
    wrong = generate_key()

    with pytest.raises(KeystoreError) as err:
        open_keystore(tmp_path, _env(wrong))

    msg = str(err.value)
    assert str(keystore_path(tmp_path)) in msg
    assert wrong not in msg
    assert key not in msg
    assert SECRET not in msg


def test_open_when_key_from_systemd_credential_then_reads_store(tmp_path: Path, key: str) -> None:
    open_keystore(tmp_path / "data", _env(key)).set_password("cockpit", "u", SECRET)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cockpit-keyring-key").write_text(key + "\n")

    kr = open_keystore(tmp_path / "data", {"CREDENTIALS_DIRECTORY": str(creds)})

    assert kr.get_password("cockpit", "u") == SECRET


def test_rotate_when_new_key_then_only_new_key_reads_and_old_key_fails(
    tmp_path: Path, key: str
) -> None:
    kr = open_keystore(tmp_path, _env(key))
    kr.set_password("cockpit", "u", SECRET)
    new = generate_key()

    rotate(kr, new)

    assert kr.get_password("cockpit", "u") == SECRET
    assert open_keystore(tmp_path, _env(new)).get_password("cockpit", "u") == SECRET
    with pytest.raises(KeystoreError, match="cannot decrypt"):
        open_keystore(tmp_path, _env(key))


def test_set_password_when_keys_listed_newest_first_then_writes_with_newest(
    tmp_path: Path, key: str
) -> None:
    open_keystore(tmp_path, _env(key)).set_password("cockpit", "u", SECRET)
    new = generate_key()

    both = open_keystore(tmp_path, _env(new, key))  # old key still decrypts
    both.set_password("cockpit", "v", "2")  # re-encrypts with the newest key

    assert open_keystore(tmp_path, _env(new)).get_password("cockpit", "u") == SECRET


def test_refuse_when_plaintext_backend_then_keystore_error() -> None:
    with pytest.raises(KeystoreError, match="plaintext"):
        refuse_unsafe_backend(PlaintextKeyring())


def test_refuse_when_fail_backend_then_keystore_error() -> None:
    with pytest.raises(KeystoreError, match="no usable storage"):
        refuse_unsafe_backend(fail.Keyring())


def test_refuse_when_null_backend_then_keystore_error() -> None:
    with pytest.raises(KeystoreError, match="discards"):
        refuse_unsafe_backend(null.Keyring())


def test_refuse_when_priority_zero_backend_then_keystore_error() -> None:
    with pytest.raises(KeystoreError, match="priority 0"):
        refuse_unsafe_backend(LowPriorityKeyring())


def test_refuse_when_our_encrypted_backend_then_accepted(tmp_path: Path, key: str) -> None:
    refuse_unsafe_backend(open_keystore(tmp_path, _env(key)))


def test_select_backend_when_unsafe_then_global_keyring_unchanged(
    restore_keyring: None, tmp_path: Path, key: str
) -> None:
    ours = open_keystore(tmp_path, _env(key))
    keyring.set_keyring(ours)

    with pytest.raises(KeystoreError):
        select_backend(PlaintextKeyring())

    assert keyring.get_keyring() is ours


def test_public_keyring_api_when_backend_selected_then_round_trips_encrypted(
    restore_keyring: None, tmp_path: Path, key: str
) -> None:
    kr = open_keystore(tmp_path, _env(key))

    select_backend(kr)
    keyring.set_password("cockpit", "totp:operator", SECRET)

    assert isinstance(keyring.get_keyring(), EncryptedFileKeyring)
    assert keyring.get_password("cockpit", "totp:operator") == SECRET
    assert open_keystore(tmp_path, _env(key)).get_password("cockpit", "totp:operator") == SECRET
    assert SECRET.encode() not in keystore_path(tmp_path).read_bytes()
