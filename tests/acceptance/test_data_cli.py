"""`cockpit data gaps|status|curate|versions` from a shell, on a real market DB."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.store.candles import INTERVAL_US, align, insert_candles, open_market_db, record_run
from tests.acceptance.helpers import clear_of_hour_turn, run

H = INTERVAL_US["1h"]


def _fill(d: Path, hours: int, skip: range = range(0)) -> int:
    now = time.time_ns() // 1000
    last = align(now, "1h") - H  # the newest closed candle
    con = open_market_db(d)
    for sym in ("BTC/USDT", "ETH/USDT", "SOL/USDT"):
        rows = [
            [(last - i * H) // 1000, 100 + i % 5, 102 + i % 3, 99, 101 + (i % 7) * 0.1, 5 + i % 4]
            for i in range(hours)
            if i not in skip or sym != "ETH/USDT"
        ]
        insert_candles(con, sym, "1h", rows)
    record_run(con, {"run_id": "t", "interval": "1h", "started_us": now, "finished_us": now,
                     "symbols": ["BTC/USDT"], "rows": hours, "failures": 2, "status": "ok",
                     "message": ""})  # fmt: skip
    con.close()
    return last


def test_gaps_when_hole_then_exit_1_with_range_and_0_when_complete(tmp_path: Path) -> None:
    d = tmp_path / "d"
    none = run("data", "gaps", "--interval", "1h", "--days", "1", "--data-dir", str(d))
    assert none.returncode == 1
    assert "cockpit data backfill" in none.stderr
    clear_of_hour_turn(30)  # "no gaps" is as of now's newest closed candle
    last = _fill(d, 72, skip=range(30, 33))
    res = run("data", "gaps", "--interval", "1h", "--days", "2", "--data-dir", str(d), "--json")
    assert res.returncode == 1, res.stderr
    found = json.loads(res.stdout)["gaps"]
    assert [(g["symbol"], g["candles"]) for g in found] == [("ETH/USDT", 3)]
    assert found[0]["from_us"] == last - 32 * H
    assert found[0]["to_us"] == last - 30 * H
    ok = run("data", "gaps", "--interval", "1h", "--days", "1", "--data-dir", str(d))
    assert ok.returncode == 0, ok.stdout
    assert "no gaps" in ok.stdout
    bad = run("data", "gaps", "--interval", "2h", "--days", "1", "--data-dir", str(d))
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    status = run("data", "status", "--data-dir", str(d), "--json")
    (last_run,) = json.loads(status.stdout)["runs"]
    assert (last_run["interval"], last_run["failures"], last_run["candles"]) == ("1h", 2, 213)


def test_curate_and_versions_from_shell(tmp_path: Path) -> None:
    d = tmp_path / "d"
    missing = run("data", "curate", "--interval", "1h", "--data-dir", str(d))
    assert missing.returncode == 2
    assert "cockpit data backfill --interval 1h" in missing.stderr
    _fill(d, 100)
    for _ in range(3):
        res = run("data", "curate", "--interval", "1h", "--tag", "t1", "--data-dir", str(d))
        assert res.returncode == 0, res.stderr
    listed = json.loads(run("data", "versions", "--data-dir", str(d), "--json").stdout)["versions"]
    assert [v["archive"] for v in listed] == [True, False, False]
    assert (d / "curated" / "1h" / "latest.parquet").exists()


def test_data_commands_when_a_backfill_holds_the_db_then_exit_3_one_line(tmp_path: Path) -> None:
    d = tmp_path / "d"
    _fill(d, 30)
    holder = open_market_db(d)  # this process plays the running backfill (DuckDB: one process)
    try:
        for cmd in (["gaps", "--interval", "1h", "--days", "1"], ["status"],
                    ["curate", "--interval", "1h"], ["backfill", "--interval", "1h"]):  # fmt: skip
            res = run("data", *cmd, "--data-dir", str(d))
            assert res.returncode in (2, 3), (cmd, res.returncode)
            assert "in use by another process" in res.stderr, cmd
            assert "Traceback" not in res.stderr, cmd
    finally:
        holder.close()


def test_data_commands_when_dates_out_of_any_exchange_history_then_one_line_exit_2(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    _fill(d, 3)
    for cmd, needle in (
        (
            ["gaps", "--interval", "1h", "--days", "99999999"],
            "between 1 and 5000",
        ),  # was: a traceback
        (["backfill", "--interval", "1h", "--since", "0001-01-01"], "no exchange has candles"),
    ):
        res = run("data", *cmd, "--data-dir", str(d))
        assert res.returncode == 2, (cmd, res.stderr)
        assert needle in res.stderr, cmd
        assert res.stderr.count("\n") == 1, res.stderr


def test_curate_when_history_short_or_flat_then_one_line_naming_which(tmp_path: Path) -> None:
    short = tmp_path / "short"
    _fill(short, 20)
    res = run("data", "curate", "--interval", "1h", "--data-dir", str(short))
    assert res.returncode == 2, res.stderr
    assert "too few 1h candles" in res.stderr
    assert "(20 for the best-covered symbol)" in res.stderr
    flat = tmp_path / "flat"
    con = open_market_db(flat)
    last = align(time.time_ns() // 1000, "1h") - H
    for sym in ("BTC/USDT", "ETH/USDT"):  # a halted market: the same candle for a month
        insert_candles(
            con, sym, "1h", [[(last - i * H) // 1000, 1, 1, 1, 1, 10] for i in range(720)]
        )
    con.close()
    res = run("data", "curate", "--interval", "1h", "--data-dir", str(flat))
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1
    assert (
        "720 1h candles, but no row where every feature is defined" in res.stderr
    )  # was: "too few"
    assert not (flat / "curated" / "1h" / "latest.parquet").exists()
