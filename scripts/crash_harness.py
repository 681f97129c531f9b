#!/usr/bin/env python3
"""Crash harness: SIGKILL the headless testnet engine at random instants, restart, check the books.

One data directory and one loopback venue process for the whole run (the venue is a separate
process, so it keeps the truth while the engine dies). Each trial starts ``cockpit --headless`` on a
fast-deciding testnet profile pointed at that venue and kills it, either at a named crash point
(``COCKPIT_CRASH_AT``, see ``engine/core/crashpoints.py``: after the intent is durable but before it is
sent, after the venue accepted but before the answer is applied, before/after a DB commit) or with a
plain SIGKILL at a random instant after "engine running". Every ``--check-every`` trials, and at the
end, a clean run (no crash, ``--duration`` a few seconds) lets the engine rehydrate and reconcile;
then, with the engine stopped, the DuckDB file is compared with the venue's ``/admin/state``:

- duplicates: client ids (``ck-`` prefix) that appear more than once among the venue's orders;
- lost_fills: venue trades of our orders missing from DB ``fills``, DB fills the venue never made
  (phantoms), and fills whose client id / side / quantity / price differ (recorded twice or wrong);
- position_mismatches: symbols where DB ``positions`` differ from the signed sum of the venue's
  trades of our orders, or from the signed sum of DB fills;
- stuck: DB orders still pending/submitted/unknown after the clean run (reported);
- audit: ``cockpit audit verify`` on the data directory.

Then two scenarios for the caps and the decision TTL, each in its own data dir and function: a 429 then a 418 ban
while trading on "testnet" (``rate_limit_scenario``), and slow fills on paper (``slow_fill_scenario``:
3 s venue latency, decisions every 200 ms). ``max_order_notional_over_cap`` and
``max_position_over_cap`` (USD, worst over both, from ``engine.trading.cap_audit``) must be 0.

Prints one line per trial and per check (on stderr with ``--json``); the last stdout line is a JSON
summary. Exit 0 only when duplicates, lost_fills and position_mismatches are all zero, the audit
chain verifies, every clean run exited 0, no engine exited by itself, something was traded, and the
engine is not halted / fail-closed (kill switch, safe mode) after the final reconciling run, and
the scenarios kept every decision fresh and every size within its cap.
Reproducible: ``--seed`` drives every random choice (timing still varies). ``--keep DIR`` keeps the
data dir, venue state and every run's log for diagnosis.
Never leaves a process behind: the engine and the venue are killed in ``finally`` blocks, and the
venue also stops by itself after a bounded lifetime or when this process dies.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # its sibling modules, also when loaded by path

import duckdb  # noqa: E402
from harness_proc import (  # noqa: E402
    Run,
    engine_env,
    kill,
    running,
    scan,
    spawn,
    start_venue,
    tail,
    venue_state,
)
from harness_scenarios import (  # noqa: E402
    rate_limit_failed,
    rate_limit_scenario,
    slow_fill_failed,
    slow_fill_scenario,
)

from engine.core.units import to_e8  # noqa: E402

CRASH_POINTS = ("after_intent_durable", "after_venue_accept", "before_commit", "after_commit")
ORDER_POINTS = ("after_intent_durable", "after_venue_accept")
TIMED = "timed"  # a plain SIGKILL at a random instant
PREFIX = "ck-"  # the engine's client order id prefix
OPEN_STATES = ("pending", "submitted", "unknown")

PROFILE = """
kind = "testnet"
venue = "ccxt"
feed = "exchange"
offline = true
[exchange]
rest_url = "http://127.0.0.1:{port}"
ws_url = "ws://127.0.0.1:{port}"
[risk]
safe_mode = false
risk_per_trade_pct = 2.0
dupe_intent_window_ms = 0.0
max_data_staleness_ms = 1000.0
# these runs test crash safety / faults on a loaded CI box: the SLO gate (p95 > 300 ms,
# stale acks) would stop their orders first
max_p95_place_ms = 600000.0
slo_stale_ms = 3600000.0
[models]
prob_min = 0.5
min_expected_return = 0.0
decision_interval_ms = 120.0
risk_max = 5.0
[storage]
flush_interval_ms = 50.0
[metrics]
interval_s = 1.0
[feeds]
catch_up_interval_s = 2.0
reconnect_base_ms = 50.0
reconnect_max_ms = 500.0
unknown_grace_s = 1.5
"""


def crash_trial(run: Run, i: int, point: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the engine and kill it: at ``point`` (its n-th pass) or, for ``timed``, after a delay."""
    rng = run.rng
    if point == TIMED:
        n, delay = 0, rng.uniform(0.3, 3.0)
        crash_at = ""
    else:
        # order points pass once per order; commit points pass every flush (~50 ms) from boot on
        n = rng.randint(1, args.max_n) if point in ORDER_POINTS else rng.randint(2, 40)
        delay, crash_at = 0.0, f"{point}:{n}"
    timeout_s = args.trial_timeout
    t0 = time.monotonic()
    proc, out = spawn(run, f"trial-{i:04d}", 600.0, crash_at)
    how = point
    try:
        running_at = None
        t_end = t0 + timeout_s
        while proc.poll() is None and time.monotonic() < t_end:
            if running_at is None and running(out):
                running_at = time.monotonic()
                if point == TIMED:
                    t_end = running_at + delay
                else:  # a crash point never reached within a few seconds: kill it anyway
                    t_end = min(t0 + timeout_s, running_at + args.point_wait)
            time.sleep(0.02)
        if proc.poll() is None:
            if point != TIMED or running_at is None:
                how = f"{point}->timed"
                run.fallback_kills += 1
            kill(proc)
        rc = proc.wait(timeout=10)
    finally:
        kill(proc)
    if rc != -signal.SIGKILL:
        run.start_failures.append(f"trial {i}: exit {rc}: {tail(out)}")
    run.kills[how] += 1
    seen = scan(out)
    run.submitted += seen["submitted"]
    run.trials_with_orders += seen["submitted"] > 0
    run.trials_blocked += bool(seen["blocked"]) or seen["halted"]
    run.halts.update(seen["halts"])
    return {
        "trial": i,
        "kill": how,
        "n": n,
        "delay_s": round(delay, 2),
        "exit": rc,
        "reached_running": running_at is not None,
        "s": round(time.monotonic() - t0, 2),
        **seen,
    }


def clean_run(run: Run, tag: str, duration: float) -> tuple[int, str]:
    proc, out = spawn(run, tag, duration, "")
    run.last_clean_log = out
    try:
        rc = proc.wait(timeout=duration + 90)
    except subprocess.TimeoutExpired:
        rc = -999
    finally:
        kill(proc)
    last = "" if rc == 0 else tail(out)
    if rc != 0:
        run.clean_failures.append(f"{tag}: exit {rc}: {last}")
    return rc, tail


def _sym(s: str) -> str:
    return s.replace("/", "").upper()


def _signed(side: str, qty: int) -> int:
    return qty if side.lower() == "buy" else -qty


def check(run: Run, port: int) -> dict[str, Any]:
    """Compare the stopped engine's DB with the venue's truth."""
    truth = venue_state(port)
    con = duckdb.connect(str(run.data / "cockpit.duckdb"), read_only=True)
    try:
        db_fills = {
            str(r[0]): (r[1], r[2].lower(), int(r[3]), int(r[4]), _sym(r[5]))
            for r in con.execute(
                "SELECT trade_id, client_order_id, side, qty_e8, price_e8, symbol FROM fills"
            ).fetchall()
        }
        db_pos = {
            _sym(r[0]): int(r[1])
            for r in con.execute("SELECT symbol, qty_e8 FROM positions").fetchall()
        }
        db_orders = dict(con.execute("SELECT client_order_id, status FROM orders").fetchall())
    finally:
        con.close()
    v_orders = [o for o in truth["orders"] if str(o.get("clientOrderId", "")).startswith(PREFIX)]
    cids = Counter(o["clientOrderId"] for o in v_orders)
    dup_ids = sorted(c for c, k in cids.items() if k > 1)
    v_fills = {
        str(t["id"]): (
            t["clientOrderId"],
            str(t["side"]).lower(),
            to_e8(t["qty"]),
            to_e8(t["price"]),
            _sym(t["symbol"]),
        )
        for t in truth["trades"]
        if str(t.get("clientOrderId", "")).startswith(PREFIX)
    }
    lost = sorted(set(v_fills) - set(db_fills))
    phantom = sorted(set(db_fills) - set(v_fills))
    differ = sorted(t for t in set(v_fills) & set(db_fills) if v_fills[t] != db_fills[t])
    v_pos: Counter[str] = Counter()
    f_pos: Counter[str] = Counter()
    for _cid, side, qty, _px, sym in v_fills.values():
        v_pos[sym] += _signed(side, qty)
    for _cid, side, qty, _px, sym in db_fills.values():
        f_pos[sym] += _signed(side, qty)
    syms = set(v_pos) | set(f_pos) | set(db_pos)
    bad_venue = sorted(s for s in syms if db_pos.get(s, 0) != v_pos.get(s, 0))
    bad_fills = sorted(s for s in syms if db_pos.get(s, 0) != f_pos.get(s, 0))
    stuck = sorted(c for c, st in db_orders.items() if st in OPEN_STATES)
    missing_in_db = sorted(set(cids) - set(db_orders))
    audit = subprocess.run(
        [sys.executable, "-m", "cockpit", "audit", "verify", "--data-dir", str(run.data)],
        cwd=ROOT,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return {
        "duplicates": sum(cids[c] - 1 for c in dup_ids),
        "lost_fills": len(lost) + len(phantom) + len(differ),
        "position_mismatches": len(set(bad_venue) | set(bad_fills)),
        "stuck": len(stuck),
        "audit_ok": audit.returncode == 0,
        "venue_orders": len(v_orders),
        "venue_fills": len(v_fills),
        "db_orders": len(db_orders),
        "db_fills": len(db_fills),
        "orders_missing_in_db": len(missing_in_db),
        "detail": {
            "duplicate_ids": dup_ids[:10],
            "lost": lost[:10],
            "phantom": phantom[:10],
            "differ": [(t, v_fills[t], db_fills[t]) for t in differ[:5]],
            "positions_db": {s: db_pos.get(s, 0) for s in sorted(syms)},
            "positions_venue": {s: v_pos.get(s, 0) for s in sorted(syms)},
            "positions_fills": {s: f_pos.get(s, 0) for s in sorted(syms)},
            "bad_vs_venue": bad_venue,
            "bad_vs_fills": bad_fills,
            "stuck_ids": stuck[:10],
            "missing_in_db": missing_in_db[:10],
            "audit": (audit.stdout + audit.stderr).strip()[-300:],
        },
    }


def _worst(*figures: Any) -> Any:
    """The largest of the scenarios' figures that ran (None when none did)."""
    vals = [f for f in figures if f is not None]
    return max(vals) if vals else None


def _violations(c: dict[str, Any]) -> bool:
    return bool(c["duplicates"] or c["lost_fills"] or c["position_mismatches"] or not c["audit_ok"])


def _points(args: argparse.Namespace) -> list[str]:
    names = [p.strip() for p in args.points.split(",") if p.strip()]
    for p in names:
        if p not in (*CRASH_POINTS, TIMED):
            raise SystemExit(
                f"--points: unknown point {p!r} (known: {', '.join(CRASH_POINTS)}, {TIMED})"
            )
    return names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="number of crash trials")
    ap.add_argument("--json", action="store_true", help="progress on stderr; stdout: JSON only")
    ap.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    ap.add_argument(
        "--points",
        default=",".join((*CRASH_POINTS, TIMED)),
        help="comma-separated kill kinds to draw from (crash points and 'timed')",
    )
    ap.add_argument(
        "--cycle-points",
        action="store_true",
        help="trial i uses point i mod len(points) instead of a random draw",
    )
    ap.add_argument("--check-every", type=int, default=10, help="clean run + check every K trials")
    ap.add_argument("--clean-duration", type=float, default=3.0, help="seconds of each clean run")
    ap.add_argument(
        "--max-n", type=int, default=3, help="order crash points fire on a pass drawn from 1..N"
    )
    ap.add_argument(
        "--point-wait",
        type=float,
        default=5.0,
        help="seconds after 'engine running' to wait for a crash point before a plain SIGKILL",
    )
    ap.add_argument("--trial-timeout", type=float, default=25.0, help="max seconds per trial")
    ap.add_argument("--ticks-per-second", type=float, default=60.0, help="venue market ticks/s")
    ap.add_argument("--keep", type=Path, help="keep the work dir (data, venue, logs) here")
    ap.add_argument(
        "--skip-rate-limit",
        action="store_true",
        help="skip the 429-then-418 scenario run after the trials",
    )
    ap.add_argument(
        "--rate-limit-duration",
        type=float,
        default=14.0,
        help="seconds the engine trades in the rate-limit scenario",
    )
    ap.add_argument(
        "--skip-slow-fill",
        action="store_true",
        help="skip the slow-fill paper scenario (caps vs in-flight orders)",
    )
    ap.add_argument(
        "--slow-fill-duration",
        type=float,
        default=20.0,
        help="seconds the engine trades in the slow-fill scenario",
    )
    args = ap.parse_args()
    if args.trials < 1 or args.check_every < 1 or args.max_n < 1:
        ap.error("--trials, --check-every and --max-n must be >= 1")
    points = _points(args)
    progress = sys.stderr if args.json else sys.stdout

    def say(msg: str) -> None:
        print(msg, file=progress, flush=True)

    if args.keep:
        if args.keep.exists() and any(args.keep.iterdir()):
            ap.error(f"--keep {args.keep}: directory exists and is not empty")
        args.keep.mkdir(parents=True, exist_ok=True)
        work = args.keep.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="crashharness-"))
    (work / "runs").mkdir(exist_ok=True)
    t_start = time.monotonic()
    budget = args.trials * (args.trial_timeout + 15) + (args.trials // args.check_every + 2) * 150
    venue = None
    checks: list[dict[str, Any]] = []
    first_violation: int | None = None
    summary: dict[str, Any] = {"trials": 0}
    try:
        venue, port = start_venue(work, args.seed, budget + 120, args.ticks_per_second)
        profile = work / "crash.toml"
        profile.write_text(PROFILE.format(port=port))
        run = Run(
            work, work / "data", profile, engine_env(), random.Random(args.seed), t_start + budget
        )
        rc, why = clean_run(run, "boot", 2.0)  # first start: builds the model reference etc.
        if rc != 0:
            raise RuntimeError(f"first clean run failed (exit {rc}): {why}")
        done = 0
        for i in range(args.trials):
            point = points[i % len(points)] if args.cycle_points else run.rng.choice(points)
            r = crash_trial(run, i, point, args)
            done += 1
            say(
                f"trial {i:>4} kill={r['kill']:<26} n={r['n']:<2} delay={r['delay_s']:<4} "
                f"exit={r['exit']} running={'y' if r['reached_running'] else 'n'} "
                f"submitted={r['submitted']} {r['s']}s"
                + (f" blocked={','.join(r['blocked'])}" if r["blocked"] else "")
                + (" HALT" if r["halted"] else "")
            )
            last = i == args.trials - 1
            if (i + 1) % args.check_every == 0 or last:
                crc, _ = clean_run(run, f"clean-{i:04d}", args.clean_duration)
                c = check(run, port)
                c["after_trial"], c["clean_exit"] = i, crc
                c["clean_run"] = scan(run.last_clean_log) if run.last_clean_log else {}
                run.halts.update(c["clean_run"].get("halts", []))
                checks.append(c)
                if (_violations(c) or crc != 0) and first_violation is None:
                    first_violation = i
                say(
                    f"check after trial {i}: clean_exit={crc} dup={c['duplicates']} "
                    f"lost={c['lost_fills']} pos={c['position_mismatches']} stuck={c['stuck']} "
                    f"audit={'ok' if c['audit_ok'] else 'BROKEN'} orders={c['venue_orders']} "
                    f"fills={c['venue_fills']} clean_run={json.dumps(c['clean_run'])}"
                    + (f"  {json.dumps(c['detail'])}" if _violations(c) or c["stuck"] else "")
                )
            if time.monotonic() > run.deadline:
                say("time budget exhausted; stopping early")
                break
        final = checks[-1] if checks else {}
        rl = (
            {} if args.skip_rate_limit else rate_limit_scenario(run, port, args.rate_limit_duration)
        )
        if rl:
            say(f"rate-limit scenario: {json.dumps(rl)}")
        sf = (
            {}
            if args.skip_slow_fill
            else slow_fill_scenario(work, run.env, args.slow_fill_duration)
        )
        if sf:
            say(f"slow-fill scenario: {json.dumps(sf)}")
        wall = time.monotonic() - t_start
        # A run where nothing traded proves nothing; an engine that died by itself, or that is
        # still halted / fail-closed after the final reconciling run, did not recover.
        last_clean = final.get("clean_run", {})
        blocked = sorted(
            {*last_clean.get("blocked", []), *(["halt"] if last_clean.get("halted") else [])}
        )
        ok = (
            bool(final)
            and not _violations(final)
            and not run.clean_failures
            and not run.start_failures
            and final.get("venue_orders", 0) > 0
            and not blocked
            and not rate_limit_failed(rl)
            and not slow_fill_failed(sf)
        )
        summary = {
            "trials": done,
            "duplicates": final.get("duplicates"),
            "lost_fills": final.get("lost_fills"),
            "position_mismatches": final.get("position_mismatches"),
            "stuck": final.get("stuck"),
            "audit_ok": final.get("audit_ok"),
            "ok": ok,
            "orders_missing_in_db": final.get("orders_missing_in_db"),
            "venue_orders": final.get("venue_orders"),
            "venue_fills": final.get("venue_fills"),
            "db_orders": final.get("db_orders"),
            "db_fills": final.get("db_fills"),
            "kills": dict(sorted(run.kills.items())),
            "points_hit": sorted(k for k in run.kills if k in CRASH_POINTS),
            "fallback_kills": run.fallback_kills,
            "orders_submitted_in_trials": run.submitted,
            "trials_with_orders": run.trials_with_orders,
            "trials_blocked": run.trials_blocked,
            "blocked_after_recovery": blocked,
            "halts": sorted(run.halts)[:5],
            "start_failures": run.start_failures[:5],
            "clean_failures": run.clean_failures[:5],
            "checks": len(checks),
            "first_violation_after_trial": first_violation,
            "wall_s": round(wall, 1),
            "s_per_trial": round(wall / max(done, 1), 2),
            "trials_per_s": round(done / wall, 3),
            "seed": args.seed,
            "work_dir": str(work) if args.keep else None,
            "stale_sends": rl.get("stale_sends"),
            # worst over the scenarios that ran (rate limit on "testnet", slow fills on paper)
            "max_order_notional_over_cap": _worst(
                rl.get("max_order_notional_over_cap"), sf.get("max_order_notional_over_cap")
            ),
            "max_position_over_cap": _worst(
                rl.get("max_position_over_cap"), sf.get("max_position_over_cap")
            ),
            "rate_limit": rl or None,
            "slow_fill": sf or None,
        }
        if not ok:
            summary["detail"] = final.get("detail")
    except Exception as e:  # noqa: BLE001 - reported in the JSON line, exit 1
        summary.update(ok=False, error=f"{type(e).__name__}: {e}")
    finally:
        kill(venue, signal.SIGTERM)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary), flush=True)
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
