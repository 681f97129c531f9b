"""Daily report ZIP: orders.csv, fills.csv, pnl.csv, tca.csv, metadata.json.

Runs on the DB writer thread (``Writer.call``) or on a stopped engine's DB: DuckDB writes the CSVs
itself (COPY, the file name bound as a parameter), then they are zipped atomically next to the
target. No secret is ever included.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

QUERIES = {
    "orders.csv": "SELECT * FROM orders ORDER BY created_us",
    "fills.csv": "SELECT * FROM fills ORDER BY ts_us",
    "pnl.csv": "SELECT symbol, qty_e8, avg_price_e8, realized_pnl_e8, fees_e8, updated_us "
    "FROM positions ORDER BY symbol",
    "tca.csv": "SELECT f.trade_id, f.client_order_id, f.symbol, f.side, f.qty_e8, f.price_e8, "
    "o.arrival_mid_e8, f.slippage_bps, f.place_latency_ms, f.liquidity, f.ts_us "
    "FROM fills f LEFT JOIN orders o USING (client_order_id) ORDER BY f.ts_us",
}


def export_report(con: Any, out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        counts = {}
        for name, sql in QUERIES.items():
            path = Path(tmp) / name
            # the target is a bound parameter, never spliced into the SQL: a path may hold any
            # character (quote, semicolon, backslash, newline) and must stay a path
            con.execute(f"COPY ({sql}) TO ? (HEADER, DELIMITER ',')", [str(path)])
            counts[name] = sum(1 for _ in path.open()) - 1
        meta = {
            **meta,
            "generated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "rows": counts,
            "amount_units": "e8 integers (value x 1e8)",
        }
        (Path(tmp) / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        part = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
            for name in (*QUERIES, "metadata.json"):
                z.write(Path(tmp) / name, name)
        os.replace(part, out)
    return {"report": str(out), "rows": counts}
