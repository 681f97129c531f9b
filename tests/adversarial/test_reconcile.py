"""Reconciliation under races, standing findings and offline runs.

- An order rejected while the reconciler's query about it is in flight was classified as
  "acknowledged order unknown to the venue": an alert that switched safe mode on.
- An orphan was reported once; the next run said OK while it still blocked its symbol.
- ``cockpit reconcile`` with the engine stopped did not notice a fill, or a closed order, gone
  from the DB.

Real loopback venue simulator, real ccxt, real DuckDB file; whole processes for the CLI.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from engine.runtime.reconcile import Reconciler
from engine.trading import oms
from engine.trading.commands import Commands
from engine.trading.snapshot_builder import SnapshotBuilder
from tests.acceptance.helpers import query, run
from tests.conftest import ROOT
from tests.venue.conftest import rig_factory  # noqa: F401 - fixture
from tests.venue.test_reconcile import far_bid, order

sys.path.insert(0, str(ROOT / "scripts"))
import ws_network_harness as harness


async def test_reconcile_when_order_rejected_while_query_in_flight_then_no_alert_no_safe_mode(
    rig_factory,  # noqa: F811
) -> None:
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin("balances", {"USDT": "0"})  # the venue will reject the buy: no funds
    # the order reaches the venue after 1.0 s (rejected then); the reconciler's query about it
    # leaves at ~0.3 s and is answered at ~1.8 s: the reject lands while the query is in flight
    await rig.admin(
        "inject", {"kind": "delay", "method": "POST", "path": "/api/v3/order", "delay_ms": 1000}
    )
    await rig.admin(
        "inject", {"kind": "delay", "method": "GET", "path": "/api/v3/order", "delay_ms": 1500}
    )
    res = e.submit(order(e))
    assert res.ok
    await asyncio.sleep(0.3)  # past the grace period: the reconciler asks the venue at once
    report = await Reconciler(e, grace_s=0.2).run("periodic")
    assert e.order_cache.orders[res.ref].status == oms.REJECTED
    assert report.ok, report
    assert report.mismatches["missing_in_broker"] == 0
    assert not e.risk.safe_mode


async def test_orphan_when_still_open_then_every_run_reports_it_until_acknowledged_or_gone(
    rig_factory,  # noqa: F811
) -> None:
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    for cid in ("human-1", "human-2"):
        await rig.venue.ex.create_order(
            "ETH/USDT",
            "limit",
            "buy",
            0.01,
            far_bid(e, "ETH/USDT") / 1e8,
            {"newClientOrderId": cid},
        )
    await rig.venue.ex.create_order(
        "SOL/USDT",
        "limit",
        "buy",
        0.1,
        far_bid(e, "SOL/USDT") / 1e8,
        {"newClientOrderId": "human-3"},
    )
    r = Reconciler(e, grace_s=0.2)
    first = await r.run("periodic")
    assert first.mismatches["orphan"] == 3
    assert not first.ok
    second = await r.run("periodic")  # nothing new, but the orphans are still there
    assert not second.ok, second
    assert len(second.standing) == 3
    assert "ETH/USDT" in " ".join(second.standing)
    assert "standing" in "\n".join(_render(second))
    view = SnapshotBuilder().build(e, role="operator", recon=r.last).recon
    assert view is not None
    assert not view.ok
    assert len(view.standing) == 3
    # acknowledged through the engine's command path: ETH's two stop being findings
    assert Commands(e).acknowledge_orphans("ETH/USDT", "op", "known human orders").ok
    third = await r.run("periodic")
    assert [s for s in third.standing if "ETH/USDT" in s] == []
    assert len(third.standing) == 1
    assert not third.ok
    # gone at the venue: the finding is resolved and the symbol's block lifted
    await rig.venue.ex.cancel_order(None, "SOL/USDT", {"origClientOrderId": "human-3"})
    fourth = await r.run("periodic")
    assert fourth.ok, fourth
    assert fourth.standing == [], fourth
    assert "SOL/USDT" not in e.market.blocked


def _render(report: dict) -> list[str]:
    from engine.runtime.recon_report import render

    return render(report).splitlines()


def test_offline_reconcile_when_fill_and_closed_order_deleted_from_db_then_found_and_restored(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    prof = tmp_path / "p.toml"
    prof.write_text(harness.PROFILE)
    res = run("--headless", "--profile", str(prof), "--duration", "8", "--data-dir", str(d))
    assert res.returncode == 0, res.stderr
    filled = query(
        d,
        "SELECT o.client_order_id, count(*) FROM orders o JOIN fills f "
        "USING (client_order_id) WHERE o.status = 'filled' "
        "GROUP BY 1 ORDER BY 1 LIMIT 2",
    )
    assert len(filled) == 2, filled
    (gone_order, n_gone), (other, _) = filled
    fills_before = query(d, "SELECT count(*) FROM fills")[0][0]
    import duckdb

    con = duckdb.connect(str(d / "cockpit.duckdb"))
    try:  # as after a lost write: one closed order with its fills, one fill of another order
        # (and their effect on the position, written in the same lost batch)
        lost = (
            "client_order_id = ? OR trade_id = (SELECT min(trade_id) FROM fills "
            "WHERE client_order_id = ?)"
        )
        moved = con.execute(
            f"SELECT symbol, sum(CASE WHEN side = 'buy' THEN qty_e8 ELSE -qty_e8 "
            f"END) FROM fills WHERE {lost} GROUP BY 1",
            [gone_order, other],
        ).fetchall()
        for symbol, qty in moved:
            con.execute("UPDATE positions SET qty_e8 = qty_e8 - ? WHERE symbol = ?", [qty, symbol])
        con.execute(f"DELETE FROM fills WHERE {lost}", [gone_order, other])
        con.execute("DELETE FROM orders_log WHERE client_order_id = ?", [gone_order])
        # the other order's last version as it was before that fill
        con.execute(
            "UPDATE orders_log SET filled_qty_e8 = f.n, status = CASE WHEN f.n = 0 THEN "
            "'accepted' ELSE 'partially_filled' END FROM (SELECT coalesce(sum(qty_e8), 0) "
            "AS n FROM fills WHERE client_order_id = $1) f WHERE client_order_id = $1 AND "
            "rev = (SELECT max(rev) FROM orders_log WHERE client_order_id = $1)",
            [other],
        )
    finally:
        con.close()
    out = run("reconcile", "--profile", str(prof), "--data-dir", str(d))
    assert "missing_in_db=1" in out.stdout, out.stdout + out.stderr
    # the deleted order comes back with its first fill (missing_in_db); its other fills and the
    # other order's fill are recorded as missing fills
    assert f"missing_fill={n_gone}" in out.stdout, out.stdout
    assert out.returncode == 0, out.stdout
    assert "position_mismatch=0" in out.stdout, out.stdout
    assert query(d, "SELECT count(*) FROM fills")[0][0] == fills_before, out.stdout
    back = query(
        d,
        "SELECT client_order_id, status FROM orders WHERE client_order_id IN "
        f"('{gone_order}', '{other}') ORDER BY 1",
    )
    assert back == [(gone_order, "filled"), (other, "filled")], out.stdout
    assert n_gone >= 1
