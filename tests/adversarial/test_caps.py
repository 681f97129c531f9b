"""Issue 12 item 1, whole process: size caps hold while fills are slow.

The reproduction: the paper venue answering after ~3 s (``paper.latency_ms_mean = 3000``), a
strategy deciding every 200 ms at 2 % risk per trade. Before the fix every new order was sized
against the stale *filled* position, so orders "reduced" it at full size: 14 of 108 fills above the
$5,000 MAX_ORDER_NOTIONAL_USD, positions far above any sane size. Now the caps are measured
against exposure (filled + every open order): the DB of the real ``cockpit --headless`` run shows no
order and no worst-case exposure above its cap (``engine.cap_audit`` replays orders and fills).
The caps here sit below what the strategy wants, so each of them binds during the run.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from engine.cap_audit import audit_caps
from tests.acceptance.helpers import run

# below the strategy's 2 % target (2,000 USD) so every cap binds during the run
ORDER_CAP = 1000.0
POSITION_CAP = 1500.0
GROSS_CAP = 3000.0

SLOW_FILLS = f"""
kind = "paper"
venue = "paper"
feed = "sim"
offline = true

[risk]
risk_per_trade_pct = 2.0
dupe_intent_window_ms = 0.0
max_order_notional_usd = {ORDER_CAP}
max_position_notional_usd = {POSITION_CAP}
max_gross_exposure_usd = {GROSS_CAP}

[models]
prob_min = 0.5
min_expected_return = 0.0
decision_interval_ms = 200.0
risk_max = 5.0

[paper]
latency_ms_mean = 3000.0
latency_ms_jitter = 1000.0

[storage]
flush_interval_ms = 50.0
"""


def test_slow_fills_when_strategy_keeps_deciding_then_no_order_or_exposure_above_its_cap(tmp_path):
    profile = tmp_path / "slow.toml"
    profile.write_text(SLOW_FILLS)
    d = tmp_path / "d"
    res = run("--headless", "--profile", str(profile), "--duration", "20", "--data-dir", str(d),
              "--seed", "7", timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    con = duckdb.connect(str(d / "cockpit.duckdb"), read_only=True)
    try:
        audit = audit_caps(con, ORDER_CAP, POSITION_CAP)
        positions = con.execute("SELECT symbol, qty_e8 FROM positions").fetchall()
    finally:
        con.close()
    assert audit["fills"] > 10, audit  # the run traded: the caps were exercised, not bypassed
    assert audit["max_order_notional_over_cap"] == 0, audit
    assert audit["max_position_over_cap"] == 0, audit
    assert audit["max_order_notional_usd"] <= ORDER_CAP
    assert audit["max_exposure_usd"] <= POSITION_CAP
    assert positions, "no position at all: nothing was tested"


def test_cap_audit_when_orders_overlap_then_worst_exposure_counts_unfilled_orders(tmp_path: Path):
    """The oracle itself: two buys in flight at once count together, a fill moves quantity from
    open to filled, a reject releases it; notional at the arrival mid."""
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    con.execute("CREATE TABLE orders (client_order_id VARCHAR, symbol VARCHAR, side VARCHAR, "
                "qty_e8 BIGINT, filled_qty_e8 BIGINT, status VARCHAR, arrival_mid_e8 BIGINT, "
                "created_us BIGINT, updated_us BIGINT)")  # fmt: skip
    con.execute("CREATE TABLE fills (client_order_id VARCHAR, qty_e8 BIGINT, ts_us BIGINT)")
    mid = 100 * 10**8
    con.execute("INSERT INTO orders VALUES ('a', 'X', 'buy', 40e8, 40e8, 'filled', ?, 1, 5), "
                "('b', 'X', 'buy', 30e8, 0, 'rejected', ?, 2, 6), "
                "('c', 'X', 'buy', 20e8, 0, 'canceled', ?, 7, 8)", [mid, mid, mid])  # fmt: skip
    con.execute("INSERT INTO fills VALUES ('a', 40e8, 5)")
    out = audit_caps(con, 3000.0, 6000.0)
    assert out["max_exposure_usd"] == 7000.0 and out["max_position_over_cap"] == 1000.0  # a + b
    assert out["max_order_notional_usd"] == 4000.0 and out["max_order_notional_over_cap"] == 1000
    assert out["worst_exposure"] == "X at b"
    con.close()
