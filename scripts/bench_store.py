#!/usr/bin/env python3
"""Benchmark: does the DB writer's memory stay bounded as trading history grows?

Replays the cockpit bench's write pattern (the cockpit bench at 40 orders/s: 10 flushes/s,
4 new orders per flush) through the real ``engine.store.writer.write_batch`` into a real DuckDB file with
the real schema and settings, as fast as DuckDB allows. Every order is written three times over
three flushes (pending, submitted, filled) to ``orders``, ``order_outbox`` and ``paper_orders``;
each flush also appends its decisions, fills and audit rows and upserts one position.

Prints one JSON line: samples every ``--sample-every`` orders (RSS, the C heap in use from glibc's
``mallinfo2``, DuckDB's own accounting), the C heap's growth per 10k orders in each half of the
run, and commit time per batch (p50 / p99 ms). Bounded means the second half's growth is ~0: a
per-order cost there is memory that a day of trading (3.5M orders at 40/s) multiplies.

    .venv/bin/python scripts/bench_store.py --orders 40000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.obs import memwatch  # noqa: E402
from engine.store.writer import Batch, migrate, open_db, write_batch  # noqa: E402

SYMBOLS = [f"S{i:02d}/USDT" for i in range(1, 21)]
STATES = ("pending", "submitted", "filled")


def _rows(n: int, k: int, state: str, ts: int) -> dict[str, tuple[Any, ...]]:
    cid, did, sym = f"ck-1-{n:x}.{k}", f"ck-1-{n:x}-{k}", SYMBOLS[(n * 4 + k) % len(SYMBOLS)]
    side, filled = ("buy" if k % 2 else "sell"), (1_000_000 if state == "filled" else 0)
    return {
        "orders": (
            cid,
            did,
            str(9_000_000 + n * 4 + k),
            sym,
            side,
            "market",
            1_000_000,
            0,
            filled,
            5_000_000_000 if filled else 0,
            state,
            None,
            "alternating",
            "m1",
            "champion",
            5_000_000_000,
            ts,
            ts + 300,
            ts + 900,
            ts + 400 if state != "pending" else None,  # acked_us
        ),
        "order_outbox": (
            cid,
            did,
            sym,
            side,
            "market",
            1_000_000,
            0,
            "acked" if state == "filled" else "sent",
            ts,
            ts + 300,
            ts + 900 if filled else None,
            1,
        ),
        "paper_orders": (
            cid,
            9_000_000 + n * 4 + k,
            sym,
            side,
            "market",
            1_000_000,
            0,
            filled,
            "filled" if filled else "accepted",
            ts,
            ts + 900,
        ),
        "decisions": (
            did,
            ts,
            sym,
            "m1",
            side,
            0.61,
            0.0004,
            "calm",
            "",
            True,
            0.01,
            "champion",
            0.02,
        ),
        "fills": (
            f"t-{n:x}-{k}",
            cid,
            str(9_000_000 + n * 4 + k),
            sym,
            side,
            1_000_000,
            5_000_000_000,
            5_000,
            "taker",
            ts + 900,
            0.4,
            1.2,
            0,
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=40_000)
    ap.add_argument("--per-flush", type=int, default=4)
    ap.add_argument("--sample-every", type=int, default=4_000)
    ap.add_argument("--data-dir", type=Path, default=None, help="default: a temp dir, removed")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench_store_")
    data = args.data_dir or Path(tmp.name)
    data.mkdir(parents=True, exist_ok=True)
    con = open_db(data / "bench.duckdb")
    migrate(con, 0)
    samples: list[dict[str, Any]] = []
    commit_ms: list[float] = []
    seq, flush, orders, ts = 0, 0, 0, 1_700_000_000_000_000
    while orders < args.orders:
        b = Batch()
        for back, state in enumerate(STATES):  # this flush's new orders and two older ones
            if flush - back < 0:
                continue
            for k in range(args.per_flush):
                rows = _rows(flush - back, k, state, ts)
                for t in ("orders", "order_outbox", "paper_orders"):
                    b.upsert[t][rows[t][0]] = rows[t]
                if back == 0:
                    b.append["decisions"].append(rows["decisions"])
                elif back == 2:
                    b.append["fills"].append(rows["fills"])
        for _ in range(args.per_flush * 4):
            seq += 1
            b.append["audit_log"].append(
                (
                    seq,
                    ts,
                    "engine",
                    "order",
                    '{"cid": "ck-1-0.0"}',
                    f"{seq - 1:064x}",
                    f"{seq:064x}",
                )
            )
        b.upsert["positions"][SYMBOLS[flush % 20]] = (SYMBOLS[flush % 20], 1, 2, 3, 4, ts)
        t0 = time.perf_counter()
        write_batch(con, b, flush + 1)
        commit_ms.append((time.perf_counter() - t0) * 1000)
        flush, orders, ts = flush + 1, orders + args.per_flush, ts + 100_000
        if orders % args.sample_every == 0:
            m = memwatch.process()
            samples.append(
                {
                    "orders": orders,
                    "rss_mib": m["rss_mib"],
                    "malloc_used_mib": m["malloc_used_mib"],
                    "duckdb_mib": round((memwatch.duckdb_bytes(con) or 0) / 2**20, 1),
                }
            )
    con.close()
    half = len(samples) // 2

    def per_10k(a: dict[str, Any], b: dict[str, Any]) -> float | None:
        if a["malloc_used_mib"] is None or b["orders"] == a["orders"]:
            return None
        return round(
            (b["malloc_used_mib"] - a["malloc_used_mib"]) * 10_000 / (b["orders"] - a["orders"]), 2
        )

    q = statistics.quantiles(commit_ms, n=100)
    print(
        json.dumps(
            {
                "orders": orders,
                "flushes": flush,
                "malloc_mib_per_10k_orders_first_half": per_10k(samples[0], samples[half])
                if half
                else None,
                "malloc_mib_per_10k_orders_second_half": per_10k(samples[half], samples[-1])
                if half
                else None,
                "commit_ms_p50": round(q[49], 2),
                "commit_ms_p99": round(q[98], 2),
                "samples": samples,
            }
        )
    )


if __name__ == "__main__":
    main()
