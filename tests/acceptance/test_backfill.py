"""`cockpit data backfill` against the loopback venue simulator in its own process: a hole found
and repaired, a rerun that fetches only what is missing, an outage beyond the retry budget (data
kept, a clear line, failures counted), a 429 and a timeout ridden out."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.store.candles import INTERVAL_US, align
from engine.venues.venue_setup import VenueProcess
from tests.acceptance.helpers import clear_of_hour_turn, run

H = INTERVAL_US["1h"]


class Venue:
    def __init__(self, state: Path) -> None:
        self.proc = VenueProcess(state, seed=42, ticks_per_second=10.0, max_lifetime_s=300.0)
        self.port = asyncio.run(self.proc.start())
        self.url = f"http://127.0.0.1:{self.port}"

    def admin(self, action: str, payload: dict[str, Any]) -> Any:
        return asyncio.run(self.proc.admin(action, payload))

    def clear_gaps(self) -> None:
        req = urllib.request.Request(f"{self.url}/admin/klines/gaps", method="DELETE")
        urllib.request.urlopen(req, timeout=10).read()


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[Venue]:
    v = Venue(tmp_path / "venue")
    yield v
    asyncio.run(v.proc.stop())


def _backfill(
    d: Path, v: Venue, interval: str, since: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return run("data", "backfill", "--interval", interval, "--since", since, "--venue-url", v.url,
               "--profile", "testnet", "--data-dir", str(d), "--json", **env)  # fmt: skip


def _days_ago(n: int) -> str:
    import datetime as dt

    return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=n)).isoformat()


def _market(d: Path, sql: str) -> list[Any]:
    import duckdb

    con = duckdb.connect(str(d / "market" / "candles.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_backfill_when_venue_has_hole_then_gap_found_and_rerun_repairs_only_it(
    tmp_path: Path, venue: Venue
) -> None:
    d = tmp_path / "d"
    clear_of_hour_turn(120)  # "only the 4 missing" must not straddle a new candle
    last = align(time.time_ns() // 1000, "1h") - H
    hole = (last - 40 * H, last - 37 * H)  # four candles, a day and a half ago
    venue.admin("klines/gaps", {"symbol": "ETH/USDT", "interval": "1h",
                                "start_ms": hole[0] // 1000, "end_ms": hole[1] // 1000})  # fmt: skip
    first = _backfill(d, venue, "1h", "2026-11-01")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["rows"] > 1000
    assert json.loads(first.stdout)["missing"] == 4  # the run says what it could not get
    daily = _backfill(d, venue, "1d", "2026-01-01")
    assert daily.returncode == 0, daily.stderr
    gaps = run("data", "gaps", "--interval", "all", "--days", "5", "--data-dir", str(d), "--json",
               "--profile", "testnet")  # fmt: skip
    assert gaps.returncode == 1, gaps.stdout
    found = json.loads(gaps.stdout)["gaps"]
    assert [(g["symbol"], g["interval"], g["from_us"], g["to_us"]) for g in found] == [
        ("ETH/USDT", "1h", *hole)
    ]
    venue.clear_gaps()  # the exchange has the candles again
    again = _backfill(d, venue, "1h", "2026-11-01")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rows"] == 4  # only what was missing
    assert json.loads(again.stdout)["missing"] == 0
    assert run("data", "gaps", "--interval", "1h", "--days", "5", "--data-dir", str(d),
               "--profile", "testnet").returncode == 0  # fmt: skip


def test_backfill_when_exchange_down_then_exit_1_data_kept_failures_counted(
    tmp_path: Path, venue: Venue
) -> None:
    d = tmp_path / "d"
    ok = _backfill(d, venue, "1h", "2026-11-25")
    assert ok.returncode == 0, ok.stderr
    held = _market(d, "SELECT count(*) FROM candles")[0][0]
    venue.admin("inject", {"kind": "http_error", "status": 503, "method": "GET",
                           "path": "/api/v3/klines", "count": 50})  # fmt: skip
    down = _backfill(d, venue, "1h", "2026-11-01")
    assert down.returncode == 1
    out = json.loads(down.stdout)
    assert out["status"] == "failed"
    assert out["failures"] == {"unavailable": 5}
    assert "run the same command again to resume" in out["message"]
    assert "Traceback" not in down.stderr
    assert _market(d, "SELECT count(*) FROM candles")[0][0] == held  # the last good data kept
    prom = d / "metrics" / "ingestion_1h.prom"
    assert 'ingestion_failure_total{interval="1h",reason="unavailable"} 5.0' in prom.read_text()
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=prom.read_text(),
                               capture_output=True, text=True, check=False)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    status = json.loads(run("data", "status", "--data-dir", str(d), "--json").stdout)["runs"]
    assert (status[0]["status"], status[0]["failures"]) == ("failed", 5)


def test_backfill_when_429_then_waits_retry_after_and_completes(
    tmp_path: Path, venue: Venue
) -> None:
    d = tmp_path / "d"
    venue.admin("inject", {"kind": "binance_error", "status": 429, "code": -1003,
                           "msg": "Too many requests", "retry_after_s": 5, "method": "GET",
                           "path": "/api/v3/klines", "count": 1})  # fmt: skip
    t0 = time.monotonic()
    res = _backfill(d, venue, "4h", "2026-10-01")
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["failures"] == {"rate_limited": 1}
    assert out["rows"] > 0
    assert elapsed >= 5  # Retry-After: 5 honoured (the backoff alone would be ~0.5 s)
    assert not (d / "cockpit.duckdb").exists()  # the live DB is never involved


def test_backfill_when_request_times_out_then_retried_and_complete(
    tmp_path: Path, venue: Venue
) -> None:
    d = tmp_path / "d"
    venue.admin("inject", {"kind": "delay", "delay_ms": 4000, "method": "GET",
                           "path": "/api/v3/klines", "count": 1})  # fmt: skip
    res = _backfill(d, venue, "1d", "2026-06-01")  # exchange.timeout_ms 3000 < the 4 s delay
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["failures"] == {"timeout": 1}
    assert out["rows"] > 0


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        (2, "abc", "high"),  # text where a price goes
        (4, "NaN", "close nan"),
        (3, "-5", "low -5.0"),
        (5, None, "volume None"),
        (2, "0.00000001", "do not hold"),  # a high below the close
        (0, "off-grid", "not on the 1h grid"),  # an open time one second past the hour
    ],
)
def test_backfill_when_exchange_sends_bad_candles_then_refused_named_and_left_missing(
    tmp_path: Path, venue: Venue, column: int, value: object, shown: str
) -> None:
    d = tmp_path / "d"
    clear_of_hour_turn(60)
    last = align(time.time_ns() // 1000, "1h") - H
    bad = (last - 20 * H, last - 18 * H)  # three candles
    if value == "off-grid":
        value = bad[0] // 1000 + 1000
    venue.admin("klines/corrupt", {"symbol": "ETH/USDT", "interval": "1h", "start_ms": bad[0]
                                   // 1000, "end_ms": bad[1] // 1000, "column": column,
                                   "value": value})  # fmt: skip
    res = _backfill(d, venue, "1h", _days_ago(3))
    assert res.returncode == 1, res.stderr  # was: stored, or a crash mid-run
    doc = json.loads(res.stdout)
    assert doc["status"] == "bad_data"
    assert doc["failures"] == {"bad_data": 3}
    assert "ETH/USDT 1h" in doc["message"]
    assert shown in doc["message"]
    assert "Traceback" not in res.stderr
    held = _market(d, "SELECT open_us FROM candles WHERE symbol = 'ETH/USDT' "
                        f"AND open_us BETWEEN {bad[0]} AND {bad[1]}")  # fmt: skip
    assert held == []
    gaps = run("data", "gaps", "--interval", "1h", "--days", "2", "--data-dir", str(d), "--json",
               "--profile", "testnet")  # fmt: skip
    found = [(g["symbol"], g["from_us"], g["to_us"]) for g in json.loads(gaps.stdout)["gaps"]]
    assert found == [("ETH/USDT", *bad)]
    req = urllib.request.Request(f"{venue.url}/admin/klines/corrupt", method="DELETE")
    urllib.request.urlopen(req, timeout=10).read()  # the exchange serves good data again
    again = _backfill(d, venue, "1h", _days_ago(3))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rows"] == 3  # exactly the refused ones
