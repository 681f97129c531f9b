"""Curated Parquet versions from a real market DB: features without look-ahead, versions never
overwritten, the newest two kept, manifest with a content hash, and clear errors."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import polars as pl
import pytest

from engine.store.candles import INTERVAL_US, insert_candles, open_market_db
from engine.strategy.curate import FEATURES, CurateError, curate, features, versions

H = INTERVAL_US["1h"]
T0 = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp() * 1e6)
DAY = dt.date(2026, 12, 4)


def _fill(data_dir: Path, n: int = 120) -> None:
    con = open_market_db(data_dir)
    for k, sym in enumerate(("BTC/USDT", "ETH/USDT")):
        rows = []
        for i in range(n):
            c = 100 * (1 + k) * math.exp(0.01 * math.sin(i / 5) + 0.001 * i)
            rows.append([(T0 + i * H) // 1000, c * 0.999, c * 1.004, c * 0.995, c, 10 + i % 7])
        insert_candles(con, sym, "1h", rows)
    con.close()


def test_curate_when_candles_then_version_latest_manifest_and_no_lookahead(tmp_path: Path) -> None:
    _fill(tmp_path)
    v = curate(tmp_path, "1h", "base", DAY)
    folder = tmp_path / "curated" / "1h"
    assert v["file"] == "20261204_base.parquet"
    table = pl.read_parquet(folder / v["file"])
    assert table.height == v["rows"] > 0
    assert set(FEATURES) <= set(table.columns)
    assert table.select(list(FEATURES)).null_count().sum_horizontal().item() == 0
    assert (folder / "latest.parquet").read_bytes() == (folder / v["file"]).read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["latest"] == v["file"]
    assert manifest["versions"][0]["sha256"] == v["sha256"]
    # no look-ahead: features of the first 60 candles do not change when later candles change
    con = open_market_db(tmp_path)
    head = con.sql("SELECT * FROM candles WHERE open_us < ? ORDER BY symbol, open_us",
                   params=[T0 + 60 * H]).pl()  # fmt: skip
    con.close()
    cols = ["symbol", "open_us", *FEATURES]
    early = table.filter(pl.col("open_us") < T0 + 60 * H).select(cols)
    recomputed = features(
        head.select(
            "symbol",
            "open_us",
            (pl.col("open_e8") / 1e8).alias("open"),
            (pl.col("high_e8") / 1e8).alias("high"),
            (pl.col("low_e8") / 1e8).alias("low"),
            (pl.col("close_e8") / 1e8).alias("close"),
            (pl.col("volume_e8") / 1e8).alias("volume"),
        )
    ).select(cols)
    diff = (early.select(FEATURES) - recomputed.select(FEATURES)).select(pl.all().abs().max())
    assert max(diff.row(0)) < 1e-12, diff


def test_curate_when_run_again_then_new_version_and_two_newest_kept(tmp_path: Path) -> None:
    _fill(tmp_path)
    names = [curate(tmp_path, "1h", "base", DAY)["file"] for _ in range(3)]
    assert names == ["20261204_base.parquet", "20261204_base-2.parquet", "20261204_base-3.parquet"]
    listed = versions(tmp_path)
    assert [v["archive"] for v in listed] == [True, False, False]
    assert all((tmp_path / "curated" / "1h" / n).exists() for n in names)  # nothing deleted
    assert len({v["sha256"] for v in listed}) == 1  # same candles, same content


def test_curate_when_no_data_or_bad_tag_then_one_line_with_remedy(tmp_path: Path) -> None:
    with pytest.raises(CurateError, match="cockpit data backfill --interval 1h"):
        curate(tmp_path, "1h", "x", DAY)
    _fill(tmp_path)
    with pytest.raises(CurateError, match="--tag"):
        curate(tmp_path, "1h", "../evil", DAY)
    with pytest.raises(CurateError, match="cockpit data backfill --interval 4h"):
        curate(tmp_path, "4h", "x", DAY)
