"""The exposure book and the gates that size against it, on the real engine and paper venue.

Resting limit orders stand in for orders in flight: they are open, unfilled and may still fill.
"""

from __future__ import annotations

from engine.core.units import SCALE, to_e8
from engine.trading import oms
from engine.trading.commands import Commands
from tests.conftest import feed_all
from tests.conftest import query as rows
from tests.engine.trading.test_order_path import order, submit

BTC = "BTC/USDT"
NO_CAPS = {
    "risk.max_order_notional_usd": 1e9,
    "risk.max_position_notional_usd": 1e9,
    "risk.max_gross_exposure_usd": 1e9,
    "risk.risk_per_trade_pct": 100.0,
}


# limits a little away from feed_all's market: they rest (buys are valued at the mid, sells at
# their limit, the higher of the two)
LIMITS = {BTC: (64000, 66000), "ETH/USDT": (3100, 3300), "SOL/USDT": (140, 160)}


def rest(b, side: str, qty: str, symbol: str = BTC):
    """A limit order away from the market: accepted, open, unfilled."""
    e = b.engine
    px = to_e8(LIMITS[symbol][0 if side == "buy" else 1])
    res = e.submit(
        order(symbol, side, qty, did=e.ids.next(), order_type="limit", limit_price_e8=px)
    )
    assert res.ok, res
    assert e.order_cache.orders[res.ref].status == oms.ACCEPTED, res
    return res


def test_exposure_when_orders_rest_fill_or_cancel_then_book_follows_each_event(make_booted):
    b = make_booted(NO_CAPS)
    e = b.engine
    feed_all(e)
    x = e.exposure
    assert submit(b, BTC, "buy", "0.02").ok  # filled at once
    buy = rest(b, "buy", "0.01")
    rest(b, "sell", "0.05")
    assert (x.hi(BTC), x.lo(BTC), x.net(BTC)) == (to_e8("0.03"), -to_e8("0.03"), -to_e8("0.02"))
    assert x.worst(BTC) == to_e8("0.03")
    assert x.counted() == 2
    Commands(e).cancel(buy.ref, "operator")
    assert x.hi(BTC) == to_e8("0.02")
    assert x.counted() == 1


def test_submit_when_sell_already_in_flight_then_next_sell_is_not_reducing(make_booted):
    """The issue's hole: a stale filled long let every sell pass as "reducing" at full size."""
    b = make_booted({**NO_CAPS, "risk.risk_per_trade_pct": 1.0})  # 1,000 USD per trade
    e = b.engine
    feed_all(e)
    e.exposure.set_filled(BTC, to_e8("0.05"))  # a filled long of ~3,250 USD
    e.portfolio.positions[BTC].qty_e8 = to_e8("0.05")
    first = rest(b, "sell", "0.05")  # reduces the long entirely: not capped
    assert e.order_cache.orders[first.ref].qty_e8 == to_e8("0.05")
    second = rest(b, "sell", "0.05")  # nothing left to reduce: a new short, capped at 1,000 USD
    qty = e.order_cache.orders[second.ref].qty_e8
    assert 0 < qty * 66000 <= 1000 * SCALE
    assert qty > to_e8("0.015")


def test_submit_when_order_flips_through_zero_then_only_opening_part_is_capped(make_booted):
    b = make_booted({**NO_CAPS, "risk.risk_per_trade_pct": 1.0, "oms.order_type": "limit"})
    e = b.engine
    feed_all(e)
    e.exposure.set_filled(BTC, to_e8("0.05"))
    e.portfolio.positions[BTC].qty_e8 = to_e8("0.05")
    res = rest(b, "sell", "0.2")  # 0.05 reduces; the 0.15 short beyond it is a new position
    qty = e.order_cache.orders[res.ref].qty_e8
    opening = qty - to_e8("0.05")  # valued at the 66,000 limit
    assert 0 < opening * 66000 <= 1000 * SCALE
    assert opening > to_e8("0.015")


def test_submit_when_reducing_order_above_order_cap_then_still_sized_to_the_cap(make_booted):
    b = make_booted({**NO_CAPS, "risk.max_order_notional_usd": 1000.0})
    e = b.engine
    feed_all(e)
    e.exposure.set_filled(BTC, to_e8("0.05"))
    e.portfolio.positions[BTC].qty_e8 = to_e8("0.05")
    res = rest(b, "sell", "0.05")  # reduces only, yet 3,300 USD > MAX_ORDER_NOTIONAL_USD
    assert 0 < e.order_cache.orders[res.ref].qty_e8 * 66000 <= 1000 * SCALE


def test_submit_when_position_cap_reached_by_open_orders_then_sized_then_denied(
    make_booted, tmp_path
):
    b = make_booted({**NO_CAPS, "risk.max_position_notional_usd": 2000.0})
    e = b.engine
    feed_all(e)
    rest(b, "buy", "0.02")  # 1,300 USD in flight
    res = rest(b, "buy", "0.02")  # 700 USD left under the cap
    qty = e.order_cache.orders[res.ref].qty_e8
    assert qty > 0
    assert (to_e8("0.02") + qty) * 65000 <= 2000 * SCALE
    denied = submit(b, BTC, "buy", "0.01")
    assert not denied.ok
    assert "max_position_notional" in denied.message
    assert e.gates.states["max_position_notional"].active
    assert rest(b, "sell", "0.02").ok  # the other side is not blocked by the long
    b.close("test")
    ev = rows(
        tmp_path / "data",
        "SELECT DISTINCT action FROM gate_events WHERE gate = 'max_position_notional'",
    )
    assert {a for (a,) in ev} == {"scale", "deny", "active", "clear"}


def test_submit_when_gross_cap_used_elsewhere_then_sized_to_what_is_left(make_booted):
    b = make_booted({**NO_CAPS, "risk.max_gross_exposure_usd": 3000.0})
    e = b.engine
    feed_all(e)
    rest(b, "sell", "0.5", "ETH/USDT")  # 1,600 USD short in flight (at the 3,200 mid)
    res = rest(b, "buy", "0.05")  # 3,250 USD wanted, 1,400 left
    qty = e.order_cache.orders[res.ref].qty_e8
    assert to_e8("0.02") < qty
    assert 1600 * SCALE + qty * 65000 <= 3000 * SCALE
    assert 3000 * SCALE - 1600 * SCALE - qty * 65000 < SCALE  # under 1 USD left
    sol = submit(b, "SOL/USDT", "buy", "1")  # a third symbol: crumbs below the venue minimum
    assert not sol.ok


def test_gross_cap_when_exposed_symbol_has_no_price_then_denies(make_booted):
    b = make_booted(NO_CAPS)
    e = b.engine
    feed_all(e, {"BTC/USDT": 65000.0})
    e.exposure.set_filled("ETH/USDT", to_e8("1"))  # a position with no quote and no price
    res = submit(b, BTC, "buy", "0.01")
    assert not res.ok
    assert "max_gross_exposure" in res.message
    assert "no price" in res.message


def test_max_open_positions_when_resting_order_on_symbol_then_it_counts(make_booted):
    b = make_booted({**NO_CAPS, "risk.max_open_positions": 1})
    e = b.engine
    feed_all(e)
    rest(b, "buy", "0.01")  # accepted, not filled: already exposure
    res = submit(b, "ETH/USDT", "buy", "0.1")
    assert not res.ok
    assert "max_open_positions" in res.message


def test_drawdown_when_breached_then_flip_is_cut_to_its_reducing_part(make_booted):
    b = make_booted({**NO_CAPS, "risk.max_daily_drawdown_pct": 1.0})
    e = b.engine
    feed_all(e)
    assert submit(b, BTC, "buy", "1.0").ok
    feed_all(e, {"BTC/USDT": 62000.0, "ETH/USDT": 3200.0, "SOL/USDT": 150.0})
    e.refresh()
    res = submit(b, BTC, "sell", "1.5")  # 1.0 gets flat, 0.5 would open a short
    assert res.ok
    assert e.order_cache.orders[res.ref].qty_e8 == to_e8("1.0")
    assert e.portfolio.positions[BTC].qty_e8 == 0


def test_drift_when_psi_halves_then_only_opening_part_is_halved(make_booted):
    b = make_booted(NO_CAPS)
    e = b.engine
    feed_all(e)
    assert submit(b, BTC, "buy", "0.02").ok
    e.risk.psi["trend_v1"] = 0.25
    res = e.submit(order(BTC, "sell", "0.06", did=e.ids.next(), model_id="trend_v1"))
    assert res.ok
    assert e.order_cache.orders[res.ref].qty_e8 == to_e8("0.04")


def test_restart_when_orders_rest_then_exposure_rebuilt_before_first_tick(make_booted):
    b = make_booted(NO_CAPS)
    e = b.engine
    feed_all(e)
    assert submit(b, BTC, "buy", "0.03").ok
    rest(b, "buy", "0.01")
    rest(b, "sell", "0.02", "ETH/USDT")
    before = {s: (e.exposure.hi(s), e.exposure.lo(s)) for s in e.symbols}
    b.close("restart")
    e2 = make_booted(NO_CAPS).engine
    assert {s: (e2.exposure.hi(s), e2.exposure.lo(s)) for s in e2.symbols} == before
    assert e2.exposure.counted() == 2
    assert e2.exposure.last_px_e8[BTC] > 0


def test_position_cap_when_it_denies_then_gauge_and_panel_row_show_it(make_booted):
    from engine.trading.snapshot_builder import SnapshotBuilder

    b = make_booted({"risk.max_position_notional_usd": 500.0})
    e = b.engine
    feed_all(e)
    res = submit(b, BTC, "buy", "0.01")  # 650 USD: sized to the 500 USD cap
    assert res.ok
    assert e.order_cache.orders[res.ref].qty_e8 * 65000 <= 500 * SCALE
    assert not submit(b, BTC, "buy", "0.01").ok  # nothing fits any more
    e.refresh()
    reg = e.metrics.registry
    assert reg.get_sample_value("gate_max_position_notional_active") == 1
    assert reg.get_sample_value("gate_max_gross_exposure_active") == 0
    gates = {g.name: g for g in SnapshotBuilder().build(e).gates}  # what the gates panel shows
    assert gates["max_position_notional"].active
    assert gates["max_position_notional"].denials == 1
    assert "position cap 500.00" in gates["max_position_notional"].reason
    assert not gates["max_gross_exposure"].active


def test_reconcile_when_venue_has_order_unknown_to_engine_then_adopted_into_exposure(make_booted):
    """An order the venue has and the engine lost (e.g. a crash before the DB saw it) is adopted
    by reconciliation, and from then on it counts against the caps."""
    import asyncio

    from engine.runtime.reconcile import Reconciler

    b = make_booted(NO_CAPS)
    e = b.engine
    feed_all(e)
    res = rest(b, "buy", "0.02")
    e.order_cache.orders.pop(res.ref)
    e.order_cache.open_orders.pop(res.ref)
    e.exposure.rebuild([], {})  # the engine forgot it entirely
    assert e.exposure.hi(BTC) == 0
    report = asyncio.run(Reconciler(e, grace_s=0.0).run("periodic"))
    assert report.mismatches["missing_in_db"] == 1
    assert e.exposure.hi(BTC) == to_e8("0.02")
    assert e.exposure.counted() == 1


def test_refresh_when_orders_in_flight_then_exposure_gauges_count_them(make_booted):
    b = make_booted(NO_CAPS)
    e = b.engine
    feed_all(e)
    rest(b, "buy", "0.02")  # 1,300 USD at the 65,000 mid, not filled
    rest(b, "sell", "1", "ETH/USDT")  # 3,200 USD
    e.refresh()
    reg = e.metrics.registry
    assert reg.get_sample_value("exposure_worst_quote", {"symbol": BTC}) == 1300.0
    assert reg.get_sample_value("exposure_gross_quote") == 4500.0
    assert reg.get_sample_value("position_quantity", {"symbol": BTC}) == 0.0
