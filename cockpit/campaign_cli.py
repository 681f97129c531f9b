"""``cockpit campaign run|list|show``: walk-forward campaigns (seed 003 run_campaign).

``run`` replays each fold through the real engine (``research.campaign``) in local worker
processes, or on a Dask cluster with ``--dask ADDRESS`` (or ``research.dask`` in the profile), and
saves the result in ``<data-dir>/research/campaigns.duckdb``. A spec that already ran is run again
and saved as a new id (``<hash>-r2``); the output says which earlier runs share the spec and
whether their metrics match. A run killed mid-way, or refused at the save by a full disk, resumes
when run again: each finished fold is kept in ``<data-dir>/research/campaign-work/<spec hash>/``
until the campaign is saved (stderr says how many were reused).

Exit codes: 0 done (whatever the verdict); 1 the Dask scheduler is unreachable, or a fold worker
died (kill -9, out of memory: the run resumes when run again); 2 bad or missing
input (dates, candidates, no curated data, too little data, a damaged campaigns DB — named, never
replaced) — one line naming the remedy; 3 the campaigns DB is held by another process, or a
finished campaign could not be written (a full disk: its results are printed as JSON instead).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from engine.config.loader import load_config, resolve_data_dir

CAMPAIGN_COLUMNS = ("total_return", "sharpe", "max_drawdown", "deflated_sharpe", "pbo")


def add_parsers(sub: Any, common: Any) -> None:
    c = sub.add_parser("campaign", help="walk-forward campaigns through the engine")
    csub = c.add_subparsers(dest="campaign_cmd", required=True)
    r = csub.add_parser("run", help="run a walk-forward campaign and save its metrics")
    common(r)
    r.add_argument("--start", required=True, help="first test day, YYYY-MM-DD (UTC)")
    r.add_argument("--end", required=True, help="end of the last test fold, YYYY-MM-DD (UTC)")
    r.add_argument("--walk-forward-window", type=int, required=True, dest="window",
                   help="training window before each fold, days")  # fmt: skip
    r.add_argument("--folds", type=int, default=4)
    r.add_argument("--cost-bps", type=float, required=True, help="fee per trade, bps")
    r.add_argument("--models", default="ml,momentum",
                   help="candidates, comma-separated: ml, momentum, reversal (first = verdict)")  # fmt: skip
    r.add_argument("--interval", default="1h")
    r.add_argument("--workers", type=int, help="local worker processes (default: profile's)")
    r.add_argument("--dask", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    r.add_argument("--json", action="store_true")
    ls = csub.add_parser("list", help="campaigns, newest first")
    common(ls)
    ls.add_argument("--json", action="store_true")
    sh = csub.add_parser("show", help="one campaign: totals, verdict and folds")
    common(sh)
    sh.add_argument("campaign_id")
    sh.add_argument("--json", action="store_true")


def _err(msg: str) -> None:
    print(f"cockpit: {msg}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from research.campaign_store import CampaignNotSaved, CampaignStoreBusy, CampaignStoreDamaged

    try:
        if args.campaign_cmd == "run":
            return _run(args)
        if args.campaign_cmd == "list":
            return _list(args)
        return _show(args)
    except CampaignStoreBusy as exc:
        _err(str(exc))
        return 3
    except CampaignStoreDamaged as exc:
        _err(str(exc))
        return 2
    except CampaignNotSaved as exc:  # the work is done: show it rather than lose it
        _err(str(exc))
        if exc.campaign is not None:
            print(json.dumps(_public(exc.campaign), sort_keys=True, default=str))
        return 3


def _thresholds(cfg: Any) -> dict[str, Any]:
    """The profile's keys a replay needs (the fold workers start from the built-in paper one)."""
    return {
        "models.prob_min": cfg.models.prob_min,
        "models.min_expected_return": cfg.models.min_expected_return,
        "risk.risk_per_trade_pct": cfg.risk.risk_per_trade_pct,
        "paper.starting_balance_usd": cfg.paper.starting_balance_usd,
        "oms.order_type": cfg.oms.order_type,
    }


def _run(args: argparse.Namespace) -> int:
    from research.campaign import CampaignError, CampaignSpec, run_campaign

    data_dir = resolve_data_dir(args.data_dir)
    cfg = load_config(args.profile)
    workers = args.workers if args.workers is not None else cfg.research.campaign_workers
    dask = args.dask or cfg.research.dask or None
    if workers < 0 or workers > 256:
        _err(f"--workers {workers}: between 0 (inline) and 256")
        return 2
    spec = CampaignSpec(
        interval=args.interval, start=args.start, end=args.end, window_days=args.window,
        folds=args.folds, cost_bps=args.cost_bps,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
    )  # fmt: skip

    def done(fold: int) -> None:
        if not args.json:
            print(f"fold {fold + 1}/{spec.folds} done", flush=True)

    try:
        c = run_campaign(data_dir, spec, _thresholds(cfg), workers=workers, dask=dask,
                         done=done, note=_err)  # fmt: skip
    except CampaignError as exc:
        _err(str(exc))
        return exc.code
    if args.json:
        print(json.dumps(_public(c), sort_keys=True))
        return 0
    print(_line(c))
    if c["earlier_runs"]:
        print(f"same spec as {', '.join(c['earlier_runs'])}: compare with `cockpit campaign show`")
    return 0


def _public(c: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in c.items() if not k.endswith("_json")}
    for k in ("spec_json", "equity_json", "candidates_json"):
        if k in c:
            out[k.removesuffix("_json")] = json.loads(c[k])
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:+.2f} %"


def _line(c: dict[str, Any]) -> str:
    pbo = "n/a" if c["pbo"] is None else f"{c['pbo']:.2f}"
    return (
        f"campaign {c['campaign_id']} ({c['interval']} {c['start_date']}..{c['end_date']}, "
        f"{c['folds']} folds, {c['cost_bps']:g} bps, {c['models']}, {c['runner']}): "
        f"{c['verdict'].upper()} — return {_pct(c['total_return'])}, Sharpe {c['sharpe']:.2f}, "
        f"max DD {c['max_drawdown'] * 100:.2f} %, trades {c['trades']}, cost drag "
        f"{_pct(c['cost_drag'])}, deflated Sharpe {c['deflated_sharpe']:.2f}, PBO {pbo}"
        f" ({c['verdict_reason']})"
    )


def _list(args: argparse.Namespace) -> int:
    from research.campaign_store import list_campaigns

    found = list_campaigns(resolve_data_dir(args.data_dir))
    if args.json:
        print(json.dumps({"campaigns": found}, sort_keys=True, default=str))
        return 0
    if not found:
        print("no campaigns yet (`cockpit campaign run --start ... --end ...`)")
    for c in found:
        when = dt.datetime.fromtimestamp(c["created_us"] / 1e6, tz=dt.UTC)
        print(f"{when:%Y-%m-%d %H:%M}Z {_line(c)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from research.campaign_store import load

    c = load(resolve_data_dir(args.data_dir), args.campaign_id)
    if c is None:
        _err(f"no campaign {args.campaign_id!r}: `cockpit campaign list` shows the ids")
        return 2
    if args.json:
        print(json.dumps(c, sort_keys=True, default=str))
        return 0
    print(_line(c))
    print(f"spec {c['spec_hash'][:16]} code {c['spec']['code_version']} "
          f"dataset {str(c['spec']['dataset_sha256'])[:16]}")  # fmt: skip
    for name, m in c["candidates"].items():
        print(f"  {name}: return {_pct(m['total_return'])} (zero-cost {_pct(m['zero_cost_return'])}), "
              f"Sharpe {m['sharpe']:.2f}, trades {m['trades']}")  # fmt: skip
    for f in c["folds_detail"]:
        test = dt.datetime.fromtimestamp(f["test_from_us"] / 1e6, tz=dt.UTC)
        print(f"  fold {f['fold']} {f['candidate']} {f['cost_bps']:g}bps from {test:%Y-%m-%d}: "
              f"return {_pct(f['total_return'])}, Sharpe {f['sharpe']:.2f}, max DD "
              f"{f['max_drawdown'] * 100:.2f} %, hit {f['hit_rate'] * 100:.0f} %, "
              f"turnover {f['turnover']:.2f}, costs {f['costs_paid']:.2f}, trades {f['trades']}")  # fmt: skip
    return 0
