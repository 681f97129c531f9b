"""Research models on real curated Parquet: out-of-sample split with an embargo, deterministic
fits, versions never replaced, and the seed-001 errors with their remedies."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest

from engine.store.candles import INTERVAL_US, insert_candles, open_market_db
from engine.strategy.curate import curate
from research.training import (
    EMBARGO_CANDLES,
    TrainingError,
    _split,
    latest_model,
    list_models,
    load_dataset,
    train,
)
from tests.acceptance.helpers import run

H = INTERVAL_US["1h"]
T0 = int(dt.datetime(2026, 9, 7, tzinfo=dt.UTC).timestamp() * 1e6)


def _curated(data_dir: Path, hours: int = 400) -> None:
    con = open_market_db(data_dir)
    for k, sym in enumerate(("BTC/USDT", "ETH/USDT")):
        rows = []
        for i in range(hours):
            c = 100 * (1 + k) * math.exp(0.02 * math.sin(i / 7 + k) + 0.01 * math.sin(i / 29))
            rows.append([(T0 + i * H) // 1000, c, c * 1.003, c * 0.996, c * 1.0005, 10 + i % 9])
        insert_candles(con, sym, "1h", rows)
    con.close()
    curate(data_dir, "1h", "t", dt.date(2026, 12, 4))


def test_train_when_curated_then_three_kinds_embargoed_and_deterministic(tmp_path: Path) -> None:
    _curated(tmp_path)
    table, _ = load_dataset(tmp_path, "1h")
    tr, te = _split(table, "1h", "fwd_ret_4")
    assert int(tr["open_us"].max()) + EMBARGO_CANDLES * H <= int(te["open_us"].min())
    docs = {k: train(tmp_path, k, "1h", now_us=1) for k in ("trend", "return", "risk")}
    assert set(docs["trend"]["metrics"]) == {"accuracy", "auc", "log_loss"}
    assert set(docs["return"]["metrics"]) == {"r2", "mae", "hit_rate"}
    assert docs["trend"]["reference"]["feature_names"] == docs["trend"]["features"]
    again = train(tmp_path, "trend", "1h", now_us=2)
    assert again["model_id"] == "trend_1h_v2"  # a new version, never a replacement
    assert again["coef"] == docs["trend"]["coef"]  # same data, same fit
    assert again["metrics"] == docs["trend"]["metrics"]
    ids = [m["model_id"] for m in list_models(tmp_path)]
    assert ids[-2:] == ["trend_1h_v2", "ml_1h_v2"]  # a new bundle names the new trend version
    assert docs["risk"]["bundle"] == "ml_1h_v1"
    assert "bundle" not in docs["trend"]
    bundles = [m for m in list_models(tmp_path) if m["kind"] == "bundle"]
    assert bundles[0]["members"] == {"trend": "trend_1h_v1", "return": "return_1h_v1",
                                     "risk": "risk_1h_v1"}  # fmt: skip
    assert bundles[1]["members"]["trend"] == "trend_1h_v2"
    assert docs["risk"]["risk_max"] > 0
    assert latest_model(tmp_path, "trend")["model_id"] == "trend_1h_v2"
    stored = json.loads((tmp_path / "models" / "trend_1h_v1.json").read_text())
    assert stored["dataset"]["sha256"]
    assert (tmp_path / "models" / "trend_1h_v1.json").stat().st_mode & 0o777 == 0o600


def test_train_when_inputs_missing_then_one_line_remedies(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"feature dataset not found.*cockpit data curate"):
        train(tmp_path, "trend", "1h")
    with pytest.raises(TrainingError, match=r"no risk model found.*cockpit model train risk"):
        latest_model(tmp_path, "risk")
    _curated(tmp_path, hours=80)
    with pytest.raises(TrainingError, match="too little curated 1h data"):
        train(tmp_path, "return", "1h")


def test_model_train_and_list_from_shell(tmp_path: Path) -> None:
    d = tmp_path / "d"
    missing = run("model", "train", "trend", "--data-dir", str(d))
    assert missing.returncode == 2
    assert "cockpit data curate --interval 1h" in missing.stderr
    assert "Traceback" not in missing.stderr
    _curated(d)
    res = run("model", "train", "risk", "--data-dir", str(d), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["model_id"] == "risk_1h_v1"
    listed = json.loads(run("model", "list", "--data-dir", str(d), "--json").stdout)["models"]
    assert [m["model_id"] for m in listed] == ["risk_1h_v1"]


def test_damaged_curated_files_are_one_line_and_kept(tmp_path: Path) -> None:
    _curated(tmp_path)
    folder = tmp_path / "curated" / "1h"
    (folder / "latest.parquet").write_bytes(b"junk")
    r = run("model", "train", "trend", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert "is unreadable" in r.stderr
    assert "cockpit data curate --interval 1h" in r.stderr
    assert "Traceback" not in r.stderr
    (folder / "manifest.json").write_text("{bad")
    before = sorted(p.name for p in folder.iterdir())
    for args in (("data", "curate", "--interval", "1h"), ("data", "versions"),
                 ("model", "train", "risk")):  # fmt: skip
        r = run(*args, "--data-dir", str(tmp_path))
        assert r.returncode == 2, (args, r.stderr)
        assert "manifest.json is damaged" in r.stderr
        assert "Traceback" not in r.stderr
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written, nothing dropped
    assert (folder / "manifest.json").read_text() == "{bad"
