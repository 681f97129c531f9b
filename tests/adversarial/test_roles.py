"""Roles from the shell: a second Unix user on the control socket (SO_PEERCRED), the roles file.

The engine runs as this test's user; the other user is ``nobody``, reached with a real
``setuid`` in the child process (the test needs root to switch users, as an admin would). The
kernel, not the request, says who is calling.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.helpers import fast_profile, query, start
from tests.adversarial.test_control import stop, wait_socket
from tests.conftest import ROOT, clean_env, cockpit_cmd

NOBODY = pwd.getpwnam("nobody")


def _nobody_can_run_project() -> bool:
    """The checkout must be reachable by the second user (a clone under a 0700 temp dir is not)."""
    path = ROOT
    while path != path.parent:
        if not os.stat(path).st_mode & 0o001:
            return False
        path = path.parent
    return True


# only the tests that really switch users carry these marks; the roles-file mode test runs anywhere
second_user = pytest.mark.skipif(
    os.geteuid() != 0 or not _nobody_can_run_project(),
    reason="switching to 'nobody' needs root and a checkout 'nobody' can traverse",
)


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    def drop() -> None:
        os.setgid(NOBODY.pw_gid)
        os.setuid(NOBODY.pw_uid)

    return subprocess.run(
        cockpit_cmd(*args),
        cwd=ROOT,
        env=clean_env(HOME="/nonexistent"),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=drop,
        check=False,
    )


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A dir another user can traverse (pytest's own tmp_path sits under a 0700 parent)."""
    base = Path(tempfile.mkdtemp(prefix="cockpit-roles-", dir="/tmp"))
    os.chmod(base, 0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def engine_with_roles(tmp_path: Path, roles: str | None) -> tuple[subprocess.Popen[str], Path]:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    if roles is not None:
        (d / "roles.toml").write_text(roles)
        os.chmod(d / "roles.toml", 0o600)
    os.chmod(d, 0o711)  # others may traverse (reach the socket), never list or read
    proc = start(
        "--headless",
        "--profile",
        str(fast_profile(tmp_path)),
        "--data-dir",
        str(d),
        "--duration",
        "120",
    )
    wait_socket(proc, d)
    return proc, d


@second_user
def test_second_user_when_listed_as_observer_then_command_denied_in_engine_and_audited(
    shared_tmp: Path,
) -> None:
    proc, d = engine_with_roles(shared_tmp, '[roles]\nnobody = "observer"\n')
    try:
        assert oct((d / "control.sock").stat().st_mode & 0o777) == "0o666"
        res = as_nobody("kill", "--reason", "not mine", "--data-dir", str(d))
        assert res.returncode == 1, res.stderr
        assert "observers cannot act" in res.stderr
        st = as_nobody("status", "--json", "--data-dir", str(d))
        assert st.returncode == 0, st.stderr  # observers see everything
        assert '"kill_switch": false' in st.stdout
    finally:
        stop(proc)
    rows = query(d, "SELECT actor FROM audit_log WHERE kind = 'command_denied'")
    assert rows
    assert rows[-1][0].startswith("unix:nobody(uid 65534,")


@second_user
def test_second_user_when_not_listed_then_refused_at_connection(shared_tmp: Path) -> None:
    proc, d = engine_with_roles(shared_tmp, None)
    try:
        os.chmod(d / "control.sock", 0o666)  # even if someone loosens the socket's mode
        res = as_nobody("kill", "--yes", "--reason", "x", "--data-dir", str(d))
        assert res.returncode == 1
        assert "has no role" in res.stderr
        assert query_kill(d) is False
    finally:
        stop(proc)


def query_kill(d: Path) -> bool:
    from engine.runtime.control import call

    return bool(call(d, "status")["kill_switch"])


def test_roles_file_when_others_may_write_it_then_start_refused_exit_2(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    (d / "roles.toml").write_text('[roles]\nnobody = "operator"\n')
    os.chmod(d / "roles.toml", 0o666)
    res = subprocess.run(
        cockpit_cmd("--headless", "--data-dir", str(d), "--duration", "5"),
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2, res.stderr
    assert "roles.toml" in res.stderr
    assert "chmod 600" in res.stderr
    assert "Traceback" not in res.stderr
