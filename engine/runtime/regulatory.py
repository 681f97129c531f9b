"""Regulatory export: one CSV of the day's order and execution records (seed 000
"Seguridad/Compliance": ``decision_id``, ``execution_id``, ``dea``, timestamps in µs).

Role: ``write_regulatory(con, day, out, venue, dea)`` runs where the report runs (the engine's
writer thread, or a stopped engine's DB under the lock) and publishes ``out`` atomically.

Columns (docs/REPORTS.md documents each one):
record_type, decision_id, execution_id, venue_order_id, trade_id, client_order_id, dea, model_id,
symbol, side, quantity, price, venue, order_status, decision_ts_us, submit_ts_us, ack_ts_us,
fill_ts_us.

Invariants:
- One ``execution`` row per fill executed that UTC day, and one ``order`` row per order created
  that day that never filled (rejected, cancelled, expired, still open, unknown): nothing sent to
  the venue is missing from the record.
- Every timestamp is UTC microseconds since the epoch; empty when it never happened (an order
  refused before sending has no submit, a rejected one no ack).
- Quantities and prices are exact decimals; deterministic row order (time, then ids).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from engine.core.fsutil import make_private_dir
from engine.runtime.reports import (
    copy_csv,
    day_bounds,
    e8,
    prepare_day,
    publish,
    report_settings,
)

COLUMNS = (
    "record_type",
    "decision_id",
    "execution_id",
    "venue_order_id",
    "trade_id",
    "client_order_id",
    "dea",
    "model_id",
    "symbol",
    "side",
    "quantity",
    "price",
    "venue",
    "order_status",
    "decision_ts_us",
    "submit_ts_us",
    "ack_ts_us",
    "fill_ts_us",
)
# a decision precedes its order by at most the decision TTL (seconds): an hour of look-back bounds
# the scan of the (large) decisions table
_DECISION_LOOKBACK_US = 3_600_000_000

REGULATORY_SQL = (
    "WITH d AS (SELECT decision_id, min(ts_us) AS decision_ts_us FROM decisions WHERE ts_us >= "
    "$start - $lookback AND ts_us < $end AND decision_id IN (SELECT decision_id FROM "
    "_report_orders) GROUP BY 1), x AS ("
    "SELECT 'execution' AS record_type, o.decision_id, "
    "coalesce(f.venue_order_id, o.venue_order_id, '') || ':' || f.trade_id AS execution_id, "
    "coalesce(f.venue_order_id, o.venue_order_id) AS venue_order_id, f.trade_id, "
    f"f.client_order_id, $dea AS dea, o.model_id, f.symbol, f.side, {e8('f.qty_e8')} AS quantity, "
    f"{e8('f.price_e8')} AS price, $venue AS venue, o.status AS order_status, d.decision_ts_us, "
    "nullif(o.submitted_us, 0) AS submit_ts_us, coalesce(o.acked_us, f.ts_us) AS ack_ts_us, "
    "f.ts_us AS fill_ts_us, f.ts_us AS sort_us FROM fills f LEFT JOIN _report_orders o USING "
    "(client_order_id) LEFT JOIN d USING (decision_id) WHERE f.ts_us >= $start AND f.ts_us < $end "
    "UNION ALL "
    "SELECT 'order', o.decision_id, o.venue_order_id, o.venue_order_id, NULL, o.client_order_id, "
    f"$dea, o.model_id, o.symbol, o.side, {e8('o.qty_e8')}, {e8('o.limit_price_e8')}, $venue, "
    "o.status, d.decision_ts_us, nullif(o.submitted_us, 0), o.acked_us, NULL, o.created_us "
    "FROM _report_orders o LEFT JOIN d USING (decision_id) WHERE o.created_us >= $start AND "
    "o.created_us < $end AND o.filled_qty_e8 = 0) "
    f"SELECT {', '.join(COLUMNS)} FROM x ORDER BY sort_us, client_order_id, trade_id NULLS FIRST"
)


def write_regulatory(con: Any, day: dt.date, out: Path, *, venue: str, dea: bool) -> dict[str, Any]:
    """Write the day's regulatory CSV to ``out`` atomically; returns its path and row count."""
    start, end = day_bounds(day)
    make_private_dir(out.parent)
    part = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with report_settings(con):
            prepare_day(con, {"start": start, "end": end})
            params = {
                "start": start,
                "end": end,
                "lookback": _DECISION_LOOKBACK_US,
                "dea": dea,
                "venue": venue,
            }
            rows = copy_csv(con, REGULATORY_SQL, part, params)
        publish(part, out)
    finally:
        part.unlink(missing_ok=True)
    return {"export": str(out), "date": day.isoformat(), "rows": rows}


def default_regulatory_path(data_dir: Path, day: dt.date) -> Path:
    return data_dir / "reports" / f"regulatory-{day.isoformat()}.csv"
