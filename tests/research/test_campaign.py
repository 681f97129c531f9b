"""Walk-forward campaigns through the real engine: embargoed folds, deterministic metrics,
identical locally and on a Dask LocalCluster, persisted and recognised by spec hash."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.store.candles import INTERVAL_US, insert_candles, open_market_db
from engine.strategy.curate import curate
from research import campaign_store
from research.campaign import CampaignError, CampaignSpec, plan, run_campaign
from research.training import EMBARGO_CANDLES, load_dataset
from tests.acceptance.helpers import run
from tests.conftest import fill_disk

H = INTERVAL_US["1h"]
T0 = int(dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp() * 1e6)
SPEC = CampaignSpec("1h", "2026-06-20", "2026-07-10", 10, 4, 5.0, ("ml", "momentum"))
THRESHOLDS = {"models.prob_min": 0.55, "models.min_expected_return": 0.0}
FOLD_KEYS = ("candidate", "fold", "cost_bps", "total_return", "sharpe", "max_drawdown",
             "hit_rate", "turnover", "costs_paid", "trades", "candles", "ticks")  # fmt: skip


def make_curated(data_dir: Path, days: int = 45) -> None:
    con = open_market_db(data_dir)
    for k, sym in enumerate(("BTC/USDT", "ETH/USDT")):
        rnd = random.Random(k)
        c, rows = 60000.0 / (1 + 15 * k), []
        for i in range(24 * days):
            o = c
            c = o * math.exp(rnd.gauss(0.0, 0.004) + 0.002 * math.sin(i / 40))
            rows.append([(T0 + i * H) // 1000, o, max(o, c) * 1.001, min(o, c) * 0.999, c,
                         rnd.uniform(5, 15)])  # fmt: skip
        insert_candles(con, sym, "1h", rows)
    con.close()
    curate(data_dir, "1h", "camp", dt.date(2026, 12, 4))


def _folds(data_dir: Path, campaign_id: str) -> list[tuple[object, ...]]:
    c = campaign_store.load(data_dir, campaign_id)
    assert c is not None
    return [tuple(f[k] for k in FOLD_KEYS) for f in c["folds_detail"]]


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("campaign")
    make_curated(d)
    return d


def test_plan_embargoes_training_before_each_fold(curated: Path) -> None:
    table, _ = load_dataset(curated, "1h")
    tasks = plan(SPEC, table, THRESHOLDS)
    assert len(tasks) == 4
    for a, b in itertools.pairwise(tasks):
        assert a.test_to_us == b.test_from_us  # folds tile [start, end)
    for t in tasks:
        # a training row at t has labels up to t + 24 candles: all end before the fold
        assert t.train_to_us + EMBARGO_CANDLES * H <= t.test_from_us + 0
        assert t.test_from_us - t.train_to_us == EMBARGO_CANDLES * H
    with pytest.raises(CampaignError, match="backfill with `cockpit data backfill --interval 1h"):
        plan(CampaignSpec("1h", "2026-06-05", "2026-07-10", 30, 4, 5.0), table, THRESHOLDS)


def test_campaign_local_and_dask_give_identical_metrics(curated: Path) -> None:
    from distributed import LocalCluster

    local = run_campaign(curated, SPEC, THRESHOLDS, workers=2, now_us=1)
    assert local["campaign_id"] == local["spec_hash"][:12]
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None)  # type: ignore[no-untyped-call]  # fmt: skip
    with cluster:
        remote = run_campaign(curated, SPEC, THRESHOLDS, dask=cluster.scheduler_address, now_us=2)
    assert remote["spec_hash"] == local["spec_hash"]  # a rerun is recognised...
    assert remote["campaign_id"] == local["campaign_id"] + "-r2"  # ...and kept, not replaced
    assert remote["earlier_runs"] == [local["campaign_id"]]
    assert remote["runner"].startswith("dask tcp://127.0.0.1:")
    rows = _folds(curated, local["campaign_id"])
    assert rows == _folds(curated, remote["campaign_id"])
    assert len(rows) == 4 * 2 * 2  # folds x candidates x (cost, zero-cost twin)
    for key in ("total_return", "sharpe", "deflated_sharpe", "pbo", "cost_drag", "trades"):
        assert local[key] == remote[key], key
    assert local["trades"] > 0
    assert local["cost_drag"] > 0  # the twin without fees or spread did better
    assert 0.0 <= local["deflated_sharpe"] <= 1.0
    assert local["pbo"] is not None
    eq = json.loads(local["equity_json"])
    assert eq[0][1] == 1.0
    assert len(eq) == 20 * 24 + 1
    assert local["verdict"] in ("pass", "fail")
    assert local["verdict_reason"]


def test_campaign_cli_run_list_show_and_errors(curated: Path) -> None:
    args = ["--data-dir", str(curated)]
    r = run("campaign", "run", *args, "--start", "2026-06-20", "--end", "2026-07-10",
            "--walk-forward-window", "10", "--folds", "2", "--cost-bps", "10",
            "--models", "momentum,reversal", "--workers", "0", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["models"] == "momentum,reversal"
    assert doc["folds"] == 2
    assert doc["spec"]["code_version"]
    assert doc["spec"]["dataset_sha256"]
    shown = run("campaign", "show", *args, doc["campaign_id"])
    assert shown.returncode == 0
    assert "fold 2 reversal 10bps" in shown.stdout
    listed = run("campaign", "list", *args)
    assert doc["campaign_id"] in listed.stdout
    bad = run("campaign", "run", *args, "--start", "2026-07-10", "--end", "2026-06-20",
              "--walk-forward-window", "10", "--cost-bps", "5")  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "must be after" in bad.stderr
    unknown = run("campaign", "run", *args, "--start", "2026-06-20", "--end", "2026-07-10",
                  "--walk-forward-window", "10", "--cost-bps", "5", "--models", "ml,magic")  # fmt: skip
    assert unknown.returncode == 2
    assert "unknown candidate 'magic'" in unknown.stderr
    down = run("campaign", "run", *args, "--start", "2026-06-20", "--end", "2026-07-10",
               "--walk-forward-window", "10", "--cost-bps", "5", "--dask", "tcp://127.0.0.1:9")  # fmt: skip
    assert down.returncode == 1
    assert "cannot reach the Dask scheduler" in down.stderr
    assert "Traceback" not in down.stderr + bad.stderr + unknown.stderr
    missing = run("campaign", "show", *args, "nope")
    assert missing.returncode == 2
    assert "campaign list" in missing.stderr


def test_campaign_store_damaged_or_held_is_one_line_and_kept(tmp_path: Path) -> None:
    import duckdb

    d = tmp_path / "d"
    store = campaign_store.store_path(d)
    store.parent.mkdir(parents=True)
    store.write_bytes(b"not a database")
    listed = run("campaign", "list", "--data-dir", str(d))
    assert listed.returncode == 2
    assert "not a readable DuckDB database" in listed.stderr
    assert listed.stderr.count("\n") == 1
    assert store.read_bytes() == b"not a database"  # kept as it was, never replaced
    market = d / "market" / "candles.duckdb"
    market.parent.mkdir()
    market.write_bytes(b"\x00" * 64)
    gaps = run("data", "gaps", "--interval", "1h", "--days", "1", "--data-dir", str(d))
    assert "not a readable DuckDB database" in gaps.stderr
    assert "Traceback" not in gaps.stderr
    store.unlink()
    campaign_store.check_writable(d)
    holder = duckdb.connect(str(store))  # another process holds it (DuckDB: one writer process)
    try:
        busy = run("campaign", "list", "--data-dir", str(d))
    finally:
        holder.close()
    assert busy.returncode == 3
    assert "in use by another process" in busy.stderr
    assert store.stat().st_mode & 0o777 == 0o600


def test_fold_worker_killed_mid_replay_leaves_scratch_the_next_fold_sweeps(curated: Path) -> None:
    import glob
    import signal
    import subprocess
    import sys
    import time

    from research.fold_replay import _scratch, sweep_stale

    code = (
        "import sys; from pathlib import Path\n"
        "from research.campaign import CampaignSpec, plan\n"
        "from research.training import load_dataset\n"
        "from research.fold_replay import run_fold\n"
        "t, _ = load_dataset(Path(sys.argv[1]), '1h')\n"
        "spec = CampaignSpec('1h', '2026-06-20', '2026-07-10', 10, 4, 5.0, ('momentum',),"
        " ticks_per_candle=4000)\n"
        "run_fold(plan(spec, t, {})[0])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(curated)])
    pattern = f"{_scratch() or '/tmp'}/campaign-fold-{proc.pid}-*"
    deadline = time.monotonic() + 60
    while not glob.glob(pattern) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    (left,) = glob.glob(pattern)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert Path(left).is_dir()  # kill -9: no cleanup ran
    assert left in sweep_stale()
    assert not Path(left).exists()


def test_campaign_on_a_full_disk_is_one_line_and_its_results_are_printed(
    curated: Path, tmpfs: Callable[..., Path]
) -> None:
    import shutil

    mnt = tmpfs("4m")
    d = mnt / "d"
    shutil.copytree(curated / "curated", d / "curated")
    filler = fill_disk(mnt, leave=60 * 1024)  # room to open, not to save
    r = run("campaign", "run", "--data-dir", str(d), "--start", "2026-06-20", "--end",
            "2026-07-10", "--walk-forward-window", "10", "--folds", "2", "--cost-bps", "5",
            "--models", "momentum", "--workers", "0", "--json")  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    warned, failed = r.stderr.splitlines()  # the resume cannot be kept either: said once
    assert "finished folds cannot be kept for a resume" in warned
    assert "campaign-work" in warned
    assert "could not be saved" in failed
    assert "No space left on device" in failed
    assert "resumes" not in failed  # no promise the kept folds cannot keep
    assert json.loads(r.stdout)["folds"] == 2  # the finished work, not lost
    filler.unlink()
    listed = run("campaign", "list", "--data-dir", str(d))
    assert listed.returncode == 0, listed.stderr  # the store is usable once space is back


def _copy(curated: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(curated / "curated", to / "curated")
    return to


CLI_RUN = ("campaign", "run", "--start", "2026-06-20", "--end", "2026-07-10",
           "--walk-forward-window", "10", "--folds", "4", "--cost-bps", "5",
           "--models", "ml,momentum", "--workers", "0", "--json")  # fmt: skip


def test_campaign_killed_mid_run_then_rerun_resumes_kept_folds_with_identical_metrics(
    curated: Path, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import clean_env, cockpit_cmd

    ref_dir, d = _copy(curated, tmp_path / "ref"), _copy(curated, tmp_path / "d")
    ref = run(*CLI_RUN, "--data-dir", str(ref_dir), timeout=300)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen(cockpit_cmd(*CLI_RUN, "--data-dir", str(d)), env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    work = d / "research" / "campaign-work"
    deadline = time.monotonic() + 120
    while not list(work.glob("*/fold-0.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the campaign ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-campaign (the next fold is under way)
    proc.wait(timeout=30)
    kept = sorted(p.name for p in work.glob("*/fold-*.json"))
    assert kept
    assert len(kept) < 4
    again = run(*CLI_RUN, "--data-dir", str(d), timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(kept)} of 4 folds" in again.stderr
    doc, want = json.loads(again.stdout), json.loads(ref.stdout)
    assert doc["resumed_folds"] == len(kept)
    assert want["resumed_folds"] == 0
    assert doc["campaign_id"] == want["campaign_id"]  # the same spec...
    assert _folds(d, doc["campaign_id"]) == _folds(ref_dir, want["campaign_id"])  # ...same folds
    for key in ("total_return", "sharpe", "deflated_sharpe", "pbo", "cost_drag", "equity"):
        assert doc[key] == want[key], key
    assert not work.exists()  # saved: the kept folds are gone


def test_campaign_when_a_kept_fold_is_damaged_then_kept_aside_named_and_recomputed(
    curated: Path, tmp_path: Path
) -> None:
    from research.campaign import spec_document, spec_hash

    d = _copy(curated, tmp_path / "d")
    spec = CampaignSpec("1h", "2026-06-20", "2026-07-10", 10, 2, 5.0, ("momentum",))
    _, dataset = load_dataset(d, "1h")
    digest = spec_hash(spec_document(spec, str(dataset["sha256"]), THRESHOLDS))
    work = d / "research" / "campaign-work" / digest
    work.mkdir(parents=True)
    (work / "fold-1.json").write_text('{"spec_hash": "' + digest + '", "result": {"fold": 1, "ru')
    (work / "fold-0.json").write_text(json.dumps({"spec_hash": "another", "result": {}}))
    said: list[str] = []
    got = run_campaign(d, spec, THRESHOLDS, workers=0, now_us=1, note=said.append)
    assert got["resumed_folds"] == 0
    (line,) = said
    aside = sorted(work.glob("fold-*.json.damaged-*"))
    assert len(aside) == 2  # both kept, named
    assert all(str(p) in line for p in aside)
    assert (work / "fold-1.json").exists() is False
    fresh = run_campaign(_copy(curated, tmp_path / "f"), spec, THRESHOLDS, workers=0, now_us=1)
    assert _folds(d, got["campaign_id"]) == _folds(tmp_path / "f", fresh["campaign_id"])


def _descends(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent's pid
    return False


def test_campaign_when_a_fold_worker_is_killed_then_one_line_exit_1_and_rerun_resumes(
    curated: Path, tmp_path: Path
) -> None:
    import glob
    import os
    import signal
    import subprocess
    import time

    from research.fold_replay import _scratch
    from tests.conftest import clean_env, cockpit_cmd

    d = _copy(curated, tmp_path / "d")
    cmd = [*CLI_RUN[:-2], "2", "--json", "--data-dir", str(d)]  # two local worker processes
    proc = subprocess.Popen(cockpit_cmd(*cmd), env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    victim, deadline = 0, time.monotonic() + 120
    while not victim and time.monotonic() < deadline and proc.poll() is None:
        for path in glob.glob(f"{_scratch() or '/tmp'}/campaign-fold-*"):
            pid = int(Path(path).name.split("-")[2])
            if _descends(pid, proc.pid):  # a worker of this run, mid-fold
                victim = pid
        time.sleep(0.02)
    assert victim, "no fold worker seen"
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # was: a BrokenProcessPool traceback
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert "a fold worker process died" in line
    assert "run the same command again" in line
    again = run(*cmd, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["folds"] == 4
