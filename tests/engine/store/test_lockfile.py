"""Tests for engine.lockfile with real second processes (flock is per open file, per process)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store.lockfile import AlreadyRunning, acquire

# A second engine: try to acquire, report the outcome on stdout, hold until stdin closes.
_CHILD = """
import sys
from pathlib import Path
from engine.store.lockfile import AlreadyRunning, acquire
try:
    lock = acquire(Path(sys.argv[1]))
except AlreadyRunning as exc:
    print(f"busy {exc.pid} {exc}", flush=True)
    sys.exit(3)
print(f"acquired {lock.pid}", flush=True)
sys.stdin.read()
"""

_ROOT = str(Path(__file__).resolve().parents[3])


def _spawn(data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": _ROOT}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def test_acquire_when_dir_missing_then_created_0700_and_pid_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lock = acquire(data)
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        path = data / "engine.lock"
        assert path.read_text() == f"{os.getpid()}\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert lock.held
        assert lock.pid == os.getpid()
    finally:
        lock.release()


def test_acquire_when_other_process_holds_then_fails_naming_its_pid(tmp_path: Path) -> None:
    holder = _spawn(tmp_path)
    try:
        assert _first_line(holder) == f"acquired {holder.pid}"
        with pytest.raises(AlreadyRunning) as info:
            acquire(tmp_path)
        assert info.value.pid == holder.pid
        assert str(info.value) == f"engine already running (pid {holder.pid})"
        # The loser must not have erased the holder's pid.
        assert (tmp_path / "engine.lock").read_text() == f"{holder.pid}\n"
    finally:
        holder.communicate("", timeout=10)


def test_acquire_when_this_process_holds_then_second_process_gets_our_pid(tmp_path: Path) -> None:
    lock = acquire(tmp_path)
    try:
        child = _spawn(tmp_path)
        out, err = child.communicate("", timeout=10)
        assert child.returncode == 3, err
        assert out.strip() == f"busy {os.getpid()} engine already running (pid {os.getpid()})"
    finally:
        lock.release()


def test_acquire_when_released_then_new_process_can_acquire(tmp_path: Path) -> None:
    lock = acquire(tmp_path)
    lock.release()
    lock.release()  # idempotent
    assert not lock.held
    child = _spawn(tmp_path)
    try:
        assert _first_line(child) == f"acquired {child.pid}"
        assert (tmp_path / "engine.lock").read_text() == f"{child.pid}\n"
    finally:
        child.communicate("", timeout=10)


def test_acquire_when_holder_sigkilled_then_lock_free_again(tmp_path: Path) -> None:
    holder = _spawn(tmp_path)
    assert _first_line(holder) == f"acquired {holder.pid}"
    with pytest.raises(AlreadyRunning):
        acquire(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    # The stale pid is still in the file, but the kernel dropped the flock with the process.
    assert (tmp_path / "engine.lock").read_text() == f"{holder.pid}\n"
    with acquire(tmp_path) as lock:
        assert lock.held
        assert (tmp_path / "engine.lock").read_text() == f"{os.getpid()}\n"
    assert not lock.held


_SPAWNS_HELPER = """
import subprocess, sys, time
from pathlib import Path
from engine.store.lockfile import acquire
lock = acquire(Path(sys.argv[1]))
# close_fds=False: only O_CLOEXEC stands between the helper and an inherited lock.
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], close_fds=False)
print(helper.pid, flush=True)
time.sleep(60)
"""


def test_acquire_when_holder_dies_leaving_exec_child_then_lock_free(tmp_path: Path) -> None:
    engine = subprocess.Popen(
        [sys.executable, "-c", _SPAWNS_HELPER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": _ROOT},
    )
    helper_pid = int(_first_line(engine))
    try:
        engine.send_signal(signal.SIGKILL)
        engine.wait(timeout=10)
        os.kill(helper_pid, 0)  # the helper outlives the engine
        lock = acquire(tmp_path)
        lock.release()
    finally:
        os.kill(helper_pid, signal.SIGKILL)
        if engine.stdout is not None:
            engine.stdout.close()
