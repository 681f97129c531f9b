"""The candle inference path: plain-Python features equal curate's polars features, live quotes
cut into the same candles, and a trained bundle decides (and refuses) as its files say."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import polars as pl
import pytest

from engine.strategy.candle_model import (
    CANDLE_FEATURES,
    CandleBuilder,
    CandleStrategyModel,
    ModelFileError,
    is_trained_id,
    load_bundle,
    window_features,
)
from engine.strategy.curate import FEATURES, features
from engine.strategy.features import FeatureState
from engine.strategy.signal_models import ModelParams
from engine.strategy.strategies import why_no_trade
from tests.research.test_training import _curated


def _candles(n: int, seed: int) -> pl.DataFrame:
    rnd = random.Random(seed)
    c, rows = 100.0, []
    for i in range(n):
        o = c
        c = o * math.exp(rnd.gauss(0, 0.01))
        rows.append(("BTC/USDT", i, o, max(o, c) * 1.002, min(o, c) * 0.998, c, rnd.uniform(1, 9)))
    return pl.DataFrame(rows, orient="row",
                        schema=["symbol", "open_us", "open", "high", "low", "close", "volume"])  # fmt: skip


def test_window_features_equal_curated_polars_features() -> None:
    assert CANDLE_FEATURES == FEATURES
    frame = _candles(80, seed=3)
    table = features(frame)
    closes, highs, lows, vols = (frame[c].to_list() for c in ("close", "high", "low", "volume"))
    for row in table.iter_rows(named=True):
        i = row["open_us"] + 1
        got = window_features(closes[:i], highs[:i], lows[:i], vols[:i])
        assert got is not None
        for name, value in zip(CANDLE_FEATURES, got, strict=True):
            assert value == pytest.approx(row[name], rel=1e-9, abs=1e-12), name
    assert window_features(closes[:24], highs[:24], lows[:24], vols[:24]) is None


def test_candle_builder_cuts_at_interval_and_counts_volume() -> None:
    b = CandleBuilder(1_000)
    assert b.update(10.0, 100, 5.0) is None
    assert b.update(10.5, 1_000, 6.0) is None  # the partial first candle (from t=100) is dropped
    assert b.update(12.0, 1_500, 7.0) is None
    assert b.update(9.0, 1_900, 8.0) is None
    done = b.update(11.0, 2_200, 20.0)
    # volume: trades since the last quote of the candle before (5 -> 8)
    assert done == (1_000, 12.0, 9.0, 9.0, 3.0)
    edge = CandleBuilder(1_000)
    edge.update(1.0, 0, 3.0)
    assert edge.update(2.0, 1_000, 4.0) == (0, 1.0, 1.0, 1.0, 0.0)  # began on the boundary


def test_bundle_decides_and_names_the_threshold_it_failed(tmp_path: Path) -> None:
    from research.training import train

    _curated(tmp_path)
    for kind in ("trend", "return", "risk"):
        train(tmp_path, kind, "1h", now_us=1)
    assert is_trained_id("ml_1h_v1")
    assert not is_trained_id("trend_v1")
    bundle = load_bundle(tmp_path / "models", "ml_1h_v1")
    table = pl.read_parquet(tmp_path / "curated" / "1h" / "latest.parquet")
    x = tuple(float(table[name][40]) for name in CANDLE_FEATURES)
    loose = bundle.params(ModelParams(0.0, 0.0, 0.0))
    d = bundle.decide_features("BTC/USDT", x, 1, "d1", loose)
    assert d.model_id == "ml_1h_v1"
    assert d.action in ("LONG", "SHORT", "NO_TRADE")
    strict = bundle.params(ModelParams(0.995, 0.0, 0.0))
    d2 = bundle.decide_features("BTC/USDT", x, 1, "d2", strict)
    assert d2.action == "NO_TRADE"
    assert "PROB_MIN" in why_no_trade(d2, strict, 0.3)
    nan = bundle.decide_features("BTC/USDT", (math.nan,) * 7, 1, "d3", loose)
    assert nan.action == "NO_TRADE"
    assert nan.regime_reason == "features missing (NaN)"
    live = CandleStrategyModel(bundle)
    warm = live.decide("BTC/USDT", FeatureState(), 1, "d4", ModelParams(0.0, 0.0, 1.0))
    assert warm.action == "NO_TRADE"
    assert "warming up 0/25 1h candles" in warm.regime_reason


def test_bundle_file_damaged_is_one_line(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    with pytest.raises(ModelFileError, match="model file not found"):
        load_bundle(models, "ml_1h_v9")
    (models / "ml_1h_v1.json").write_text(json.dumps({"members": {}}))
    with pytest.raises(ModelFileError, match="malformed"):
        load_bundle(models, "ml_1h_v1")


def test_seed_from_market_takes_a_contiguous_run_ending_at_the_newest_closed_candle(
    tmp_path: Path,
) -> None:
    from engine.store.candles import open_market_db
    from engine.strategy.candle_model import seed_from_market
    from research.training import train
    from tests.research.test_training import T0, H

    _curated(tmp_path)  # 400 hourly candles of BTC/USDT and ETH/USDT from T0
    for kind in ("trend", "return", "risk"):
        train(tmp_path, kind, "1h", now_us=1)
    bundle = load_bundle(tmp_path / "models", "ml_1h_v1")
    syms = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    now = T0 + 400 * H + 5  # just after the newest candle closed
    live = CandleStrategyModel(bundle)
    assert seed_from_market(live, tmp_path, syms, now) == {"BTC/USDT": 25, "ETH/USDT": 25}
    table = pl.read_parquet(tmp_path / "curated" / "1h" / "latest.parquet")
    last = table.filter(pl.col("symbol") == "BTC/USDT").sort("open_us").row(-1, named=True)
    got = live.windows["BTC/USDT"].features()
    assert got is not None
    assert list(got) == pytest.approx([last[n] for n in CANDLE_FEATURES], rel=1e-6)
    d = live.decide("BTC/USDT", FeatureState(), now, "d", ModelParams(0.0, 0.0, 1.0))
    assert "warming up" not in d.regime_reason  # decides at once, not in 25 hours
    live.observe("BTC/USDT", 150.0, now + 10, 0.0)  # the candle in progress is kept...
    live.observe("BTC/USDT", 151.0, now + H, 0.0)
    assert live.windows["BTC/USDT"].closes[-1] == 150.0  # ...and appended when it closes
    stale = CandleStrategyModel(bundle)
    assert seed_from_market(stale, tmp_path, syms, now + H) == {}  # the newest is missing
    con = open_market_db(tmp_path)
    con.execute("DELETE FROM candles WHERE symbol = 'ETH/USDT' AND open_us = ?", [T0 + 390 * H])
    con.close()
    holed = CandleStrategyModel(bundle)
    assert seed_from_market(holed, tmp_path, syms, now) == {"BTC/USDT": 25}  # a hole: skipped


def test_bundle_with_non_finite_numbers_is_refused_and_a_non_finite_score_never_trades(
    tmp_path: Path,
) -> None:
    import dataclasses

    from engine.strategy.candle_model import LinearModel
    from research.training import train

    _curated(tmp_path)
    for kind in ("trend", "return", "risk"):
        train(tmp_path, kind, "1h", now_us=1)
    bundle = load_bundle(tmp_path / "models", "ml_1h_v1")
    loose = bundle.params(ModelParams(0.0, 0.0, 0.0))
    # two huge weights overflow to +inf and -inf: the score is NaN, which min/max clamp read as 50
    wild = LinearModel("trend_1h_v1", (0.0,) * 7, (1.0,) * 7, (1e308, -1e308, 0, 0, 0, 0, 0), 0.0)
    d = dataclasses.replace(bundle, trend=wild).decide_features(
        "BTC/USDT", (10.0,) * 7, 1, "d1", dataclasses.replace(loose, risk_max=math.inf)
    )
    assert d.action == "NO_TRADE"  # was: LONG at prob 0.99
    assert d.regime_reason == "model output not finite"
    trend = next((tmp_path / "models").glob("trend_1h_v1.json"))
    doc = json.loads(trend.read_text())
    doc["coef"][0] = math.nan  # a damaged or hand-edited file (JSON as Python writes it: NaN)
    trend.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="not a finite number"):
        load_bundle(tmp_path / "models", "ml_1h_v1")
