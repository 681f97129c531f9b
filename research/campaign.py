"""Walk-forward campaigns (seed 003 run_campaign, seed 001 backtest --folds).

Role: ``plan`` cuts ``[start, end)`` into ``folds`` equal test folds, each trained on the
``window_days`` before it less an embargo; ``run_campaign`` fans the folds out (local worker
processes, or a Dask cluster with ``dask``), stitches the out-of-sample equity, computes the
verdict (deflated Sharpe, PBO across the candidates, the zero-cost twin's cost drag) and saves it
with ``campaign_store``.

Invariants:
- Embargo: a training row at t has labels up to t + 24 candles, so training rows end
  ``EMBARGO_CANDLES`` candles before the fold: no training label overlaps the test fold.
- The campaign id is the hash of its spec: code version (hash of the engine and research
  sources), the dataset's sha256, interval, dates, window, folds, costs, candidates, thresholds
  and replay settings. The same spec gives the same metrics, locally or on Dask.
- Folds are independent: results are ordered by fold, whatever order workers finish in.
- Nothing finished is lost: each fold is kept on disk as it completes (``fold_checkpoints``) until
  the campaign is saved, so a run killed mid-way, or refused by a full disk at the save, resumes
  from the folds it had (same spec hash: the same results).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import socket
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from engine.store.candles import INTERVAL_US
from research import campaign_store, stats
from research.candidates import CANDIDATES
from research.fold_checkpoints import FoldCheckpoints
from research.fold_replay import FoldTask, candles_for_fold, run_fold, to_ipc
from research.training import EMBARGO_CANDLES, TrainingError, load_dataset

DAY_US = 86_400_000_000
MIN_TRAIN_ROWS = 100
DSR_PASS = 0.95
PBO_PASS = 0.5
ROOT = Path(__file__).resolve().parents[1]


class CampaignError(Exception):
    """A campaign that cannot run: one line naming the input and the remedy. ``code`` is the
    exit code: 2 bad input (the default), 1 the run could not be carried out (the Dask scheduler
    is unreachable, a fold worker died)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class WorkerLost(Exception):
    """A fold's worker process died (kill -9, out of memory): the folds kept so far stay kept."""


@dataclass(frozen=True)
class CampaignSpec:
    interval: str
    start: str  # YYYY-MM-DD (UTC), inclusive
    end: str  # YYYY-MM-DD (UTC), exclusive
    window_days: int
    folds: int
    cost_bps: float
    models: tuple[str, ...] = ("ml", "momentum")
    ticks_per_candle: int = 4
    spread_bps: float = 1.0


def _day_us(text: str, flag: str) -> int:
    try:
        d = dt.date.fromisoformat(text)
    except ValueError:
        raise CampaignError(f"{flag} {text!r}: expected YYYY-MM-DD") from None
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * 1_000_000


def check_spec(spec: CampaignSpec) -> None:
    if spec.interval not in INTERVAL_US:
        raise CampaignError(f"--interval {spec.interval!r}: one of {', '.join(INTERVAL_US)}")
    if _day_us(spec.end, "--end") <= _day_us(spec.start, "--start"):
        raise CampaignError(f"--end {spec.end} must be after --start {spec.start}")
    if not 1 <= spec.folds <= 100:
        raise CampaignError(f"--folds {spec.folds}: between 1 and 100")
    if not 1 <= spec.window_days <= 3650:
        raise CampaignError(f"--walk-forward-window {spec.window_days}: days, 1..3650")
    if not 0 <= spec.cost_bps <= 1000:
        raise CampaignError(f"--cost-bps {spec.cost_bps}: between 0 and 1000")
    if not spec.models or len(set(spec.models)) != len(spec.models):
        raise CampaignError("--models: one or more distinct candidates, e.g. ml,momentum")
    for m in spec.models:
        if m not in CANDIDATES:
            raise CampaignError(
                f"--models: unknown candidate {m!r}; known: {', '.join(CANDIDATES)}"
            )


def code_version() -> str:
    """sha256 of the engine and research sources: a code change is a new spec."""
    h = hashlib.sha256()
    for pkg in ("engine", "research"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def spec_document(
    spec: CampaignSpec, dataset_sha: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    return {**asdict(spec), "models": list(spec.models), "dataset_sha256": dataset_sha,
            "code_version": code_version(), "thresholds": overrides}  # fmt: skip


def spec_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def plan(spec: CampaignSpec, table: pl.DataFrame, overrides: dict[str, Any]) -> list[FoldTask]:
    step = INTERVAL_US[spec.interval]
    start, end = _day_us(spec.start, "--start"), _day_us(spec.end, "--end")
    have_from, have_to = int(table["open_us"].min()), int(table["open_us"].max())  # type: ignore[arg-type]
    need_from = start - spec.window_days * DAY_US - EMBARGO_CANDLES * step
    if need_from < have_from or end - step > have_to:
        raise CampaignError(
            f"curated {spec.interval} data covers {_date(have_from)}..{_date(have_to + step)}; "
            f"this campaign needs {_date(need_from)}..{_date(end)} (window + folds): backfill "
            f"with `cockpit data backfill --interval {spec.interval} --since {_date(need_from)}`, "
            "then curate again"
        )
    n_candles = (end - start) // step
    if n_candles < spec.folds * 2:
        raise CampaignError(
            f"{n_candles} candles from --start to --end: too few for {spec.folds} folds"
        )
    tasks = []
    for k in range(spec.folds):
        t0 = start + (n_candles * k // spec.folds) * step
        t1 = start + (n_candles * (k + 1) // spec.folds) * step
        tr1 = t0 - EMBARGO_CANDLES * step
        tr0 = tr1 - spec.window_days * DAY_US
        train = table.filter((pl.col("open_us") >= tr0) & (pl.col("open_us") < tr1))
        if train.height < MIN_TRAIN_ROWS:
            raise CampaignError(
                f"fold {k + 1}: {train.height} training rows in the {spec.window_days}-day window "
                f"(need {MIN_TRAIN_ROWS}): lengthen --walk-forward-window or use a shorter interval"
            )
        tasks.append(FoldTask(
            fold=k, interval=spec.interval, candidates=spec.models, costs=(spec.cost_bps, 0.0),
            train_ipc=to_ipc(train), candles_ipc=to_ipc(candles_for_fold(table, t0, t1, step)),
            test_from_us=t0, test_to_us=t1, train_from_us=tr0, train_to_us=tr1,
            overrides=overrides, ticks_per_candle=spec.ticks_per_candle,
            spread_bps=spec.spread_bps,
        ))  # fmt: skip
    return tasks


def _date(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).date().isoformat()


def fan_out(tasks: list[FoldTask], workers: int, dask: str | None,
            finished: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """``run_fold`` over ``tasks``: on a Dask cluster, in ``workers`` local processes, or inline
    (``workers`` 0). ``finished`` sees each fold's result as it completes (any order); the
    results come back in fold order."""
    if not tasks:
        return []
    if dask:
        return _on_dask(tasks, dask, finished)
    out = []
    if workers <= 0:
        for t in tasks:
            out.append(run_fold(t))
            if finished:
                finished(out[-1])
        return out
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        try:
            for f in as_completed([pool.submit(run_fold, t) for t in tasks]):
                out.append(f.result())
                if finished:
                    finished(out[-1])
        except BrokenProcessPool:
            raise WorkerLost("a fold worker process died (killed, or out of memory)") from None
    return sorted(out, key=lambda r: int(r["fold"]))


def _reachable(address: str) -> None:
    """A refused tcp:// scheduler is one line now, not after the client's retries time out."""
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    if not address.startswith("tcp://") or not port.isdigit():
        return  # tls://, inproc:// ...: the client reports those itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5.0).close()
    except OSError as exc:
        raise CampaignError(
            f"--dask {address}: cannot reach the Dask scheduler ({exc}); check the address and "
            "that the scheduler runs (`dask scheduler`)",
            code=1,
        ) from None


def _on_dask(
    tasks: list[FoldTask], address: str, finished: Callable[[dict[str, Any]], None] | None
) -> list[dict[str, Any]]:
    from distributed import Client, KilledWorker
    from distributed import as_completed as dask_completed

    _reachable(address)
    try:
        client = Client(address, timeout="10s")  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise CampaignError(
            f"--dask {address}: cannot reach the Dask scheduler ({exc}); check the address and "
            "that the scheduler runs (`dask scheduler`)",
            code=1,
        ) from None
    out = []
    with client:
        futures = client.map(run_fold, tasks, pure=False)
        try:
            for _, result in dask_completed(futures, with_results=True):  # type: ignore[no-untyped-call]
                out.append(result)
                if finished:
                    finished(result)
        except KilledWorker as exc:
            raise WorkerLost(f"Dask lost the workers of a fold ({exc})") from None
    return sorted(out, key=lambda r: int(r["fold"]))


def _metrics(
    run: dict[str, Any], eq: list[float], rets: list[float], held: list[float], per_year: float
) -> dict[str, Any]:
    start = run["start"]
    return {
        "total_return": eq[-1] / eq[0] - 1 if eq and eq[0] else 0.0,
        "sharpe": stats.sharpe(rets, per_year), "max_drawdown": stats.max_drawdown(eq),
        "hit_rate": sum(r > 0 for r in held) / len(held) if held else 0.0,
        "turnover": run["notional"] / start, "costs_paid": run["fees"] + run["crossed"],
        "trades": int(run["trades"]), "candles": len(eq) - 1, "ticks": int(run["ticks"]),
    }  # fmt: skip


def run_campaign(
    data_dir: Path,
    spec: CampaignSpec,
    overrides: dict[str, Any],
    *,
    workers: int = 2,
    dask: str | None = None,
    now_us: int | None = None,
    done: Callable[[int], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume: the folds an interrupted run of the same spec finished are reused) and
    save one campaign; ``done`` hears of each finished fold, ``note`` gets lines for stderr."""
    check_spec(spec)
    try:
        table, dataset = load_dataset(data_dir, spec.interval)
    except TrainingError as exc:
        raise CampaignError(str(exc)) from None
    doc = spec_document(spec, str(dataset.get("sha256")), overrides)
    digest = spec_hash(doc)
    tasks = plan(spec, table, overrides)
    campaign_store.check_writable(data_dir)
    kept = FoldCheckpoints(data_dir, digest)
    resumed = kept.load(len(tasks))
    if note and (resumed or kept.damaged):
        note(_resume_line(kept, len(resumed), len(tasks)))

    def finished(result: dict[str, Any]) -> None:
        told = bool(kept.failed)
        if not kept.put(result) and note and not told:  # once: a full disk fails them all
            note(f"warning: finished folds cannot be kept for a resume ({kept.failed})")
        if done:
            done(int(result["fold"]))

    t0 = time.perf_counter()
    try:
        fresh = fan_out([t for t in tasks if t.fold not in resumed], workers, dask, finished)
    except WorkerLost as exc:
        have = len(kept.load(len(tasks)))
        raise CampaignError(f"{exc}; run the same command again: it resumes from the {have} "
                            f"of {len(tasks)} folds kept", code=1) from None  # fmt: skip
    wall = time.perf_counter() - t0
    results = sorted([*resumed.values(), *fresh], key=lambda r: int(r["fold"]))
    campaign_id, earlier = campaign_store.next_id(data_dir, digest)
    campaign, folds = summarise(spec, tasks, results)
    campaign.update(
        campaign_id=campaign_id, spec_hash=digest, spec_json=json.dumps(doc, sort_keys=True),
        created_us=now_us if now_us is not None else time.time_ns() // 1000,
        interval=spec.interval, start_date=spec.start, end_date=spec.end, folds=spec.folds,
        window_days=spec.window_days, cost_bps=spec.cost_bps, models=",".join(spec.models),
        runner=f"dask {dask}" if dask else f"local x{max(workers, 1)}", wall_s=wall,
    )  # fmt: skip
    for f in folds:
        f["campaign_id"] = campaign_id
    campaign["earlier_runs"] = earlier
    campaign["resumed_folds"] = len(resumed)
    try:
        campaign_store.save(data_dir, campaign, folds)
    except campaign_store.CampaignNotSaved as exc:
        line = str(exc)
        if not kept.failed:  # every fold is on disk: the rerun recomputes nothing
            line = line.replace("run it again", "run it again (it resumes from the kept folds)")
        raise campaign_store.CampaignNotSaved(line, {**campaign, "folds_detail": folds}) from None
    kept.clear(len(tasks))
    return campaign


def _resume_line(kept: FoldCheckpoints, resumed: int, total: int) -> str:
    line = f"resuming: {resumed} of {total} folds finished by an earlier run of this spec"
    if kept.damaged:
        names = ", ".join(str(p) for p in kept.damaged)
        line += f"; damaged checkpoints kept aside and recomputed: {names}"
    return line


def summarise(spec: CampaignSpec, tasks: list[FoldTask],
              results: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """Fold rows, per-candidate stitched curves, the primary's totals and the verdict."""
    per_year = 365 * DAY_US / INTERVAL_US[spec.interval]
    folds: list[dict[str, Any]] = []
    stitched: dict[tuple[str, float], list[float]] = {}
    stitched_runs: dict[tuple[str, float], dict[str, Any]] = {}
    times: list[int] = [tasks[0].test_from_us]
    for task, res in zip(tasks, results, strict=True):
        for run in res["runs"]:
            key = (run["candidate"], run["cost_bps"])
            eq = [v for _, v in run["curve"]]
            rets = stats.returns(eq)  # once per run: metrics, the stitched curve, the hit rate
            held = [r for r, h in zip(rets, run["in_market"], strict=False) if h]
            m = _metrics(run, eq, rets, held, per_year)
            folds.append({
                "candidate": key[0], "fold": task.fold + 1, "cost_bps": key[1],
                "train_from_us": task.train_from_us, "train_to_us": task.train_to_us,
                "test_from_us": task.test_from_us, "test_to_us": task.test_to_us,
                "model_ids": run["model_ids"], **m,
            })  # fmt: skip
            stitched.setdefault(key, []).extend(rets)
            agg = stitched_runs.setdefault(key, {"trades": 0, "costs": 0.0, "held": [],
                                                 "turnover": 0.0})  # fmt: skip
            agg["trades"] += m["trades"]
            agg["costs"] += m["costs_paid"]
            agg["turnover"] += m["turnover"]
            agg["held"].extend(held)
            if key == (spec.models[0], spec.cost_bps):
                times.extend(t for t, _ in run["curve"][1:])
    return _verdict(spec, per_year, stitched, stitched_runs, times), folds


def _equity(rets: list[float]) -> list[float]:
    eq = [1.0]
    for r in rets:
        eq.append(eq[-1] * (1 + r))
    return eq


def _verdict(spec: CampaignSpec, per_year: float, stitched: dict[tuple[str, float], list[float]],
             agg: dict[tuple[str, float], dict[str, Any]], times: list[int]) -> dict[str, Any]:  # fmt: skip
    cost = spec.cost_bps
    cand: dict[str, Any] = {}
    for name in spec.models:
        rets = stitched[(name, cost)]
        eq, eq0 = _equity(rets), _equity(stitched[(name, 0.0)])
        a = agg[(name, cost)]
        cand[name] = {
            "total_return": eq[-1] - 1, "zero_cost_return": eq0[-1] - 1,
            "sharpe": stats.sharpe(rets, per_year), "max_drawdown": stats.max_drawdown(eq),
            "hit_rate": sum(r > 0 for r in a["held"]) / len(a["held"]) if a["held"] else 0.0,
            "turnover": a["turnover"], "costs_paid": a["costs"], "trades": a["trades"],
        }  # fmt: skip
    trial_sr = [stats.sharpe(stitched[(n, cost)], 1.0) for n in spec.models]
    primary = spec.models[0]
    rets = stitched[(primary, cost)]
    dsr = stats.deflated_sharpe(rets, trial_sr)
    pbo = stats.pbo(
        [list(row) for row in zip(*(stitched[(n, cost)] for n in spec.models), strict=True)]
    )
    p = cand[primary]
    fails = []
    if p["total_return"] <= 0:
        fails.append(f"return {p['total_return'] * 100:+.2f} % <= 0")
    if dsr < DSR_PASS:
        fails.append(f"deflated Sharpe {dsr:.2f} < {DSR_PASS}")
    if pbo is not None and pbo > PBO_PASS:
        fails.append(f"PBO {pbo:.2f} > {PBO_PASS}")
    eq = _equity(rets)
    return {
        "total_return": p["total_return"], "sharpe": p["sharpe"], "max_drawdown": p["max_drawdown"],
        "hit_rate": p["hit_rate"], "turnover": p["turnover"], "costs_paid": p["costs_paid"],
        "trades": p["trades"], "zero_cost_return": p["zero_cost_return"],
        "cost_drag": p["zero_cost_return"] - p["total_return"], "deflated_sharpe": dsr, "pbo": pbo,
        "verdict": "fail" if fails else "pass",
        "verdict_reason": "; ".join(fails) if fails else
        f"return {p['total_return'] * 100:+.2f} %, deflated Sharpe {dsr:.2f}, PBO "
        + ("n/a" if pbo is None else f"{pbo:.2f}"),
        "equity_json": json.dumps([[t, round(v, 10)] for t, v in zip(times, eq, strict=False)]),
        "candidates_json": json.dumps(cand, sort_keys=True),
    }  # fmt: skip
