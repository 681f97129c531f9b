"""``cockpit model train {trend,return,risk}`` and ``cockpit model list``: research models.

Training reads ``<data-dir>/curated/<interval>/latest.parquet`` and saves a new version under
``<data-dir>/models/`` (``research.training``), plus a bundle ``ml_<interval>_vN`` once the three
kinds exist; no engine is needed and none is touched (a running engine registers a bundle when
``cockpit model challenger ID`` names it).
Exit codes: 0 done; 2 missing input (no curated dataset, too little data) or bad input — one line
naming the remedy (seed 001 incidents B and C).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.config.loader import resolve_data_dir

MODEL_COMMANDS = ("train", "list")


def add_model_parsers(msub: Any, common: Any) -> None:
    t = msub.add_parser("train", help="train a trend, return or risk model on curated data")
    common(t)
    t.add_argument("kind", choices=("trend", "return", "risk"))
    t.add_argument("--interval", default="1h", help="curated interval (default 1h)")
    t.add_argument("--json", action="store_true")
    ls = msub.add_parser("list", help="trained model versions with their out-of-sample metrics")
    common(ls)
    ls.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from research.training import TrainingError, list_models, train

    data_dir = resolve_data_dir(args.data_dir)
    try:
        if args.model_cmd == "list":
            found = list_models(data_dir)
            if args.json:
                print(json.dumps({"models": found}, sort_keys=True))
            elif not found:
                print("no trained models yet (`cockpit model train trend`)")
            for m in [] if args.json else found:
                if m["kind"] == "bundle":
                    print(f"{m['model_id']}: bundle of {', '.join(m['members'].values())}")
                    continue
                shown = ", ".join(f"{k} {v:.4f}" for k, v in m["metrics"].items())
                print(f"{m['model_id']}: {shown} (train {m['train_rows']}, test {m['test_rows']})")
            return 0
        doc = train(data_dir, args.kind, args.interval)
    except TrainingError as exc:
        print(f"cockpit: {exc}", file=sys.stderr)
        return 2
    summary = {k: doc[k] for k in ("model_id", "metrics", "train_rows", "test_rows", "label")}
    summary["bundle"] = doc.get("bundle")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in doc["metrics"].items())
        print(f"trained {doc['model_id']} on {doc['dataset']['file']}: out of sample {shown}")
        if doc.get("bundle"):
            print(f"bundle {doc['bundle']} written (trend + return + risk): make it the challenger "
                  f"with `cockpit model challenger {doc['bundle']}`")  # fmt: skip
    return 0
