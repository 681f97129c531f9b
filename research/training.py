"""Research models trained on curated data (seed 001: train-trend / train-return / train-risk).

Role: ``train(data_dir, kind, interval)`` fits one model on the interval's ``latest.parquet``
(scikit-learn: a scaled logistic regression for ``trend`` — P(4-candle forward return > 0) — and
scaled ridge regressions for ``return`` (next-candle return) and ``risk`` (forward 24-candle
volatility)), evaluates it out of sample, and saves a new version under
``<data-dir>/models/<kind>_<interval>_v<N>.json``: coefficients (JSON, never pickle), features,
label, metrics, the dataset's file and sha256, and the training reference distribution (deciles
per feature) the PSI drift check compares live features with.

Invariants:
- Out of sample means later in time: the first 75 % of the timeline trains, the rest tests, with
  an embargo of the longest label horizon (24 candles) between them, so no training label
  overlaps a test sample.
- A version is never overwritten; ``list_models`` reads them back, newest last.
- Missing inputs are one-line ``TrainingError`` naming the remedy (seed 001 incidents B and C).
- Deterministic: the same dataset gives the same coefficients and metrics.

Bundles: once a trend, a return and a risk version exist for an interval, every training also
writes ``ml_<interval>_v<N>.json`` naming the newest three — the unit the engine's model registry
registers (``engine.strategy.candle_model``), `cockpit signal` decides with and campaigns test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, mean_absolute_error, r2_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from engine.core.fsutil import make_private_dir, write_private_atomic
from engine.store.candles import INTERVAL_US
from engine.strategy.curate import FEATURES, CurateError, curated_dir, read_manifest

KINDS = {"trend": "fwd_ret_4", "return": "fwd_ret_1", "risk": "fwd_vol_24"}
EMBARGO_CANDLES = 24  # the longest label horizon (fwd_vol_24)
TRAIN_SHARE = 0.75


class TrainingError(Exception):
    """One line naming what is missing and the command that makes it."""


def models_dir(data_dir: Path) -> Path:
    return data_dir / "models"


def load_dataset(data_dir: Path, interval: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    folder = curated_dir(data_dir, interval)
    path = folder / "latest.parquet"
    if not path.exists():
        raise TrainingError(
            f"feature dataset not found: {path}; run `cockpit data curate --interval {interval}` "
            f"(after `cockpit data backfill --interval {interval}`)"
        )
    try:
        manifest = read_manifest(folder)  # first: its remedy comes before curating again
        table = pl.read_parquet(path)
    except CurateError as exc:
        raise TrainingError(str(exc)) from None
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TrainingError(
            f"curated dataset {folder} is unreadable ({first}): curate again with `cockpit data "
            f"curate --interval {interval}` (the damaged file is left as it is)"
        ) from None
    latest: dict[str, Any] = next(
        (v for v in manifest["versions"] if v["file"] == manifest.get("latest")), {}
    )
    return table, latest


def _split(table: pl.DataFrame, interval: str, label: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    data = table.drop_nulls([label]).sort("open_us", "symbol")
    times = data["open_us"].unique().sort()
    if times.len() < 4 * EMBARGO_CANDLES:
        raise TrainingError(
            f"too little curated {interval} data to train and test ({times.len()} candles; "
            f"need {4 * EMBARGO_CANDLES}): backfill a longer window, then curate again"
        )
    cut = int(times[int(times.len() * TRAIN_SHARE)])
    embargo = EMBARGO_CANDLES * INTERVAL_US[interval]
    return data.filter(pl.col("open_us") < cut), data.filter(pl.col("open_us") >= cut + embargo)


def _reference(x: np.ndarray[Any, Any]) -> dict[str, Any]:
    edges = [np.unique(np.quantile(col, np.linspace(0.1, 0.9, 9))).tolist() for col in x.T]
    expected = [
        (
            np.bincount(np.searchsorted(e, col, side="right"), minlength=len(e) + 1) / len(col)
        ).tolist()
        for e, col in zip(edges, x.T, strict=True)
    ]
    return {
        "feature_names": list(FEATURES),
        "edges": edges,
        "expected": expected,
        "n_samples": len(x),
    }


def _fit(kind: str, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> Any:
    if kind == "trend":
        return LogisticRegression(max_iter=1000).fit(x, y > 0)
    return Ridge(alpha=1.0).fit(x, y)


def _metrics(
    kind: str, model: Any, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> dict[str, float]:
    if kind == "trend":
        p = model.predict_proba(x)[:, 1]
        up = y > 0
        return {"accuracy": float(((p > 0.5) == up).mean()), "auc": float(roc_auc_score(up, p)),
                "log_loss": float(log_loss(up, p, labels=[False, True]))}  # fmt: skip
    pred = model.predict(x)
    out = {"r2": float(r2_score(y, pred)), "mae": float(mean_absolute_error(y, pred))}
    if kind == "return":
        out["hit_rate"] = float((np.sign(pred) == np.sign(y)).mean())
    return out


def fit_doc(kind: str, train_df: pl.DataFrame, test_df: pl.DataFrame) -> dict[str, Any]:
    """Fit ``kind`` on ``train_df`` (rows with a label) and score it on ``test_df``: the JSON
    fields of a model version (scaler, coefficients, metrics, reference; ``risk_max`` — the 90th
    percentile of the training label, a bundle's RISK_MAX — for the risk model)."""
    label = KINDS[kind]
    train_df = train_df.drop_nulls([label])
    test_df = test_df.drop_nulls([label])
    x_raw = train_df.select(FEATURES).to_numpy()
    scaler = StandardScaler().fit(x_raw)
    y_train = train_df[label].to_numpy()
    model = _fit(kind, scaler.transform(x_raw), y_train)
    metrics = (
        _metrics(kind, model, scaler.transform(test_df.select(FEATURES).to_numpy()),
                 test_df[label].to_numpy())
        if test_df.height > 1 else {}
    )  # fmt: skip
    doc = {
        "features": list(FEATURES), "label": label,
        "scaler": {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
        "coef": np.ravel(model.coef_).tolist(), "intercept": float(np.ravel([model.intercept_])[0]),
        "metrics": metrics, "train_rows": train_df.height, "test_rows": test_df.height,
        "reference": _reference(x_raw),
    }  # fmt: skip
    if kind == "risk":
        doc["risk_max"] = float(np.quantile(y_train, 0.9))
    return doc


def train(data_dir: Path, kind: str, interval: str, now_us: int | None = None) -> dict[str, Any]:
    if kind not in KINDS:
        raise TrainingError(f"model kind {kind!r}: one of {', '.join(KINDS)}")
    table, dataset = load_dataset(data_dir, interval)
    train_df, test_df = _split(table, interval, KINDS[kind])
    version = 1 + sum(
        1 for m in list_models(data_dir) if m["kind"] == kind and m["interval"] == interval
    )
    doc = {
        "model_id": f"{kind}_{interval}_v{version}", "kind": kind, "interval": interval,
        "version": version, **fit_doc(kind, train_df, test_df),
        "embargo_candles": EMBARGO_CANDLES,
        "dataset": {"file": dataset.get("file", "latest.parquet"), "sha256": dataset.get("sha256")},
        "created_us": now_us if now_us is not None else time.time_ns() // 1000,
    }  # fmt: skip
    _save(data_dir, doc)
    bundle = make_bundle(data_dir, interval, int(doc["created_us"]))
    if bundle is not None:
        doc["bundle"] = bundle["model_id"]
    return doc


def _save(data_dir: Path, doc: dict[str, Any]) -> None:
    folder = models_dir(data_dir)
    make_private_dir(folder)
    path = folder / f"{doc['model_id']}.json"
    if path.exists():  # a version is never overwritten
        raise TrainingError(f"{path} exists: a model version is never replaced")
    write_private_atomic(path, json.dumps(doc, indent=1, sort_keys=True).encode())


def make_bundle(data_dir: Path, interval: str, now_us: int) -> dict[str, Any] | None:
    """A new ``ml_<interval>_v<N>`` naming the newest trend, return and risk versions, unless one
    with those members exists (None when a kind has no version yet)."""
    found = [m for m in list_models(data_dir) if m["interval"] == interval]
    newest = {m["kind"]: m for m in found}  # list_models is oldest first
    if not all(k in newest for k in KINDS):
        return None
    members = {k: newest[k]["model_id"] for k in KINDS}
    bundles = [m for m in found if m["kind"] == "bundle"]
    if bundles and bundles[-1].get("members") == members:
        return None
    trend = _load_doc(data_dir, members["trend"])
    risk = _load_doc(data_dir, members["risk"])
    version = 1 + len(bundles)
    doc = {
        "model_id": f"ml_{interval}_v{version}", "kind": "bundle", "interval": interval,
        "version": version, "members": members, "features": list(FEATURES),
        "metrics": {k: newest[k]["metrics"] for k in KINDS},
        "risk_max": risk["risk_max"], "reference": trend["reference"],
        "train_rows": trend["train_rows"], "test_rows": trend["test_rows"],
        "dataset": trend["dataset"], "created_us": now_us,
    }  # fmt: skip
    _save(data_dir, doc)
    return doc


def _load_doc(data_dir: Path, model_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((models_dir(data_dir) / f"{model_id}.json").read_text())
    return doc


def list_models(data_dir: Path) -> list[dict[str, Any]]:
    """Every trained version (without its coefficients), oldest first."""
    out = []
    for path in sorted(models_dir(data_dir).glob("*.json")):
        doc = json.loads(path.read_text())
        row = {k: doc[k] for k in ("model_id", "kind", "interval", "version", "metrics",
                                   "train_rows", "test_rows", "dataset", "created_us")}  # fmt: skip
        if "members" in doc:
            row["members"] = doc["members"]
        out.append(row)
    # a bundle is written in the same microsecond as its newest member: members sort first
    return sorted(out, key=lambda m: (m["created_us"], m["kind"] == "bundle", m["version"]))


def latest_model(data_dir: Path, kind: str) -> dict[str, Any]:
    found = [m for m in list_models(data_dir) if m["kind"] == kind]
    if not found:
        raise TrainingError(
            f"no {kind} model found in {models_dir(data_dir)}: run `cockpit model train {kind}`"
        )
    return found[-1]
