"""The crash harness's processes and logs: the state of a run, the engine and venue subprocesses
(each in its own process group, always reaped), the venue's admin API, and what a run's log says.

Shared by ``crash_harness.py`` (the SIGKILL trials) and ``harness_scenarios.py`` (the caps and rate-limit
slow-fill and rate-limit scenarios).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    work: Path
    data: Path
    profile: Path
    env: dict[str, str]
    rng: random.Random
    deadline: float
    kills: Counter[str] = field(default_factory=Counter)
    fallback_kills: int = 0
    submitted: int = 0
    trials_with_orders: int = 0
    trials_blocked: int = 0
    last_clean_log: Path | None = None
    halts: set[str] = field(default_factory=set)
    start_failures: list[str] = field(default_factory=list)
    clean_failures: list[str] = field(default_factory=list)


def engine_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COCKPIT_", "NET_SIM_", "EXEC_PROFILE", "LIVE_"))
    }
    env.update(SAFE_MODE="0", API_KEY="sim-key", API_SECRET="sim-secret", PYTHONUNBUFFERED="1")
    return env


def kill(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGKILL) -> None:
    """Signal one child (and its own process group) by id; reap it."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def start_venue(
    work: Path, seed: int, lifetime_s: float, tps: float
) -> tuple[subprocess.Popen[Any], int]:
    port_file = work / "venue.port"
    port_file.unlink(missing_ok=True)
    log = (work / "venue.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "venuesim",
            "--state",
            str(work / "venue"),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--max-lifetime",
            str(lifetime_s),
            "--seed",
            str(seed),
            "--ticks-per-second",
            str(tps),
            "--exit-with-parent",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    t_end = time.monotonic() + 30
    while time.monotonic() < t_end:
        if port_file.exists():
            return proc, int(port_file.read_text().strip())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    kill(proc)
    raise RuntimeError(f"venue simulator did not start; see {work / 'venue.log'}")


def spawn(run: Run, tag: str, duration: float, crash_at: str) -> tuple[subprocess.Popen[Any], Path]:
    out = run.work / "runs" / f"{tag}.log"
    env = dict(run.env)
    if crash_at:
        env["COCKPIT_CRASH_AT"] = crash_at
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cockpit",
                "--headless",
                "--profile",
                str(run.profile),
                "--duration",
                str(duration),
                "--data-dir",
                str(run.data),
                "--seed",
                "7",
            ],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, out


def running(out: Path) -> bool:
    try:
        return '"msg": "engine running' in out.read_text(errors="replace")
    except OSError:
        return False


def tail(out: Path, n: int = 6) -> str:
    """The last lines of a run's output, without the interpreter's leak report after a crash."""
    try:
        lines = out.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    cut = next((k for k, x in enumerate(lines) if x.startswith("nanobind:")), len(lines))
    return " | ".join(lines[:cut][-n:])[-800:]


def scan(out: Path) -> dict[str, Any]:
    """What a run's log says: orders submitted, and the blocking gates / halts it ran into."""
    try:
        text = out.read_text(errors="replace")
    except OSError:
        text = ""
    blocked = sorted(
        {g for g in ("kill_switch", "safe_mode") if f'"msg": "gate {g} active' in text}
    )
    halts = sorted(
        {
            line.split('"msg": "HALT: ', 1)[1].split('"', 1)[0]
            for line in text.splitlines()
            if '"msg": "HALT: ' in line
        }
    )
    return {
        "submitted": text.count('"msg": "order submitted'),
        "blocked": blocked,
        "halted": bool(halts),
        "halts": halts,
    }


def venue_state(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/state", timeout=30) as r:
        return dict(json.loads(r.read()))


def admin(port: int, action: str, payload: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/{action}",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - a fixed http://127.0.0.1 URL
        return json.loads(r.read())
