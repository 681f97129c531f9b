"""Curated datasets: features from the market DB's candles, as versioned Parquet (seed 003
"curate", seed 001 "features").

Role: ``curate(data_dir, interval, tag)`` computes the feature table with polars (per symbol, in
open-time order) and writes ``<data-dir>/curated/<interval>/YYYYMMDD_<tag>.parquet`` — a version,
never overwritten (a second version of the same day and tag gets ``-2``, ``-3``...) — then points
``latest.parquet`` at it (an atomic copy) and appends it to ``manifest.json`` with its rows, time
range, feature list and sha256.

Invariants:
- Features at time t use only candles up to t (rolling windows look back); the labels (``fwd_*``)
  look forward and are for training only — a model never sees them as inputs.
- Versions are kept: the newest two always, older ones are listed as archive candidates by
  ``versions`` and never deleted by the program.
- Deterministic: the same candles give the same table and the same content hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from engine.core.fsutil import make_private_dir, write_private_atomic
from engine.store.candles import INTERVAL_US, market_db_path, open_market_db
from engine.strategy.candle_model import CANDLE_FEATURES, LOOKBACK

FEATURES = CANDLE_FEATURES  # declared once, with the plain-Python definitions live trading uses
LABELS = ("fwd_ret_1", "fwd_ret_4", "fwd_vol_24")
KEEP_NEWEST = 2
_TAG_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


class CurateError(Exception):
    """One line naming what is missing or wrong and the remedy."""


def curated_dir(data_dir: Path, interval: str) -> Path:
    return data_dir / "curated" / interval


def _candles(data_dir: Path, interval: str) -> pl.DataFrame:
    if not market_db_path(data_dir).exists():
        raise CurateError(
            f"no market data in {data_dir}: run `cockpit data backfill --interval {interval}`"
        )
    try:
        con = open_market_db(data_dir, read_only=True)
    except duckdb.IOException:  # DuckDB lets one process hold the file: a backfill is running
        raise CurateError(
            f"{market_db_path(data_dir)} is in use by another process (a running backfill?): "
            "curate when it ends"
        ) from None
    try:
        frame: pl.DataFrame = con.sql(
            "SELECT symbol, open_us, open_e8 / 1e8 AS open, high_e8 / 1e8 AS high, "
            "low_e8 / 1e8 AS low, close_e8 / 1e8 AS close, volume_e8 / 1e8 AS volume "
            "FROM candles WHERE interval = ? ORDER BY symbol, open_us",
            params=[interval],
        ).pl()
    finally:
        con.close()
    if frame.is_empty():
        raise CurateError(
            f"no {interval} candles in {market_db_path(data_dir)}: run "
            f"`cockpit data backfill --interval {interval}`"
        )
    return frame


def features(candles: pl.DataFrame) -> pl.DataFrame:
    """The feature and label columns, per symbol; rows without a full look-back are dropped."""
    lr = pl.col("close").log().diff().over("symbol")
    out = candles.with_columns(lr.alias("ret_1")).with_columns(
        (pl.col("close").log() - pl.col("close").log().shift(4)).over("symbol").alias("ret_4"),
        (pl.col("close").log() - pl.col("close").log().shift(24)).over("symbol").alias("ret_24"),
        pl.col("ret_1").rolling_std(24).over("symbol").alias("vol_24"),
        ((pl.col("high") - pl.col("low")) / pl.col("close")).alias("range_pct"),
        (pl.col("close") / pl.col("close").rolling_mean(24) - 1)
        .over("symbol")
        .alias("sma_ratio_24"),
        ((pl.col("volume") - pl.col("volume").rolling_mean(24)) / pl.col("volume").rolling_std(24))
        .over("symbol")
        .alias("volume_z_24"),
        pl.col("ret_1").shift(-1).over("symbol").alias("fwd_ret_1"),
        (pl.col("close").log().shift(-4) - pl.col("close").log()).over("symbol").alias("fwd_ret_4"),
        pl.col("ret_1").shift(-24).rolling_std(24).over("symbol").alias("fwd_vol_24"),
    )
    return out.drop_nulls(list(FEATURES)).fill_nan(None).drop_nulls(list(FEATURES))


def _version_path(folder: Path, day: dt.date, tag: str) -> Path:
    base = f"{day:%Y%m%d}_{tag}"
    path, n = folder / f"{base}.parquet", 1
    while path.exists():  # a version is never overwritten
        n += 1
        path = folder / f"{base}-{n}.parquet"
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        if not isinstance(doc.get("versions"), list):
            raise ValueError("no list of versions")
    except FileNotFoundError:
        return {"versions": []}
    except (OSError, ValueError, AttributeError) as exc:
        raise CurateError(
            f"{path} is damaged ({exc}): move it aside (`mv {path} {path}.damaged`) and curate "
            "again; the version files next to it are intact"
        ) from None
    return doc


def _no_rows(candles: pl.DataFrame, interval: str) -> str:
    """Why no row has every feature: too little history, or history that defines none."""
    counts = candles.group_by("symbol").len()["len"].to_list() if len(candles) else []
    longest = max(counts, default=0)
    if longest < LOOKBACK:  # ret_24 and vol_24 need 25 closes
        return (f"too few {interval} candles for the 24-candle look-back ({longest} for the "
                f"best-covered symbol): backfill more")  # fmt: skip
    return (f"{longest} {interval} candles, but no row where every feature is defined (flat "
            "prices or volumes leave returns, volatility or the volume z-score undefined): "
            "backfill a period where the market moved, or other symbols")  # fmt: skip


def curate(data_dir: Path, interval: str, tag: str, today: dt.date) -> dict[str, Any]:
    if interval not in INTERVAL_US:
        raise CurateError(f"--interval {interval!r}: one of {', '.join(INTERVAL_US)}")
    if not tag or set(tag) - _TAG_OK or len(tag) > 40:
        raise CurateError(f"--tag {tag!r}: lowercase letters, digits, - and _ (at most 40)")
    candles = _candles(data_dir, interval)
    table = features(candles)
    if table.is_empty():
        raise CurateError(_no_rows(candles, interval))
    folder = curated_dir(data_dir, interval)
    make_private_dir(folder)
    manifest = read_manifest(folder)  # a damaged one stops us before anything is written
    path = _version_path(folder, today, tag)
    part = path.with_name(f".{path.name}.tmp")
    table.write_parquet(part, statistics=False)
    os.replace(part, path)
    latest_part = folder / ".latest.parquet.tmp"
    shutil.copyfile(path, latest_part)
    os.replace(latest_part, folder / "latest.parquet")
    entry = {
        "file": path.name,
        "interval": interval,
        "tag": tag,
        "rows": table.height,
        "symbols": sorted(table["symbol"].unique().to_list()),
        "from_us": int(table["open_us"].min()),  # type: ignore[arg-type]
        "to_us": int(table["open_us"].max()),  # type: ignore[arg-type]
        "features": list(FEATURES),
        "labels": list(LABELS),
        "sha256": _sha256(path),
    }
    manifest["versions"].append(entry)
    manifest["latest"] = path.name
    write_private_atomic(folder / "manifest.json", json.dumps(manifest, indent=2).encode())
    return entry


def versions(data_dir: Path) -> list[dict[str, Any]]:
    """Every version of every interval, newest last; ``archive`` marks all but the newest two."""
    out = []
    root = data_dir / "curated"
    for interval in INTERVAL_US:
        listed = read_manifest(root / interval)["versions"] if (root / interval).exists() else []
        for i, v in enumerate(listed):
            out.append({**v, "archive": i < len(listed) - KEEP_NEWEST})
    return out
