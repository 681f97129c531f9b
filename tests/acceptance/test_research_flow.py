"""The whole offline research flow from a shell, as issue 16's "done" describes it: backfill 1h
and 1d from the loopback venue, a gap found and repaired, two curated versions, the three models
(and their bundle), a signal with its reasons, and a 4-fold walk-forward campaign with costs run
locally and on a Dask LocalCluster with identical metrics."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.acceptance.helpers import clear_of_hour_turn, run, start, wait_for_log
from tests.acceptance.test_backfill import Venue, _backfill, venue  # noqa: F401 (fixture)

FOLD_KEYS = ("candidate", "fold", "cost_bps", "total_return", "sharpe", "max_drawdown",
             "hit_rate", "turnover", "costs_paid", "trades")  # fmt: skip


def _ok(*args: str, timeout: float = 300) -> str:
    r = run(*args, timeout=timeout)
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    return r.stdout


def _campaign(d: Path, start: str, end: str, *extra: str) -> dict[str, object]:
    out = _ok("campaign", "run", "--data-dir", str(d), "--start", start, "--end", end,
              "--walk-forward-window", "10", "--folds", "4", "--cost-bps", "7.5", "--json",
              *extra, timeout=600)  # fmt: skip
    doc: dict[str, object] = json.loads(out)
    return doc


def test_offline_research_flow_end_to_end(tmp_path: Path, venue: Venue) -> None:  # noqa: F811
    d = tmp_path / "d"
    clear_of_hour_turn(90)  # backfill to "gaps: none" must not straddle a new candle
    today = dt.datetime.now(dt.UTC).date()
    since = (today - dt.timedelta(days=30)).isoformat()
    hole_day = dt.datetime.combine(today - dt.timedelta(days=3), dt.time(), tzinfo=dt.UTC)
    start_ms = int(hole_day.timestamp() * 1000)
    venue.admin("klines/gaps", {"symbol": "BTC/USDT", "interval": "1h", "start_ms": start_ms,
                                "end_ms": start_ms + 2 * 3_600_000})  # fmt: skip
    assert _backfill(d, venue, "1h", since).returncode == 0
    assert _backfill(d, venue, "1d", "2026-01-01").returncode == 0
    gaps = run("data", "gaps", "--interval", "1h", "--days", "7", "--data-dir", str(d), "--json")
    assert gaps.returncode == 1
    assert [g["candles"] for g in json.loads(gaps.stdout)["gaps"]] == [3]
    venue.clear_gaps()
    assert _backfill(d, venue, "1h", since).returncode == 0  # fetches only the hole
    _ok("data", "gaps", "--interval", "1h", "--days", "7", "--data-dir", str(d))
    for tag in ("first", "second"):
        _ok("data", "curate", "--interval", "1h", "--tag", tag, "--data-dir", str(d))
    versions = json.loads(_ok("data", "versions", "--data-dir", str(d), "--json"))["versions"]
    assert [v["tag"] for v in versions] == ["first", "second"]
    for kind in ("trend", "return", "risk"):
        _ok("model", "train", kind, "--data-dir", str(d))
    models = json.loads(_ok("model", "list", "--data-dir", str(d), "--json"))["models"]
    assert [m["model_id"] for m in models if m["kind"] == "bundle"] == ["ml_1h_v1"]
    _ok("signal", "--data-dir", str(d))
    signal = json.loads((d / "signals" / "latest.json").read_text())
    assert "ml_1h_v1" in json.dumps(signal)
    start = (today - dt.timedelta(days=9)).isoformat()
    end = (today - dt.timedelta(days=1)).isoformat()
    local = _campaign(d, start, end, "--workers", "2")
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None)  # type: ignore[no-untyped-call]  # fmt: skip
    with cluster:
        remote = _campaign(d, start, end, "--dask", cluster.scheduler_address)
    assert remote["spec_hash"] == local["spec_hash"]
    shown = [json.loads(_ok("campaign", "show", str(c["campaign_id"]), "--data-dir", str(d),
                            "--json")) for c in (local, remote)]  # fmt: skip
    rows = [[tuple(f[k] for k in FOLD_KEYS) for f in s["folds_detail"]] for s in shown]
    assert rows[0] == rows[1]
    assert len(rows[0]) == 4 * 2 * 2
    assert sum(r[-1] for r in rows[0]) > 0  # the replays traded
    listed = _ok("campaign", "list", "--data-dir", str(d))
    assert str(local["campaign_id"]) in listed
    assert str(remote["campaign_id"]) in listed


def test_running_engine_trades_a_trained_bundle_and_signal_follows_its_champion(
    tmp_path: Path,
) -> None:
    from engine.strategy.curate import curate
    from research.training import train
    from tests.research.test_campaign import make_curated

    d = tmp_path / "d"
    make_curated(d, days=30)
    curate(d, "1h", "t", dt.date(2026, 12, 4))
    for kind in ("trend", "return", "risk"):
        train(d, kind, "1h", now_us=1)
    proc = start("--headless", "--data-dir", str(d), "--duration", "120")
    try:
        wait_for_log(d, "engine running", timeout=60)
        st = json.loads(_ok("status", "--data-dir", str(d), "--json"))
        assert st["models"]["champion"] == "trend_v1"
        _ok("model", "challenger", "ml_1h_v1", "--yes", "--data-dir", str(d))
        _ok("model", "promote", "--yes", "--data-dir", str(d))
        st = json.loads(_ok("status", "--data-dir", str(d), "--json"))
        assert (st["models"]["champion"], st["models"]["challenger"]) == ("ml_1h_v1", "trend_v1")
        out = _ok("signal", "--data-dir", str(d))
        assert "the engine's champion" in out  # read from the running engine, not guessed
        _ok("model", "rollback", "--yes", "--data-dir", str(d))  # seed 001 §7
        st = json.loads(_ok("status", "--data-dir", str(d), "--json"))
        assert st["models"]["champion"] == "trend_v1"
        bad = run("model", "challenger", "ml_1h_v7", "--yes", "--data-dir", str(d))
        assert bad.returncode != 0
        assert "model file not found" in bad.stderr + bad.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=60)
