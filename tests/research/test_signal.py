"""`cockpit signal` and `cockpit drift` end to end: a real market DuckDB filled through
``insert_candles``, real curation and training (so a bundle exists), then the real CLI in a
subprocess — the signal file's fields and mode, the threshold a NO_TRADE names, the model the
engine's registry chooses, the one-line errors with their exit codes, and drift on the training
data versus candles ten times as volatile."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from engine.store.candles import INTERVAL_US, insert_candles, open_market_db
from engine.strategy.candle_model import CANDLE_FEATURES, load_bundle, window_features
from engine.strategy.curate import curate
from tests.acceptance.helpers import run

H = INTERVAL_US["1h"]
HOURS = 600
SYMBOLS = ("BTC/USDT", "ETH/USDT")
# Closed candles ending ~2 weeks before now: "the last closed candles" whatever day this runs.
T0 = (time.time_ns() // 1000 // H - HOURS - 400) * H
# A mean-reverting log price (AR(1), phi 0.5): its 24-candle features forget quickly, so 500 rows
# of the same process measure a PSI well under 0.3 (this seed: ~0.03). On a random walk ret_24's
# and vol_24's overlapping windows leave so few independent samples that PSI noise nears 0.3.
SEED = 1


def _age_s() -> float:
    """Seconds since the newest fixture candle closed, now (T0 is fixed at import; a slow or
    late-in-the-hour run makes it anything from 400 h to 401 h and more: never a constant)."""
    return (time.time_ns() // 1000 - (T0 + HOURS * H)) / 1e6


def _rows(seed: int, start_us: int, n: int, sigma: float, base: float) -> list[list[float]]:
    rnd = random.Random(seed)
    x, c, out = 0.0, base, []
    for i in range(n):
        o = c
        x = 0.5 * x + rnd.gauss(0, sigma)
        c = base * math.exp(x)
        hi = max(o, c) * (1 + rnd.uniform(0, sigma / 2))
        lo = min(o, c) * (1 - rnd.uniform(0, sigma / 2))
        out.append([(start_us + i * H) // 1000, o, hi, lo, c, rnd.uniform(5, 15)])
    return out


def _insert(data_dir: Path, start_us: int, n: int, sigma: float, seed: int) -> dict[str, Any]:
    con = open_market_db(data_dir)
    made = {}
    for k, sym in enumerate(SYMBOLS):
        made[sym] = _rows(seed * 10 + k, start_us, n, sigma, 100.0 * (1 + k))
        insert_candles(con, sym, "1h", made[sym])
    con.close()
    return made


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with 600 hourly candles of two symbols, curated, and ml_1h_v1 trained."""
    from research.training import train

    d = tmp_path_factory.mktemp("trained") / "d"
    _insert(d, T0, HOURS, 0.005, SEED)
    curate(d, "1h", "t", dt.date(2026, 12, 4))
    for kind in ("trend", "return", "risk"):
        train(d, kind, "1h", now_us=1)
    assert (d / "models" / "ml_1h_v1.json").exists()
    return d


@pytest.fixture
def data_dir(trained: Path, tmp_path: Path) -> Path:
    d = tmp_path / "d"
    shutil.copytree(trained, d)
    return d


def _one_line_error(res: Any, code: int, *needles: str) -> None:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    for n in needles:
        assert n in res.stderr, res.stderr


def _signal(d: Path, *extra: str, **env: str) -> dict[str, Any]:
    res = run("signal", "--data-dir", str(d), "--json", *extra, **env)
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def test_signal_when_bundle_trained_then_latest_json_per_symbol_owner_only(
    data_dir: Path,
) -> None:
    lo_s = int(_age_s())
    doc = _signal(data_dir)
    latest = data_dir / "signals" / "latest.json"
    assert json.loads(latest.read_text()) == doc
    assert doc["model_id"] == "ml_1h_v1"
    assert doc["model_source"] == "newest"
    assert "newest trained bundle" in doc["model_note"]  # no engine DB here: said so
    assert doc["psi"] < doc["thresholds"]["psi_block"] == 0.3  # the training process itself
    assert doc["psi_samples"] == 500
    assert set(doc["signals"]) == set(SYMBOLS)
    con = open_market_db(data_dir, read_only=True)
    for sym, sig in doc["signals"].items():
        rows = con.execute(
            "SELECT open_us, high_e8 / 1e8, low_e8 / 1e8, close_e8 / 1e8, volume_e8 / 1e8 FROM "
            "candles WHERE symbol = ? ORDER BY open_us DESC LIMIT 25",
            [sym],
        ).fetchall()[::-1]
        assert sig["candle_open_us"] == rows[-1][0] == T0 + (HOURS - 1) * H
        x = window_features(*([float(r[i]) for r in rows] for i in (3, 1, 2, 4)))
        assert x is not None
        assert sig["features"] == pytest.approx(dict(zip(CANDLE_FEATURES, x, strict=True)))
        assert sig["decision"] in ("LONG", "SHORT", "NO_TRADE")
        assert sig["model_id"] == "ml_1h_v1"
        assert sig["psi"] == doc["psi"]
        assert 0.5 <= sig["prob"] <= 0.99
        assert sig["expected_return"] >= 0
        assert sig["regime"] in ("TREND_UP", "TREND_DOWN", "RANGE", "HIGH_VOL")
        assert sig["regime_reason"]
        assert isinstance(sig["risk_allowed"], bool)
        assert (sig["position_size"] == 0) == (sig["decision"] == "NO_TRADE")
        assert bool(sig["why"]) == (sig["decision"] == "NO_TRADE")
        assert lo_s <= sig["candle_age_s"] <= _age_s()  # closed ~400 h before now
    con.close()
    again = _signal(data_dir)
    assert {s: v["decision_id"] for s, v in again["signals"].items()} == {
        s: v["decision_id"] for s, v in doc["signals"].items()
    }  # same model, same candle: same decision id
    assert len({v["decision_id"] for v in doc["signals"].values()}) == 2
    dated = sorted((data_dir / "signals").glob("signal-*.json"))
    assert len(dated) == 2  # one per run, never overwritten
    for p in [latest, *dated]:
        assert p.stat().st_mode & 0o777 == 0o600
    assert (data_dir / "signals").stat().st_mode & 0o777 == 0o700


def test_signal_when_prob_min_above_every_prob_then_no_trade_names_prob_min(
    data_dir: Path,
) -> None:
    doc = _signal(data_dir, PROB_MIN="1")
    assert doc["thresholds"]["prob_min"] == 1.0
    for sig in doc["signals"].values():
        assert sig["decision"] == "NO_TRADE"
        assert sig["position_size"] == 0
        assert "PROB_MIN (" in sig["why"]
        assert "< 1)" in sig["why"]
    lo_h = _age_s() / 3600
    res = run("signal", "--data-dir", str(data_dir), "--symbol", "ETH/USDT", PROB_MIN="1")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 3  # the model line, one line for the symbol, where it was written
    assert lines[1].startswith("ETH/USDT")
    assert "NO_TRADE" in lines[1]
    assert "PROB_MIN" in lines[1]
    said = re.search(r"warning: the newest candle closed ([0-9.]+) h ago", res.stderr)
    assert said, res.stderr  # stale candles are said, with their age
    assert lo_h - 0.05 <= float(said.group(1)) <= _age_s() / 3600 + 0.05
    written = json.loads((data_dir / "signals" / "latest.json").read_text())
    assert set(written["signals"]) == {"ETH/USDT"}


def _registry(data_dir: Path, sql: str, value: str) -> None:
    from engine.store.writer import open_db

    con = open_db(data_dir / "cockpit.duckdb")
    con.execute(sql, [value])
    con.close()


def test_signal_when_engine_registry_names_a_bundle_then_that_one_is_used(
    data_dir: Path,
) -> None:
    from engine.store.writer import migrate, open_db

    models = data_dir / "models"
    shutil.copy(models / "ml_1h_v1.json", models / "ml_1h_v2.json")  # v2: the newest
    assert _signal(data_dir)["model_id"] == "ml_1h_v2"
    con = open_db(data_dir / "cockpit.duckdb")
    migrate(con, 1)
    for mid, role in (("ml_1h_v1", "champion"), ("momentum_v1", "challenger")):
        con.execute("INSERT INTO models VALUES (?, ?, 1, ?, '{}', 1, 1)", [mid, mid, role])
    con.execute("INSERT INTO engine_state VALUES ('models', ?, 1)", [json.dumps({"pinned": None})])
    con.close()
    doc = _signal(data_dir)
    assert (doc["model_id"], doc["model_source"]) == ("ml_1h_v1", "champion")
    assert doc["signals"]["BTC/USDT"]["model_id"] == "ml_1h_v1"
    _registry(data_dir, "UPDATE engine_state SET value = ? WHERE key = 'models'",
              json.dumps({"pinned": "momentum_v1"}))  # fmt: skip
    doc = _signal(data_dir)  # a pinned built-in: the champion bundle still decides here
    assert (doc["model_id"], doc["model_source"]) == ("ml_1h_v1", "champion")
    assert "pinned momentum_v1 is not a trained 1h bundle" in doc["model_note"]
    _registry(data_dir, "UPDATE engine_state SET value = ? WHERE key = 'models'",
              json.dumps({"pinned": "ml_1h_v2"}))  # fmt: skip
    assert _signal(data_dir)["model_source"] == "pinned"
    _registry(data_dir, "UPDATE engine_state SET value = ? WHERE key = 'models'", "{}")
    _registry(data_dir, "UPDATE models SET role = 'retired' WHERE model_id = ?", "ml_1h_v1")
    _registry(data_dir, "UPDATE models SET role = 'champion' WHERE model_id = ?", "momentum_v1")
    doc = _signal(data_dir)  # a built-in champion: the newest bundle, and why
    assert (doc["model_id"], doc["model_source"]) == ("ml_1h_v2", "newest")
    assert "champion momentum_v1 is not a trained 1h bundle" in doc["model_note"]
    assert _signal(data_dir, "--model", "ml_1h_v1")["model_source"] == "requested"
    busy = open_db(data_dir / "cockpit.duckdb")  # as a running engine holds it
    try:
        doc = _signal(data_dir)
    finally:
        busy.close()
    assert doc["model_id"] == "ml_1h_v2"
    assert "not readable" in doc["model_note"]


def test_signal_when_inputs_missing_or_bad_then_one_line_and_exit_code(
    data_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    for cmd in ("signal", "drift"):
        res = run(cmd, "--data-dir", str(empty))
        _one_line_error(res, 2, "no market data", "run `cockpit data backfill --interval 1h`")
    no_model = tmp_path / "no_model"
    _insert(no_model, T0, 30, 0.005, SEED)
    res = run("signal", "--data-dir", str(no_model))
    _one_line_error(res, 2, "no trend/return/risk model found", "cockpit model train trend",
                    "cockpit model train return", "cockpit model train risk")  # fmt: skip
    assert not (no_model / "signals").exists()
    res = run("signal", "--data-dir", str(data_dir), "--interval", "4h")
    _one_line_error(res, 2, "no closed 4h candles", "cockpit data backfill --interval 4h")
    res = run("signal", "--data-dir", str(data_dir), "--model", "trend_1h_v1")
    _one_line_error(res, 2, "not a trained bundle")
    res = run("signal", "--data-dir", str(data_dir), "--model", "ml_1h_v1", "--interval", "4h")
    _one_line_error(res, 2, "is a 1h model, not 4h")
    res = run("signal", "--data-dir", str(data_dir), "--model", "ml_1h_v7")
    _one_line_error(res, 2, "model file not found")
    (data_dir / "models" / "ml_1h_v1.json").write_text("{")
    res = run("signal", "--data-dir", str(data_dir))
    _one_line_error(res, 2, "ml_1h_v1.json", "retrain it")
    holder = open_market_db(data_dir)  # as a running backfill holds it
    try:
        for cmd in ("signal", "drift"):
            _one_line_error(run(cmd, "--data-dir", str(data_dir)), 3, "in use by another process")
    finally:
        holder.close()


def _psi_by_hand(reference: Any, table: pl.DataFrame) -> dict[str, float]:
    """PSI of each feature, written out with numpy (bins: a value on an edge goes up)."""
    out = {}
    for i, name in enumerate(CANDLE_FEATURES):
        edges = np.array(reference.edges[i])
        counts = np.bincount(np.searchsorted(edges, table[name].to_numpy(), side="right"),
                             minlength=len(edges) + 1)  # fmt: skip
        a = np.maximum(counts / table.height, 1e-4)
        e = np.maximum(np.array(reference.expected[i]), 1e-4)
        out[name] = float(((a - e) * np.log(a / e)).sum())
    return out


def test_drift_when_candles_like_training_then_0_and_when_10x_volatile_then_1(
    data_dir: Path,
) -> None:
    res = run("drift", "--data-dir", str(data_dir), "--json")
    assert res.returncode == 0, res.stderr
    calm = json.loads(res.stdout)
    assert calm["samples"] == calm["window"] == 500
    assert not calm["drift"]
    assert calm["psi"] == max(calm["per_feature"].values()) < 0.3
    table = (
        pl.read_parquet(data_dir / "curated" / "1h" / "latest.parquet")
        .drop_nulls(list(CANDLE_FEATURES))
        .sort("open_us", "symbol")
        .tail(500)
    )
    reference = load_bundle(data_dir / "models", "ml_1h_v1").reference
    assert calm["per_feature"] == pytest.approx(_psi_by_hand(reference, table), abs=1e-9)
    text = run("drift", "--data-dir", str(data_dir))
    assert text.returncode == 0
    assert "no drift: PSI" in text.stdout
    assert all(f"  {name}" in text.stdout for name in CANDLE_FEATURES)

    _insert(data_dir, T0 + HOURS * H, 300, 0.05, SEED + 1)  # ten times the volatility
    res = run("drift", "--data-dir", str(data_dir))
    assert res.returncode == 1, res.stderr
    verdict = res.stdout.strip().splitlines()[-1]
    assert verdict.startswith("drift: PSI ")
    assert "> 0.3 (feature " in verdict
    assert "cockpit model train" in verdict
    assert "cockpit model rollback" in verdict
    hot = json.loads(run("drift", "--data-dir", str(data_dir), "--json").stdout)
    assert hot["drift"]
    assert hot["psi"] > 0.3
    assert hot["per_feature"]["vol_24"] > 0.3
    assert run("drift", "--data-dir", str(data_dir), PSI_BLOCK="1000000").returncode == 0
    doc = _signal(data_dir)  # the drift gate: every symbol NO_TRADE, drift named
    for sig in doc["signals"].values():
        assert sig["decision"] == "NO_TRADE"
        assert sig["why"].startswith("drift (PSI ")


def test_decide_when_psi_above_halve_or_block_then_size_halved_or_no_trade(trained: Path) -> None:
    from research.signal import Thresholds, decide_symbol, load_candles

    model = load_bundle(trained / "models", "ml_1h_v1")
    candles = load_candles(trained, "1h", 25, time.time_ns() // 1000)
    loose = Thresholds(prob_min=0.0, min_expected_return=0.0, psi_block=0.3, psi_halve=0.2)
    calm = {s: decide_symbol(model, s, cs, 0.0, loose) for s, cs in candles.items()}
    sym = next(s for s, sig in calm.items() if sig["risk_allowed"])
    assert calm[sym]["decision"] in ("LONG", "SHORT")
    assert calm[sym]["position_size"] > 0
    halved = decide_symbol(model, sym, candles[sym], 0.25, loose)
    assert halved["decision"] == calm[sym]["decision"]
    assert halved["position_size"] == pytest.approx(calm[sym]["position_size"] / 2)
    assert halved["note"] == "size halved: drift (PSI 0.25 > 0.2)"
    blocked = decide_symbol(model, sym, candles[sym], 0.5, loose)
    assert blocked["decision"] == "NO_TRADE"
    assert blocked["position_size"] == 0
    assert blocked["why"] == "drift (PSI 0.50 > 0.3)"  # the model would trade: only drift stops it
    assert blocked["decision_id"] == calm[sym]["decision_id"]
