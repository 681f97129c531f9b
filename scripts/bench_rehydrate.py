#!/usr/bin/env python3
"""Benchmark: rehydrate (start-up with a large order history) through the real ``cockpit`` process.

Set-up (not timed): the loopback venue simulator runs as its own process (it is the exchange);
the real engine creates its data dir once (a 1 s headless run, safe mode on, which also fixes the
venue balance baseline); ``--open`` resting LIMIT orders far from the market are placed at the
venue with our client ids (``POST /admin/order_external``); then ``--orders`` historical orders
with one fill each (filled, paired buy/sell so every symbol nets flat), their outbox rows and the
open orders (status ``accepted``, same client and venue ids) are bulk-inserted into DuckDB, each
historical order and outbox row as two versions (submitted, then filled), as a live session leaves
them.
Historical ids use the synthetic session ``h_`` (``ck-h_-<n>``), open ones ``o_``: ``_`` is not a
base-36 digit, so no engine session can ever generate them.

Timed, ``--runs`` times: ``python -m cockpit --headless`` is spawned fresh (like an operator
restarting after a crash) and the clock runs from just before the spawn until ``engine running``
appears in ``<data-dir>/logs/engine.log``, which the runner logs only after the start-up
reconciliation matched every open order against the venue. Then SIGTERM, clean exit expected.

Prints one JSON line: medians and maxima over the runs, the reconciliation duration and a phase
breakdown from the log timestamps (ms since spawn). Goal ≤ 1 s; runbook limit 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # its sibling module, also when loaded by path

from rehydrate_seed import Venue, place_open_orders, seed_db  # noqa: E402

READY = "engine running"
RECON = "reconciliation (startup)"

PROFILE = """
kind = "testnet"
venue = "ccxt"
feed = "exchange"
offline = true
observer_start = false
[risk]
safe_mode = true
[live]
readiness_required = []
[exchange]
rest_url = "http://127.0.0.1:{port}"
ws_url = "ws://127.0.0.1:{port}"
"""


def _cockpit(profile: Path, data: Path, duration: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cockpit",
        "--headless",
        "--profile",
        str(profile),
        "--duration",
        str(duration),
        "--data-dir",
        str(data),
    ]


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COCKPIT_", "EXEC_PROFILE", "NET_SIM_"))
    }
    env.update(API_KEY="sim-key", API_SECRET="sim-secret")
    return env


def _ts(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(line["ts"]).replace("Z", "+00:00")).timestamp()


def _read_new(log: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    if not log.exists():
        return [], offset
    with open(log, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    out = []
    for raw in data[:end].splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out, offset + end


def init_data_dir(profile: Path, data: Path) -> None:
    r = subprocess.run(
        _cockpit(profile, data, 1.0),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    if r.returncode != 0:
        raise RuntimeError(f"initial engine run failed ({r.returncode}): {r.stderr[-1000:]}")


def measure(profile: Path, data: Path, timeout_s: float) -> dict[str, Any]:
    log = data / "logs" / "engine.log"
    offset = log.stat().st_size if log.exists() else 0
    err_path = data / "bench-stderr.txt"
    lines: list[dict[str, Any]] = []
    with open(err_path, "wb") as err:
        t0 = time.time()
        proc = subprocess.Popen(
            _cockpit(profile, data, 3600.0),
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        ready_at = None
        try:
            while ready_at is None:
                new, offset = _read_new(log, offset)
                lines += new
                if any(READY in str(x.get("msg", "")) for x in new):
                    ready_at = time.time()
                    break
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"engine exited with {proc.returncode} before ready: "
                        f"{err_path.read_text()[-1000:]}"
                    )
                if time.time() - t0 > timeout_s:
                    raise RuntimeError(f"engine not ready within {timeout_s:g} s")
                time.sleep(0.002)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
    t_exit = time.time()
    new, offset = _read_new(log, offset)
    lines += new
    recon = next((x for x in lines if RECON in str(x.get("msg", ""))), None)
    ready = next(x for x in lines if READY in str(x.get("msg", "")))
    fields = (recon or {}).get("recon") or {}
    msg = str((recon or {}).get("msg", ""))
    recon_ok = recon is not None and " ok in " in msg
    recon_ms = float(msg.split(" ok in ")[1].split(" ms")[0]) if recon_ok else None
    phases = {"first_log_ms": round((_ts(lines[0]) - t0) * 1000, 1)}
    if recon is not None:
        end = _ts(recon)
        if recon_ms is not None:
            phases["recon_start_ms"] = round((end - t0) * 1000 - recon_ms, 1)
        phases["recon_end_ms"] = round((end - t0) * 1000, 1)
    phases["ready_logged_ms"] = round((_ts(ready) - t0) * 1000, 1)
    return {
        "start_to_ready_s": ready_at - t0,
        "reconcile_ms": recon_ms,
        "recon_ok": recon_ok,
        "recon_line": msg[:300],
        "mismatches": fields,
        "phases": phases,
        "exit_code": code,
        "stop_s": t_exit - ready_at,
    }


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=100_000, help="historical orders (1 fill each)")
    ap.add_argument("--open", type=int, default=1000, help="open orders (venue and DB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=60.0, help="per-run limit to ready (s)")
    ap.add_argument("--work-dir", type=Path, help="keep everything here (default: temp, removed)")
    args = ap.parse_args(argv)

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-rehydrate-"))
    work.mkdir(parents=True, exist_ok=True)
    venue = Venue(work / "venue", lifetime_s=600 + args.runs * (args.timeout + 70))
    try:
        profile = work / "rehydrate.toml"
        profile.write_text(PROFILE.format(port=venue.port))
        data = work / "data"
        t = time.perf_counter()
        init_data_dir(profile, data)
        open_rows = place_open_orders(venue, args.open)
        counts = seed_db(data / "cockpit.duckdb", args.orders, open_rows, args.seed)
        setup_s = time.perf_counter() - t
        runs = [measure(profile, data, args.timeout) for _ in range(args.runs)]
        venue_open = sum(
            1 for o in venue.call("GET", "/admin/state")["orders"] if o.get("status") == "NEW"
        )
    finally:
        venue.stop()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    ready = [r["start_to_ready_s"] for r in runs]
    recon = [r["reconcile_ms"] for r in runs if r["reconcile_ms"] is not None]
    phase_keys = runs[0]["phases"].keys()
    out = {
        **counts,
        "venue_open_orders": venue_open,
        "start_to_ready_s_p50": round(statistics.median(ready), 3),
        "start_to_ready_s_max": round(max(ready), 3),
        "reconcile_ms_p50": round(statistics.median(recon), 1) if recon else None,
        "reconcile_ms_max": round(max(recon), 1) if recon else None,
        "runs": len(runs),
        "recon_ok": all(r["recon_ok"] for r in runs),
        "mismatches": runs[-1]["mismatches"],
        "recon_line": runs[-1]["recon_line"],
        "phases_ms_p50": {
            k: round(statistics.median(r["phases"][k] for r in runs if k in r["phases"]), 1)
            for k in phase_keys
        },
        "stop_s_p50": round(statistics.median(r["stop_s"] for r in runs), 3),
        "exit_codes": [r["exit_code"] for r in runs],
        "setup_s": round(setup_s, 1),
        "goal_s": 1.0,
        "runbook_limit_s": 5.0,
    }
    print(json.dumps(out))
    ok = out["recon_ok"] and all(c == 0 for c in out["exit_codes"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
