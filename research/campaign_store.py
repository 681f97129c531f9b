"""Walk-forward campaign results in DuckDB: ``<data-dir>/research/campaigns.duckdb``.

Role: ``save`` persists one campaign (its spec, totals, verdict, stitched out-of-sample equity)
and its folds; ``list_campaigns``, ``load`` and ``latest_verdict`` read them back for the CLI, the
TUI's research tab and the promote confirmation.

Invariants:
- A file of its own, not the live DB: a campaign never competes with the engine's writer, and the
  cockpit reads it while the engine trades.
- Rows are never replaced: a campaign id is its spec hash, and a rerun of the same spec is saved
  as ``<hash>-r2``, ``-r3``... (``next_id``), so two runs can be compared.
- Imports only DuckDB (no scikit-learn): the cockpit loads this module.
- A file held by a running campaign is ``CampaignStoreBusy`` (one line), never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import duckdb

from engine.core.fsutil import make_private_dir
from engine.store.candles import damaged_message

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id VARCHAR PRIMARY KEY, spec_hash VARCHAR NOT NULL, spec_json VARCHAR NOT NULL,
    created_us BIGINT NOT NULL, interval VARCHAR NOT NULL, start_date VARCHAR NOT NULL,
    end_date VARCHAR NOT NULL, folds INTEGER NOT NULL, window_days INTEGER NOT NULL,
    cost_bps DOUBLE NOT NULL, models VARCHAR NOT NULL, runner VARCHAR NOT NULL,
    total_return DOUBLE, sharpe DOUBLE, max_drawdown DOUBLE, hit_rate DOUBLE, turnover DOUBLE,
    costs_paid DOUBLE, trades INTEGER, zero_cost_return DOUBLE, cost_drag DOUBLE,
    deflated_sharpe DOUBLE, pbo DOUBLE, verdict VARCHAR NOT NULL, verdict_reason VARCHAR NOT NULL,
    equity_json VARCHAR NOT NULL, candidates_json VARCHAR NOT NULL, wall_s DOUBLE
);
CREATE TABLE IF NOT EXISTS campaign_folds (
    campaign_id VARCHAR NOT NULL, candidate VARCHAR NOT NULL, fold INTEGER NOT NULL,
    cost_bps DOUBLE NOT NULL, train_from_us BIGINT, train_to_us BIGINT, test_from_us BIGINT,
    test_to_us BIGINT, total_return DOUBLE, sharpe DOUBLE, max_drawdown DOUBLE, hit_rate DOUBLE,
    turnover DOUBLE, costs_paid DOUBLE, trades INTEGER, candles INTEGER, ticks BIGINT,
    model_ids VARCHAR, PRIMARY KEY (campaign_id, candidate, fold, cost_bps)
);
"""
WRITE_WAIT_S = 10.0
CAMPAIGN_COLS = (
    "campaign_id", "spec_hash", "spec_json", "created_us", "interval", "start_date", "end_date",
    "folds", "window_days", "cost_bps", "models", "runner", "total_return", "sharpe",
    "max_drawdown", "hit_rate", "turnover", "costs_paid", "trades", "zero_cost_return",
    "cost_drag", "deflated_sharpe", "pbo", "verdict", "verdict_reason", "equity_json",
    "candidates_json", "wall_s",
)  # fmt: skip
FOLD_COLS = (
    "campaign_id", "candidate", "fold", "cost_bps", "train_from_us", "train_to_us",
    "test_from_us", "test_to_us", "total_return", "sharpe", "max_drawdown", "hit_rate",
    "turnover", "costs_paid", "trades", "candles", "ticks", "model_ids",
)  # fmt: skip

# Column names are the constants above, never input: the values are bound parameters.
_INSERT_CAMPAIGN = f"INSERT INTO campaigns ({', '.join(CAMPAIGN_COLS)}) VALUES ({', '.join('?' * len(CAMPAIGN_COLS))})"  # noqa: S608
_INSERT_FOLD = f"INSERT INTO campaign_folds ({', '.join(FOLD_COLS)}) VALUES ({', '.join('?' * len(FOLD_COLS))})"  # noqa: S608


class CampaignStoreBusy(Exception):
    """The campaigns DB is held by another process (a campaign being saved)."""


class CampaignNotSaved(Exception):
    """Writing a finished campaign failed (a full disk...): one line; the caller still holds the
    results (``campaign``) and shows them, so the work is not lost."""

    def __init__(self, message: str, campaign: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.campaign = campaign


class CampaignStoreDamaged(Exception):
    """The campaigns DB is not a readable DuckDB file (named, never replaced or deleted)."""


def store_path(data_dir: Path) -> Path:
    return data_dir / "research" / "campaigns.duckdb"


def _open(data_dir: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    path = store_path(data_dir)
    try:
        if read_only:
            return duckdb.connect(str(path), read_only=True)
        make_private_dir(path.parent)
        con = duckdb.connect(str(path))
        path.chmod(0o600)
    except duckdb.IOException as exc:
        damaged = damaged_message(path, exc)
        if damaged is not None:
            raise CampaignStoreDamaged(damaged) from None
        raise CampaignStoreBusy(
            f"{path} is in use by another process (a campaign being saved): retry in a moment"
        ) from None
    if not read_only:
        con.execute(SCHEMA)
    return con


def next_id(data_dir: Path, spec_hash: str) -> tuple[str, list[str]]:
    """The id for a new run of ``spec_hash`` and the ids of earlier runs of the same spec."""
    earlier = [c["campaign_id"] for c in list_campaigns(data_dir) if c["spec_hash"] == spec_hash]
    base = spec_hash[:12]
    return (base if not earlier else f"{base}-r{len(earlier) + 1}"), earlier


def _open_for_write(data_dir: Path, wait_s: float = WRITE_WAIT_S) -> duckdb.DuckDBPyConnection:
    """The store for writing, waiting up to ``wait_s`` while a reader (the cockpit's research
    tab reads for a few ms every few seconds) holds it: a finished campaign is never lost to
    that."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _open(data_dir, read_only=False)
        except CampaignStoreBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def check_writable(data_dir: Path) -> None:
    """Open and close the store for writing: a damaged or busy file is found before a campaign
    spends minutes on folds it could not save."""
    _open_for_write(data_dir).close()


def save(data_dir: Path, campaign: dict[str, Any], folds: list[dict[str, Any]]) -> None:
    """Insert one campaign and its fold rows in one transaction."""
    con = _open_for_write(data_dir)
    try:
        con.execute("BEGIN")
        con.execute(_INSERT_CAMPAIGN, [campaign[c] for c in CAMPAIGN_COLS])
        con.executemany(_INSERT_FOLD, [[f[c] for c in FOLD_COLS] for f in folds])
        con.execute("COMMIT")
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CampaignNotSaved(
            f"campaign {campaign['campaign_id']} could not be saved to {store_path(data_dir)} "
            f"({first}): free space and run it again; its results follow on stdout"
        ) from None
    finally:
        con.close()


def _rows(data_dir: Path, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    if not store_path(data_dir).exists():
        return []
    con = _open(data_dir, read_only=True)
    try:
        cur = con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


_SUMMARY = (
    "campaign_id, spec_hash, created_us, interval, start_date, end_date, folds, window_days, "
    "cost_bps, models, runner, total_return, sharpe, max_drawdown, trades, cost_drag, "
    "deflated_sharpe, pbo, verdict, verdict_reason"
)


def list_campaigns(data_dir: Path) -> list[dict[str, Any]]:
    """Every campaign (without equity and spec), newest first."""
    return _rows(
        data_dir,
        f"SELECT {_SUMMARY} FROM campaigns ORDER BY created_us DESC, campaign_id",  # noqa: S608
        [],
    )


def load(data_dir: Path, campaign_id: str) -> dict[str, Any] | None:
    """One campaign with ``spec``, ``equity`` ([[ts_us, equity], ...]), ``candidates`` and
    ``folds`` (rows of ``campaign_folds``, by candidate, cost and fold); None when unknown."""
    found = _rows(data_dir, "SELECT * FROM campaigns WHERE campaign_id = ?", [campaign_id])
    if not found:
        return None
    c = found[0]
    c["spec"] = json.loads(c.pop("spec_json"))
    c["equity"] = json.loads(c.pop("equity_json"))
    c["candidates"] = json.loads(c.pop("candidates_json"))
    c["folds_detail"] = _rows(
        data_dir,
        "SELECT * FROM campaign_folds WHERE campaign_id = ? "
        "ORDER BY candidate, cost_bps DESC, fold",
        [campaign_id],
    )
    return c


def latest_verdict(data_dir: Path, model: str) -> dict[str, Any] | None:
    """The newest campaign whose candidates include ``model`` (a candidate name such as ``ml``,
    or a trained bundle id ``ml_<interval>_vN``, matched to the ``ml`` candidate of its
    interval); None when none ran."""
    for c in list_campaigns(data_dir):
        names = c["models"].split(",")
        if model in names or (model.startswith(f"ml_{c['interval']}_v") and "ml" in names):
            return c
    return None
