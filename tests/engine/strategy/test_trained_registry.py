"""Trained bundles in the live model registry: registered from the models folder at start, made
challenger through the one door (loaded on demand when trained while running), promoted and
rolled back with the existing commands, deciding on their own candles; a damaged file fails
closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from engine.api import EngineAPI
from engine.core.events import PromoteChallenger, RollbackModel, SetChallenger
from tests.conftest import feed_all
from tests.research.test_training import _curated


def _train_all(data_dir: Path) -> None:
    from research.training import train

    for kind in ("trend", "return", "risk"):
        train(data_dir, kind, "1h", now_us=1)


def test_trained_bundle_registered_challenger_promoted_and_rolled_back(
    make_booted: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    _curated(data)
    _train_all(data)
    b = make_booted(strategy="models")
    reg = b.strategy.registry
    assert reg.entry("ml_1h_v1").role == "retired"  # found in the models folder at start
    assert reg.entry("ml_1h_v1").reference.feature_names[0] == "ret_1"  # its own PSI reference
    api = EngineAPI(b.engine, b.strategy)
    assert api.handle(SetChallenger(model_id="ml_1h_v1", actor="alice")).ok
    assert reg.challenger_id == "ml_1h_v1"
    assert api.handle(PromoteChallenger(actor="alice")).ok
    assert reg.champion_id == "ml_1h_v1"
    for _ in range(3):
        feed_all(b.engine)
    b.strategy.decide("BTC/USDT", b.engine.clock.now_ns())
    last = b.strategy.last["BTC/USDT"]
    assert last.model_id == "ml_1h_v1"
    assert last.action == "NO_TRADE"
    assert "warming up 0/25 1h candles" in last.why  # its own candles, not the tick features
    assert api.handle(RollbackModel(actor="alice")).ok  # seed 001 §7: back to the last stable
    assert (reg.champion_id, reg.challenger_id) == ("trend_v1", "ml_1h_v1")
    # trained while the engine runs: registered on demand
    from research.training import train

    assert train(data, "trend", "1h", now_us=2)["bundle"] == "ml_1h_v2"
    assert api.handle(SetChallenger(model_id="ml_1h_v2", actor="alice")).ok
    assert reg.challenger_id == "ml_1h_v2"
    assert reg.entry("ml_1h_v1").role == "retired"
    missing = api.handle(SetChallenger(model_id="ml_1h_v9", actor="alice"))
    assert not missing.ok
    assert "model file not found" in missing.message
    assert not api.handle(SetChallenger(model_id="trend_v1", actor="alice")).ok  # champion
    b.close("restart")
    con = duckdb.connect(str(data / "cockpit.duckdb"), read_only=True)
    kinds = [r[0] for r in con.execute("SELECT kind FROM audit_log WHERE actor='alice'").fetchall()]
    con.close()
    assert kinds == ["challenger_set", "promoted", "rolled_back", "challenger_set"]
    # a damaged model file: the model stays registered and decides NO_TRADE, naming the file
    (data / "models" / "ml_1h_v2.json").write_text("{not json")
    b2 = make_booted(strategy="models")
    assert b2.strategy.registry.challenger_id == "ml_1h_v2"
    d = b2.strategy.models["ml_1h_v2"].decide("BTC/USDT", None, 1, "d", b2.strategy.params)
    assert d.action == "NO_TRADE"
    assert "ml_1h_v2.json is unreadable" in d.regime_reason


def test_on_a_venue_feed_a_trained_champion_is_seeded_from_the_market_db(
    make_booted: Any, tmp_path: Path
) -> None:
    from engine.core.clock import SimClock
    from tests.research.test_training import T0, H

    data = tmp_path / "data"
    _curated(data)  # 400 hourly candles from T0, in the market DB
    _train_all(data)
    clock = SimClock(start_ns=(T0 + 400 * H + 1_000) * 1000)  # the newest candle just closed
    b = make_booted(strategy="models", overrides={"feed": "exchange"}, clock=clock)
    api = EngineAPI(b.engine, b.strategy)
    assert api.handle(SetChallenger(model_id="ml_1h_v1", actor="alice")).ok
    model = b.strategy.models["ml_1h_v1"]
    assert model.windows["BTC/USDT"].n == 25  # warm at once: no 25-hour wait
