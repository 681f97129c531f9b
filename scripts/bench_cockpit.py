#!/usr/bin/env python3
"""Benchmark: latency under the cockpit and start-up time.

The real cockpit runs in tmux (120x40, every panel at its default 4 Hz refresh) on the paper
profile with the embedded simulator at --tps ticks/s spread over --symbols symbols. The engine
stamps each tick with the time it was due and measures tick → venue submit; a 10 ms ticker measures
its own loop lag; CPU and RSS come from /proc. Start-up = process spawn to the first full frame
(the footer drawn). Runs each GC policy (COCKPIT_GC_POLICY: paced = the cockpit's default,
on = freeze + high thresholds only, off = CPython defaults) to show its effect; the ``gc`` figures
are the collector's own pauses per generation (count, total, max, CPU) measured in the cockpit.

Prints one JSON line. Goals: p99 ≤ 5 ms, loop-lag p99 ≤ 10 ms, bounded memory, first frame ≤ 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dev import precompile  # noqa: E402  (as `dev.py cockpit` and an install leave the bytecode)
from engine.runtime.control import call  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
TCK = os.sysconf("SC_CLK_TCK")


def _profile(symbols: int, tps: float) -> str:
    syms = ", ".join(f'"S{i:02d}/USDT"' for i in range(1, symbols + 1))
    return f"""kind = "paper"
venue = "paper"
symbols = [{syms}]
[risk]
dupe_intent_window_ms = 0.0
max_open_positions = {symbols}
max_trades_per_day = 10000000
budget_orders_per_day_strategy = 10000000
budget_orders_per_day_symbol = 10000000
budget_orders_per_day_account = 10000000
[models]
# the built-in reference was trained at 20 ticks/s per symbol; at 100/s per-tick features shift
# and the drift gate (rightly) stops trading, which would leave no order path to measure
strategy = "alternating"   # workload 2: an order path every 50 ticks
alternating_every_ticks = 50
psi_halve = 999.0
psi_block = 1000.0
decision_interval_ms = 250.0
prob_min = 0.5
min_expected_return = 0.0
risk_max = 50.0
[sim]
ticks_per_second = {tps / symbols}
[control]
diagnostics = true   # bench_stats / mem_stats over the control socket
"""


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def _rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def _screen(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True
    ).stdout


def run_variant(gc_policy: str, args: argparse.Namespace, work: Path) -> dict:
    d = work / f"d-{gc_policy}"
    prof = work / "bench.toml"
    prof.write_text(_profile(args.symbols, args.tps) + "".join(f"{x}\n" for x in args.toml))
    session = f"bench-{uuid.uuid4().hex[:8]}"
    trace = "PYTHONTRACEMALLOC=1 " if args.trace else ""
    cmd = (
        f"cd {ROOT} && {trace}COCKPIT_GC_POLICY={gc_policy} {sys.executable} -m cockpit "
        f"--profile {prof} --data-dir {d}"
    )
    t0 = time.monotonic()
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True
    )
    try:
        first_frame = None
        while time.monotonic() - t0 < 60:
            if "KILL" in _screen(session) and "Gates" in _screen(session):
                first_frame = time.monotonic() - t0
                break
            time.sleep(0.02)
        pid = int((d / "engine.lock").read_text().strip())
        time.sleep(args.warmup)
        call(d, "bench_stats", {"reset": True})
        cpu0, w0, rss0 = _cpu_s(pid), time.monotonic(), _rss_mib(pid)
        rss_samples = [rss0]
        mem = [dict(call(d, "mem_stats", {"tags": True}), t_s=0)]
        marked = False  # --trace: growth by source line from a third of the run to its end
        sample_s = min(10.0, args.duration / 6)
        while time.monotonic() - w0 < args.duration:
            time.sleep(sample_s)
            rss_samples.append(_rss_mib(pid))
            if len(rss_samples) % 6 == 1:  # the breakdown once a minute
                mark = args.trace and not marked and time.monotonic() - w0 >= args.duration / 3
                marked = marked or mark
                mem.append(
                    dict(
                        call(d, "mem_stats", {"tags": True, "trace": int(mark)}),
                        t_s=round(time.monotonic() - w0),
                    )
                )
        stats = call(d, "bench_stats", {"types": True})
        mem.append(
            dict(
                call(d, "mem_stats", {"objects": True, "tags": True, "trace": 30 if marked else 0}),
                t_s=round(time.monotonic() - w0),
            )
        )
        cpu = (_cpu_s(pid) - cpu0) / (time.monotonic() - w0)
        rss1 = _rss_mib(pid)
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=False)
        time.sleep(0.5)
        if "OPEN ORDERS" in _screen(session):
            subprocess.run(["tmux", "send-keys", "-t", session, "y"], check=False)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    window_s = min(300.0, args.duration / 2)
    per = max(1, round(window_s / sample_s))
    windows = [rss_samples[i : i + per] for i in range(0, len(rss_samples) - 1, per)]
    return {
        "gc_policy": gc_policy,
        "first_frame_s": round(first_frame, 3) if first_frame else None,
        "orders_measured": stats["orders"],
        "orders_per_s": round(stats["orders"] / args.duration, 1),
        "ticks_per_s": args.tps,
        "tick_to_submit_ms_p50": stats["tick_to_submit_us_p50"] / 1000,
        "tick_to_submit_ms_p99": stats["tick_to_submit_us_p99"] / 1000,
        "tick_to_submit_ms_max": stats["tick_to_submit_us_max"] / 1000,
        "loop_lag_ms_p99": stats["loop_lag_us_p99"] / 1000,
        "loop_lag_ms_max": stats["loop_lag_us_max"] / 1000,
        "cpu_cores": round(cpu, 3),
        "rss_mib_start": round(rss0, 1),
        "rss_mib_end": round(rss1, 1),
        "rss_growth_mib": round(rss1 - rss0, 1),
        "rss_mib_max": round(max([*rss_samples, rss1]), 1),
        # bounded memory = growth flattens: the second half of the run vs the first
        "rss_growth_first_half_mib": round(rss_samples[len(rss_samples) // 2] - rss0, 1),
        "rss_growth_second_half_mib": round(rss1 - rss_samples[len(rss_samples) // 2], 1),
        # RSS sawtooths (DuckDB checkpoints, the 5-min full collection): bounded = the lows and
        # highs of successive windows stay level, whatever instant the run happens to end on
        "rss_window_s": window_s,
        "rss_mib_window_min": [round(min(w)) for w in windows],
        "rss_mib_window_max": [round(max(w)) for w in windows],
        "rss_mib_samples": [round(x) for x in rss_samples],
        "duration_s": args.duration,
        "mem": mem,  # where the RSS goes: Python blocks, C heap, DuckDB, orders kept
        "gc": stats.get("gc"),
        # tick→submit minus the engine's work: how late bursts start (timer, loop, GIL hand-off)
        "feed_wake_ms_p50_p90_p99_p999": [x / 1000 for x in stats.get("feed_wake_us", [])],
        "gc_top": stats.get("gc_top"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0, help="measured seconds per variant")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--tps", type=float, default=2000.0, help="ticks per second, all symbols")
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument(
        "--variants",
        default="paced,on,off",
        help="GC policies to compare: paced (the default policy), on, off",
    )
    ap.add_argument(
        "--toml",
        action="append",
        default=[],
        help="extra profile lines, e.g. --toml '[storage]' --toml 'flush_interval_ms = 500'",
    )
    ap.add_argument(
        "--trace",
        action="store_true",
        help="diagnosis: run under PYTHONTRACEMALLOC and report growth by source line "
        "(slows the process; latency figures from such a run do not count)",
    )
    args = ap.parse_args()
    precompile()
    with tempfile.TemporaryDirectory(prefix="benchcockpit-") as tmp:
        results = [run_variant(v, args, Path(tmp)) for v in args.variants.split(",")]
    print(
        json.dumps(
            {
                "results": results,
                "goals": {"tick_to_submit_ms_p99": 5, "loop_lag_ms_p99": 10, "first_frame_s": 1.5},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
