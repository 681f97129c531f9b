"""Whole-process helpers: run the real ``cockpit`` CLI and read what it left behind."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT, clean_env, cockpit_cmd, query  # noqa: F401 (re-export)

FAST_PROFILE = """
kind = "paper"
venue = "paper"
feed = "sim"
offline = true

[risk]
risk_per_trade_pct = 2.0
dupe_intent_window_ms = 0.0

[models]
prob_min = 0.5
min_expected_return = 0.0
decision_interval_ms = 150.0
risk_max = 5.0

[sim]
ticks_per_second = 60.0

[storage]
flush_interval_ms = 50.0

[metrics]
interval_s = 1.0
"""


def fast_profile(tmp_path: Path) -> Path:
    """A paper profile that decides often, so a few seconds yield orders and fills."""
    p = tmp_path / "fast.toml"
    p.write_text(FAST_PROFILE)
    return p


def start(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cockpit_cmd(*args),
        cwd=ROOT,
        env=clean_env(**env),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cockpit_cmd(*args),
        cwd=ROOT,
        env=clean_env(**env),
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def wait_for_log(data_dir: Path, needle: str, timeout: float = 30.0) -> None:
    log = data_dir / "logs" / "engine.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not logged within {timeout}s")


SIGNED_FILLS = (
    "SELECT symbol, sum(CASE side WHEN 'buy' THEN qty_e8 ELSE -qty_e8 END) FROM fills GROUP BY 1"
)


def clear_of_hour_turn(margin_s: float) -> None:
    """Wait out the next hour turn if it falls within ``margin_s`` seconds.

    Backfill and ``data gaps`` read the wall clock (the newest *closed* candle is "now"'s): a
    test asserting exact candle counts or "no gaps" across an hour turn would see one candle more,
    or one missing at the end. Daily candles turn at an hour turn too."""
    left = 3600 - time.time() % 3600
    if left < margin_s:
        time.sleep(left + 2)
