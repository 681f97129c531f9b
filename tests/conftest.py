"""Shared fixtures: a real engine on a real DuckDB file in a temp dir, driven by a SimClock."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def cockpit_cmd(*args: str) -> list[str]:
    return [PY, "-m", "cockpit", *args]


def promtool() -> str:
    """Prometheus's checker (Debian package 'prometheus'); the test fails when it is missing."""
    import shutil

    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: run scripts/install_system_deps.sh (installs Debian 'prometheus')"
        )
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for subprocesses: no profile overrides leaking in from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COCKPIT_", "EXEC_PROFILE"))}
    env.update(extra)
    return env


_ENGINE_THREADS = ("engine", "db-writer")


@pytest.fixture(autouse=True)
def no_engine_threads_left() -> Iterator[None]:
    """A test must stop what it started: an engine or DB-writer thread left running is still
    inside DuckDB at interpreter exit, where CPython unwinds it through C++ and aborts."""
    import threading
    import time

    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 5.0
    while True:
        left = [
            t.name
            for t in threading.enumerate()
            if t.name in _ENGINE_THREADS and t.ident not in before and t.is_alive()
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"test left engine threads running: {left}"


def query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the engine's DB file (read-only) after the engine closed it."""
    import duckdb

    con = duckdb.connect(str(data_dir / "cockpit.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def make_booted(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from engine.config.loader import load_config
    from engine.core.clock import SimClock
    from engine.runtime.boot import boot

    opened: list[Any] = []

    def make(
        overrides: dict[str, object] | None = None,
        strategy: str = "none",
        data_dir: Path | None = None,
        clock: SimClock | None = None,
    ) -> Any:
        ov: dict[str, object] = {
            "paper.latency_ms_mean": 0.0,
            "risk.dupe_intent_window_ms": 0.0,
            "risk.risk_per_trade_pct": 5.0,
            "live.readiness_required": [],  # no reconciler runs in these unit rigs
        }
        ov.update(overrides or {})
        cfg = load_config("paper", env={}, overrides=ov)
        b = boot(cfg, data_dir or tmp_path / "data", clock=clock or SimClock(), strategy=strategy)
        b.engine.log_orders = False
        opened.append(b)
        return b

    yield make
    for b in opened:
        b.close("test teardown")


def feed(
    engine: Any, symbol: str, bid: float, ask: float, size: float = 1.0, dt_ms: float = 10.0
) -> None:
    """One quote, ``dt_ms`` after the previous one on the engine's SimClock."""
    from engine.core.units import to_e8

    clock = engine.clock
    clock.advance_ms(dt_ms)
    engine.on_quote(symbol, to_e8(bid), to_e8(ask), to_e8(size), to_e8(size), clock.now_ns())


def feed_all(engine: Any, prices: dict[str, float] | None = None, spread_bps: float = 1.0) -> None:
    prices = prices or {"BTC/USDT": 65000.0, "ETH/USDT": 3200.0, "SOL/USDT": 150.0}
    for sym, mid in prices.items():
        half = mid * spread_bps / 20_000
        feed(engine, sym, round(mid - half, 2), round(mid + half, 2), dt_ms=1.0)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount real, small tmpfs file systems (a real full disk at a chosen size), unmounted after;
    the test is skipped where mounting is not allowed (not root)."""
    import subprocess

    mounted: list[Path] = []

    def mount(size: str, at: Path | None = None) -> Path:
        mnt = at or tmp_path / f"tmpfs{len(mounted)}"
        mnt.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in reversed(mounted):
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_disk(mnt: Path, leave: int = 0) -> Path:
    """Fill the file system holding ``mnt`` (a file ``filler``), less ``leave`` bytes."""
    filler = mnt / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    if leave:
        os.truncate(filler, max(filler.stat().st_size - leave, 0))
    return filler
