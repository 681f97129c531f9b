"""Issue 12 item 1, whole process: size caps hold while fills are slow.

The reproduction: the paper venue answering after ~3 s (``paper.latency_ms_mean = 3000``), a
strategy deciding every 200 ms at 2 % risk per trade. Before the fix every new order was sized
against the stale *filled* position, so orders "reduced" it at full size: 14 of 108 fills above the
$5,000 MAX_ORDER_NOTIONAL_USD, positions far above any sane size. Now the caps are measured
against exposure (filled + every open order): the DB of the real ``cockpit --headless`` run shows no
order and no worst-case exposure above its cap (``engine.trading.cap_audit`` replays orders and fills).
The caps here sit below what the strategy wants, so each of them binds during the run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import duckdb

from engine.trading.cap_audit import audit_caps
from tests.acceptance.helpers import ROOT, clean_env


def _harness() -> ModuleType:
    """scripts/crash_harness.py: its slow-fill scenario is this reproduction (one copy of it)."""
    spec = importlib.util.spec_from_file_location(
        "crash_harness", ROOT / "scripts" / "crash_harness.py"
    )
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["crash_harness"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_slow_fills_when_strategy_keeps_deciding_then_no_order_or_exposure_above_its_cap(tmp_path):
    h = _harness()
    out = h.slow_fill_scenario(tmp_path, clean_env(), 20.0)
    assert out["exit"] == 0, out
    assert out["fills"] > 10, out  # the run traded
    assert out["gate_actions"].get("max_position_notional"), out  # and the caps did bind
    assert out["max_order_notional_over_cap"] == 0, out
    assert out["max_position_over_cap"] == 0, out
    assert 0 < out["max_order_notional_usd"] <= 1000.0, out
    assert out["max_exposure_usd"] <= 1500.0, out


def test_cap_audit_when_orders_overlap_then_worst_exposure_counts_unfilled_orders(tmp_path: Path):
    """The oracle itself: two buys in flight at once count together, a fill moves quantity from
    open to filled, a reject releases it; notional at the arrival mid."""
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    con.execute(
        "CREATE TABLE orders (client_order_id VARCHAR, symbol VARCHAR, side VARCHAR, "
        "qty_e8 BIGINT, filled_qty_e8 BIGINT, status VARCHAR, arrival_mid_e8 BIGINT, "
        "created_us BIGINT, updated_us BIGINT)"
    )
    con.execute("CREATE TABLE fills (client_order_id VARCHAR, qty_e8 BIGINT, ts_us BIGINT)")
    mid = 100 * 10**8
    con.execute(
        "INSERT INTO orders VALUES ('a', 'X', 'buy', 40e8, 40e8, 'filled', ?, 1, 5), "
        "('b', 'X', 'buy', 30e8, 0, 'rejected', ?, 2, 6), "
        "('c', 'X', 'buy', 20e8, 0, 'canceled', ?, 7, 8)",
        [mid, mid, mid],
    )
    con.execute("INSERT INTO fills VALUES ('a', 40e8, 5)")
    out = audit_caps(con, 3000.0, 6000.0)
    assert out["max_exposure_usd"] == 7000.0
    assert out["max_position_over_cap"] == 1000.0
    assert out["max_order_notional_usd"] == 4000.0
    assert out["max_order_notional_over_cap"] == 1000
    assert out["worst_exposure"] == "X at b"
    con.close()
