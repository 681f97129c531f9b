"""Report ZIP and regulatory CSV on a real DuckDB file with the real schema: day windows, PnL
carried over midnight, determinism, and the records a regulator needs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import duckdb
import pytest

from engine.runtime.regulatory import COLUMNS, write_regulatory
from engine.runtime.reports import day_bounds, parse_day, report_target, write_report
from engine.store.writer import migrate, open_db
from engine.trading.positions import Position

DAY = dt.date(2026, 12, 3)
START, END = day_bounds(DAY)
H = 3_600_000_000
PX = 100 * 10**8


def _order(con, n: int, ts: int, side: str, qty: int, status: str, filled: int, rev: int) -> None:
    con.execute(
        "INSERT INTO orders_log BY NAME SELECT ? AS client_order_id, ? AS decision_id, "
        "CASE WHEN ? > 0 THEN CAST(? AS VARCHAR) END AS venue_order_id, 'BTC/USDT' AS symbol, "
        "? AS side, 'market' AS order_type, ? AS qty_e8, 0 AS limit_price_e8, ? AS filled_qty_e8, "
        "0 AS avg_price_e8, ? AS status, '' AS reason, 's' AS strategy, 'trend_v1' AS model_id, "
        "'champion' AS routed, ? AS arrival_mid_e8, ? AS created_us, ? AS submitted_us, "
        "? AS updated_us, ? AS acked_us, ? AS rev",
        [
            f"c{n}",
            f"d{n}",
            filled,
            n,
            side,
            qty,
            filled,
            status,
            PX,
            ts,
            ts + 100,
            ts + 900,
            ts + 500 if status != "rejected" else None,
            rev,
        ],
    )
    con.execute(
        "INSERT INTO decisions BY NAME SELECT ? AS decision_id, ? AS ts_us, 'BTC/USDT' AS symbol, "
        "'trend_v1' AS model_id, 'LONG' AS action",
        [f"d{n}", ts - 50],
    )


def _fill(con, n: int, ts: int, side: str, qty: int, px: int) -> None:
    con.execute(
        "INSERT INTO fills BY NAME SELECT ? AS trade_id, ? AS client_order_id, ? AS "
        "venue_order_id, 'BTC/USDT' AS symbol, ? AS side, ? AS qty_e8, ? AS price_e8, 7 AS fee_e8, "
        "'taker' AS liquidity, ? AS ts_us, 1.5 AS slippage_bps, 2.0 AS place_latency_ms, "
        "0 AS fee_base_e8",
        [f"t{n}", f"c{n}", str(n), side, qty, px, ts],
    )


FILLS = [  # n, ts, side, qty, px: two the day before (position carried), three on DAY
    (1, START - 5 * H, "buy", 2 * 10**8, 100 * 10**8),
    (2, START - 2 * H, "buy", 2 * 10**8, 110 * 10**8),
    (3, START + 1 * H, "sell", 1 * 10**8, 120 * 10**8),
    (4, START + 2 * H, "sell", 4 * 10**8, 90 * 10**8),  # flips short
    (5, START + 3 * H, "buy", 5 * 10**7, 95 * 10**8),
    (6, END + 1 * H, "buy", 1 * 10**8, 50 * 10**8),  # the day after: never in the report
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cockpit.duckdb"
    con = open_db(path)
    migrate(con, 1)
    for n, ts, side, qty, px in FILLS:
        _order(con, n, ts - 1000, side, qty, "filled", qty, 1)
        _fill(con, n, ts, side, qty, px)
    _order(con, 9, START + 4 * H, "buy", 10**8, "rejected", 0, 1)  # never filled: an order record
    con.close()
    return path


def _csv(z: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(z.read(name).decode())))


def test_report_when_fills_span_days_then_only_the_day_and_pnl_carries_position(
    db: Path, tmp_path: Path
) -> None:
    con = duckdb.connect(str(db), read_only=True)
    out = tmp_path / "reports" / "r.zip"
    res = write_report(con, DAY, out, {"profile": "t", "generated_at_us": 1})
    con.close()
    z = zipfile.ZipFile(out)
    fills = _csv(z, "fills.csv")
    assert [f["trade_id"] for f in fills] == ["t3", "t4", "t5"]
    assert [o["client_order_id"] for o in _csv(z, "orders.csv")] == ["c3", "c4", "c5", "c9"]
    # expected PnL: the engine's own Position over every fill up to the day's end
    pos, realized_day = Position("BTC/USDT"), 0
    for _n, ts, side, qty, px in FILLS[:5]:
        r = pos.apply_fill(side, qty, px, 7, ts)
        realized_day += r if ts >= START else 0
    (row,) = _csv(z, "pnl.csv")
    assert row["realized_pnl"] == f"{realized_day / 1e8:.8f}"
    assert realized_day != 0
    assert row["position_qty"] == "-0.50000000"
    assert row["mark_price"] == "95.00000000"
    assert row["unrealized_pnl"] == f"{pos.unrealized_e8(95 * 10**8) / 1e8:.8f}"
    assert row["fees_quote"] == "0.00000021"
    assert row["turnover"] == f"{(120 + 360 + 47.5):.8f}"
    tca = _csv(z, "tca.csv")
    assert [t["fill_ratio"] for t in tca] == ["1.0", "1.0", "1.0"]
    assert tca[0]["arrival_mid"] == "100.00000000"
    meta = json.loads(z.read("metadata.json"))
    assert meta["rows"] == res["rows"]
    assert meta["window_us"] == [START, END]
    assert meta["audit_head"]["seq"] == 0


def test_report_when_written_twice_then_csv_entries_identical_and_no_temp_left(
    db: Path, tmp_path: Path
) -> None:
    outs = []
    for i in range(2):
        con = duckdb.connect(str(db), read_only=True)
        outs.append(tmp_path / "reports" / f"r{i}.zip")
        write_report(con, DAY, outs[-1], {"generated_at_us": i})
        con.close()
    a, b = (zipfile.ZipFile(o) for o in outs)
    assert a.namelist() == b.namelist()
    for info_a, info_b in zip(a.infolist(), b.infolist(), strict=True):
        assert info_a.date_time == info_b.date_time == (2026, 12, 3, 0, 0, 0)
        if info_a.filename != "metadata.json":
            assert a.read(info_a) == b.read(info_b), info_a.filename
    ma, mb = json.loads(a.read("metadata.json")), json.loads(b.read("metadata.json"))
    assert ma.pop("generated_at_us") != mb.pop("generated_at_us")
    assert ma == mb
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["r0.zip", "r1.zip"]


def test_regulatory_when_day_has_fills_and_a_rejected_order_then_every_record_and_timestamp(
    db: Path, tmp_path: Path
) -> None:
    con = duckdb.connect(str(db), read_only=True)
    out = tmp_path / "reg.csv"
    res = write_regulatory(con, DAY, out, venue="binance", dea=True)
    con.close()
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert res["rows"] == len(rows) == 4
    assert [r["record_type"] for r in rows] == ["execution"] * 3 + ["order"]
    for r in rows[:3]:
        assert r["execution_id"] == f"{r['venue_order_id']}:{r['trade_id']}"
        assert r["dea"] == "true"
        assert r["venue"] == "binance"
        assert r["model_id"] == "trend_v1"
        stamps = [int(r[k]) for k in ("decision_ts_us", "submit_ts_us", "ack_ts_us")]
        assert stamps == sorted(stamps)
        assert int(r["fill_ts_us"]) >= START
    rejected = rows[3]
    assert (rejected["client_order_id"], rejected["order_status"]) == ("c9", "rejected")
    assert rejected["ack_ts_us"] == rejected["fill_ts_us"] == ""
    assert rejected["decision_ts_us"]
    assert rejected["submit_ts_us"]


def test_report_target_when_out_is_the_live_db_or_an_existing_file_then_refused(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    (d / "reports").mkdir(parents=True)
    (d / "cockpit.duckdb").write_bytes(b"live")
    other = tmp_path / "keep.txt"
    other.write_text("mine")
    for bad in (d / "cockpit.duckdb", d / "cockpit.duckdb.wal", d / "audit" / "head.json", other):
        with pytest.raises(ValueError, match="--out"):
            report_target(d, str(bad), d / "reports" / "x.zip")
    with pytest.raises(ValueError, match="absolute"):
        report_target(d, "rel.zip", d / "x")
    assert report_target(d, str(d / "reports" / "a.zip"), d / "x") == d / "reports" / "a.zip"
    assert (d / "cockpit.duckdb").read_bytes() == b"live"


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday-ish", "", "2026/12/03"])
def test_parse_day_when_bad_then_one_line_naming_value(bad: str) -> None:
    with pytest.raises(ValueError, match="expected YYYY-MM-DD") as exc:
        parse_day(bad, DAY)
    assert repr(bad) in str(exc.value)
    assert parse_day("yesterday", DAY) == dt.date(2026, 12, 2)
