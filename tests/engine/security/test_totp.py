"""Tests for engine.totp (replay protection, lockout, persisted state) and `cockpit totp enroll`."""

from __future__ import annotations

import argparse
import io
import re
from collections.abc import Iterator
from pathlib import Path

import keyring.core
import pyotp
import pytest

from cockpit import totp_cli
from engine.security.keystore import generate_key, keystore_path, open_keystore
from engine.security.totp import TotpGuard, TotpStateError

SECRET = pyotp.random_base32()
T0 = 1_700_000_010.0  # 10 s into a 30 s step
STEP = int(T0 // 30)


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def code(step: int, secret: str = SECRET) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


def wrong(step: int) -> str:
    """A well-formed code that matches none of the steps around ``step``."""
    near = {code(s) for s in range(step - 2, step + 3)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    saved = keyring.core._keyring_backend
    yield
    keyring.core._keyring_backend = saved


# --- TotpGuard --------------------------------------------------------------------------------


def test_verify_when_current_code_then_accepted_like_pyotp(clock: FakeClock) -> None:
    guard = TotpGuard(SECRET, clock=clock)
    current = pyotp.TOTP(SECRET).at(int(clock.t))

    result = guard.verify(current, "kill switch arm")

    assert result.ok, result.message
    assert "kill switch arm" in result.message
    assert guard.state()["last_step"] == STEP


def test_verify_when_same_code_replayed_then_refused(clock: FakeClock) -> None:
    guard = TotpGuard(SECRET, clock=clock)
    assert guard.verify(code(STEP), "promote").ok

    clock.t += 5  # same step, still inside the window
    replay = guard.verify(code(STEP), "promote")

    assert not replay.ok
    assert "already used" in replay.message


def test_verify_when_previous_window_code_then_accepted_once(clock: FakeClock) -> None:
    guard = TotpGuard(SECRET, clock=clock)

    first = guard.verify(code(STEP - 1), "risk reset")
    second = guard.verify(code(STEP - 1), "risk reset")

    assert first.ok
    assert not second.ok
    assert "already used" in second.message


def test_verify_when_older_step_than_last_accepted_then_refused(clock: FakeClock) -> None:
    guard = TotpGuard(SECRET, clock=clock)
    assert guard.verify(code(STEP), "go live").ok

    older = guard.verify(code(STEP - 1), "go live")  # inside the window, but before the last used

    assert not older.ok
    assert "already used" in older.message


def test_verify_when_next_step_after_current_used_then_accepted(clock: FakeClock) -> None:
    guard = TotpGuard(SECRET, clock=clock)
    assert guard.verify(code(STEP), "canary share").ok

    clock.t += 30

    assert guard.verify(code(STEP + 1), "canary share").ok


def test_verify_when_code_two_steps_old_then_refused_as_wrong(clock: FakeClock) -> None:
    guard = TotpGuard(SECRET, clock=clock)

    result = guard.verify(code(STEP - 2), "promote")

    assert not result.ok
    assert "wrong" in result.message


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦"])
def test_verify_when_not_six_digits_then_refused_without_counting(
    clock: FakeClock, bad: str
) -> None:
    guard = TotpGuard(SECRET, clock=clock, max_failures=1)

    result = guard.verify(bad, "safe mode off")

    assert not result.ok
    assert "must be 6 digits" in result.message
    assert guard.state()["failures"] == 0
    assert guard.verify(code(STEP), "safe mode off").ok  # not locked out


def test_verify_when_code_has_spaces_then_accepted(clock: FakeClock) -> None:
    c = code(STEP)
    assert TotpGuard(SECRET, clock=clock).verify(f" {c[:3]} {c[3:]} ", "promote").ok


def test_verify_when_five_wrong_codes_then_locked_out_until_lockout_elapses(
    clock: FakeClock,
) -> None:
    guard = TotpGuard(SECRET, clock=clock, max_failures=5, lockout_s=300)
    results = [guard.verify(wrong(STEP), "rollback") for _ in range(5)]
    assert [r.ok for r in results] == [False] * 5
    assert "locked out for 300 s" in results[-1].message

    clock.t += 100
    locked = guard.verify(code(STEP + 3), "rollback")  # valid for the new time, still refused
    assert not locked.ok
    assert "locked out for 200 s" in locked.message

    clock.t = T0 + 300
    step = int(clock.t // 30)
    assert guard.verify(code(step), "rollback").ok


def test_verify_when_four_wrong_then_success_then_failure_count_reset(clock: FakeClock) -> None:
    guard = TotpGuard(SECRET, clock=clock, max_failures=5)
    for _ in range(4):
        assert not guard.verify(wrong(STEP), "promote").ok
    assert guard.verify(code(STEP), "promote").ok
    for _ in range(4):
        assert not guard.verify(wrong(STEP), "promote").ok

    clock.t += 30
    assert guard.verify(code(STEP + 1), "promote").ok  # 4 + 4 failures never locked it


def test_verify_when_replays_repeat_then_they_count_toward_lockout(clock: FakeClock) -> None:
    guard = TotpGuard(SECRET, clock=clock, max_failures=3)
    assert guard.verify(code(STEP), "promote").ok

    for _ in range(3):
        guard.verify(code(STEP), "promote")

    clock.t += 30
    assert "locked out" in guard.verify(code(STEP + 1), "promote").message


def test_state_when_restored_in_new_guard_then_replay_still_refused(clock: FakeClock) -> None:
    first = TotpGuard(SECRET, clock=clock)
    assert first.verify(code(STEP), "arm").ok

    restarted = TotpGuard(SECRET, clock=clock, state=first.state())

    assert not restarted.verify(code(STEP), "arm").ok
    assert not restarted.verify(code(STEP - 1), "arm").ok


def test_state_when_restored_during_lockout_then_still_locked(clock: FakeClock) -> None:
    first = TotpGuard(SECRET, clock=clock, max_failures=2, lockout_s=60)
    first.verify(wrong(STEP), "arm")
    first.verify(wrong(STEP), "arm")

    restarted = TotpGuard(SECRET, clock=clock, state=first.state(), lockout_s=60)

    result = restarted.verify(code(STEP), "arm")
    assert not result.ok
    assert "locked out for 60 s" in result.message


def test_init_when_state_malformed_then_totp_state_error(clock: FakeClock) -> None:
    with pytest.raises(TotpStateError, match="last_step"):
        TotpGuard(SECRET, clock=clock, state={"last_step": "12"})


def test_verify_when_not_enrolled_then_ok_with_not_enrolled_message() -> None:
    guard = TotpGuard(None)

    result = guard.verify("garbage", "go live")

    assert not guard.enrolled
    assert result.ok
    assert result.message == "2FA not enrolled"


def test_guard_when_inspected_then_secret_never_exposed(clock: FakeClock) -> None:
    guard = TotpGuard(SECRET, clock=clock, max_failures=2)
    texts = [repr(guard), str(guard.state())]
    texts += [guard.verify(c, "promote").message for c in (code(STEP), wrong(STEP), wrong(STEP))]

    assert all(SECRET not in t for t in texts)
    assert guard.enrolled


def test_init_when_secret_not_base32_then_value_error_without_echo() -> None:
    with pytest.raises(ValueError) as err:  # noqa: PT011 - the message is checked below
        TotpGuard("not base32 at all !!")

    assert "not base32" not in str(err.value).replace("not valid base32", "")


# --- cockpit totp enroll ----------------------------------------------------------------------


def _uri_secret(text: str) -> str:
    match = re.search(r"otpauth://totp/\S*secret=([A-Z2-7]+)", text)
    assert match, text
    return match.group(1)


def test_enroll_when_key_set_then_qr_printed_secret_stored_and_guard_accepts(
    restore_keyring: None, tmp_path: Path
) -> None:
    env = {"COCKPIT_KEYRING_KEY": generate_key()}
    out = io.StringIO()

    rc = totp_cli.enroll(tmp_path, account="alice", out=out, env=env)

    text = out.getvalue()
    assert rc == 0
    assert "█" in text or "▀" in text or "▄" in text  # a terminal QR code was drawn
    secret = totp_cli.load_secret(tmp_path, "alice", env=env)
    assert secret is not None
    assert secret == _uri_secret(text)
    assert secret.encode() not in keystore_path(tmp_path).read_bytes()
    assert TotpGuard(secret).verify(pyotp.TOTP(secret).now(), "go live").ok


def test_enroll_when_key_missing_then_exit_2_and_nothing_written(
    restore_keyring: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()

    rc = totp_cli.enroll(tmp_path, out=out, env={})

    assert rc == 2
    assert "COCKPIT_KEYRING_KEY not set" in capsys.readouterr().err
    assert "otpauth://" not in out.getvalue()
    assert not keystore_path(tmp_path).exists()


def test_enroll_when_already_enrolled_then_refused_unless_force(
    restore_keyring: None, tmp_path: Path
) -> None:
    env = {"COCKPIT_KEYRING_KEY": generate_key()}
    assert totp_cli.enroll(tmp_path, out=io.StringIO(), env=env) == 0
    first = totp_cli.load_secret(tmp_path, env=env)

    assert totp_cli.enroll(tmp_path, out=io.StringIO(), env=env) == 1
    assert totp_cli.load_secret(tmp_path, env=env) == first

    assert totp_cli.enroll(tmp_path, out=io.StringIO(), env=env, force=True) == 0
    assert totp_cli.load_secret(tmp_path, env=env) not in (None, first)


def test_enroll_when_prompt_gets_wrong_codes_then_not_stored(
    restore_keyring: None, tmp_path: Path
) -> None:
    env = {"COCKPIT_KEYRING_KEY": generate_key()}
    out = io.StringIO()

    rc = totp_cli.enroll(tmp_path, out=out, env=env, prompt=lambda _msg: "000000x")

    assert rc == 1
    assert "Not enrolled" in out.getvalue()
    assert totp_cli.load_secret(tmp_path, env=env) is None


def test_enroll_when_prompt_gets_current_code_then_stored(
    restore_keyring: None, tmp_path: Path
) -> None:
    env = {"COCKPIT_KEYRING_KEY": generate_key()}
    out = io.StringIO()

    def prompt(_msg: str) -> str:
        return pyotp.TOTP(_uri_secret(out.getvalue())).now()

    rc = totp_cli.enroll(tmp_path, out=out, env=env, prompt=prompt)

    assert rc == 0
    assert totp_cli.load_secret(tmp_path, env=env) == _uri_secret(out.getvalue())


def test_load_secret_when_no_keystore_then_none_without_key(tmp_path: Path) -> None:
    assert totp_cli.load_secret(tmp_path, env={}) is None


def test_run_when_cli_args_parsed_then_enrolls_in_data_dir(
    restore_keyring: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = generate_key()
    monkeypatch.setenv("COCKPIT_KEYRING_KEY", key)
    parser = argparse.ArgumentParser(prog="cockpit")
    parser.add_argument("--data-dir")
    totp_cli.add_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["--data-dir", str(tmp_path), "totp", "enroll", "--account", "bob"])

    rc = totp_cli.run(args)

    assert rc == 0
    assert (args.cmd, args.totp_cmd) == ("totp", "enroll")
    secret = open_keystore(tmp_path, {"COCKPIT_KEYRING_KEY": key}).get_password(
        "cockpit", "totp:bob"
    )
    assert secret
    assert secret == _uri_secret(capsys.readouterr().out)
