"""Issue 12 item 11 (keyring half): 2FA never silently disappears, and a wrong key leaves no trace.

TOTP is enrolled through the real enrolment code; the engine is the real process (headless) or
the cockpit's real engine host (the TUI's engine thread)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.security.keystore import KEY_ENV, generate_key
from tests.acceptance.helpers import run


def _enrolled(tmp_path: Path) -> tuple[Path, str]:
    from cockpit.totp_cli import enroll

    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    key = generate_key()
    assert enroll(d, env={KEY_ENV: key}, out=io.StringIO()) == 0
    return d, key


@pytest.mark.parametrize("mode", ["--headless", "tui"])
@pytest.mark.parametrize("key", ["", "wrong", "other-valid-key"])
def test_start_when_totp_enrolled_and_key_missing_or_wrong_then_exit2_one_line(
    tmp_path: Path, key: str, mode: str
) -> None:
    d, _ = _enrolled(tmp_path)
    env = {} if key == "" else {KEY_ENV: generate_key() if key == "other-valid-key" else key}
    args = ["--profile", "paper", "--data-dir", str(d), "--duration", "2"]
    res = run(*args, *([mode] if mode == "--headless" else []), **env)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert KEY_ENV in res.stderr
    assert not (d / "cockpit.duckdb").exists()  # refused before the DB was even opened


def test_tui_engine_when_started_once_with_wrong_key_then_right_key_shows_no_decrypt_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cockpit.host import EngineHost
    from engine.config.loader import load_config
    from engine.security.keystore import KeystoreError
    from engine.store.lockfile import acquire

    d, key = _enrolled(tmp_path)
    cfg = load_config("paper", env={})
    monkeypatch.setenv(KEY_ENV, generate_key())
    lock = acquire(d)
    wrong = EngineHost(cfg, d, lock)
    with pytest.raises((KeystoreError, RuntimeError), match="cannot decrypt"):
        wrong.start()
    wrong.stop("test")
    lock.release()  # as the CLI does when a start fails
    monkeypatch.setenv(KEY_ENV, key)
    right = EngineHost(cfg, d, acquire(d))
    right.start()
    try:
        snap = right.snapshot
        assert snap is not None
        assert "decrypt" not in snap.kill_reason
        assert not snap.kill_switch
        assert right.api is not None
        assert right.api.totp.enrolled
    finally:
        right.stop("test")


def test_tui_engine_when_older_release_armed_kill_switch_on_bad_key_then_banner_follows_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data dir armed by the old behaviour (engine thread failed on the key after boot):
    the switch stays armed — fail closed — but the banner no longer says the key is wrong."""
    from cockpit.host import EngineHost
    from engine.config.loader import load_config
    from engine.store.lockfile import acquire

    d, key = _enrolled(tmp_path)
    monkeypatch.setenv(KEY_ENV, key)
    cfg = load_config("paper", env={})
    host = EngineHost(cfg, d, acquire(d))
    host.start()
    host.arm_kill_switch_now(
        f"engine thread failed: KeystoreError: {d}/secrets/keyring.enc: "
        "cannot decrypt with the key(s) in COCKPIT_KEYRING_KEY"
    )
    host.stop("test")
    again = EngineHost(cfg, d, acquire(d))
    again.start()
    try:
        snap = again.snapshot
        assert snap is not None
        assert snap.kill_switch
        assert "decrypt" not in snap.kill_reason
        assert "current key opens it" in snap.kill_reason
    finally:
        again.stop("test")


def test_headless_when_2fa_was_enrolled_and_keystore_deleted_then_exit2_one_line(
    tmp_path: Path,
) -> None:
    d, key = _enrolled(tmp_path)
    first = run(
        "--headless",
        "--profile",
        "paper",
        "--data-dir",
        str(d),
        "--duration",
        "1",
        **{KEY_ENV: key},
    )
    assert first.returncode == 0, first.stderr
    (d / "secrets" / "keyring.enc").unlink()
    res = run(
        "--headless",
        "--profile",
        "paper",
        "--data-dir",
        str(d),
        "--duration",
        "1",
        **{KEY_ENV: key},
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1
    assert "2FA was enrolled" in res.stderr
