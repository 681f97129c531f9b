"""The one order path on the real engine: gates → OMS → paper venue → fills → DuckDB."""

from __future__ import annotations

from engine.core.events import SubmitOrder, VenueOrderUpdate
from engine.core.units import to_e8
from engine.runtime.reconcile import Reconciler
from engine.trading import oms
from engine.trading.commands import Commands
from tests.conftest import feed, feed_all
from tests.conftest import query as rows


def order(
    symbol: str = "BTC/USDT", side: str = "buy", qty: str = "0.01", did: str = "", **kw: object
) -> SubmitOrder:
    return SubmitOrder(decision_id=did, symbol=symbol, side=side, qty_e8=to_e8(qty), **kw)  # type: ignore[arg-type]


def submit(b, *args, **kw):
    e = b.engine
    return e.submit(order(*args, did=kw.pop("did", "") or e.ids.next(), **kw))


def test_submit_when_gates_pass_then_filled_and_position_equals_signed_fills(make_booted, tmp_path):
    b = make_booted()
    e = b.engine
    feed_all(e)
    assert submit(b, "BTC/USDT", "buy", "0.02").ok
    assert submit(b, "BTC/USDT", "sell", "0.005").ok
    assert submit(b, "ETH/USDT", "sell", "0.3").ok
    b.close("test")
    pos = dict(rows(tmp_path / "data", "SELECT symbol, qty_e8 FROM positions"))
    fills = dict(
        rows(
            tmp_path / "data",
            "SELECT symbol, sum(CASE side WHEN 'buy' THEN qty_e8 "
            "ELSE -qty_e8 END) FROM fills GROUP BY symbol",
        )
    )
    assert pos == {"BTC/USDT": to_e8("0.015"), "ETH/USDT": -to_e8("0.3")}
    assert fills == pos
    statuses = rows(tmp_path / "data", "SELECT status, count(*) FROM orders GROUP BY status")
    assert statuses == [("filled", 3)]
    outbox = rows(tmp_path / "data", "SELECT DISTINCT status FROM order_outbox")
    assert outbox == [("acked",)]


def test_submit_when_kill_switch_armed_then_denied_and_persisted(make_booted, tmp_path):
    b = make_booted()
    e = b.engine
    feed_all(e)
    e.arm_kill_switch("operator", "test drill")
    res = submit(b)
    assert not res.ok
    assert "kill_switch" in res.message
    assert e.gates.states["kill_switch"].active
    b.close("test")
    ev = rows(
        tmp_path / "data", "SELECT gate, action, reason FROM gate_events WHERE gate='kill_switch'"
    )
    assert ("kill_switch", "deny", "kill switch armed: test drill") in ev
    assert ("1",) in rows(
        tmp_path / "data", "SELECT value FROM engine_state WHERE key='kill_switch'"
    )


def test_restart_when_kill_switch_was_armed_then_still_armed(make_booted, tmp_path):
    b = make_booted()
    b.engine.arm_kill_switch("operator", "before restart")
    b.close("test")
    b2 = make_booted()
    feed_all(b2.engine)
    assert b2.engine.risk.kill_switch
    assert not submit(b2).ok


def test_submit_when_safe_mode_then_denied_but_cancel_allowed(make_booted):
    b = make_booted({"oms.order_type": "limit"})
    e = b.engine
    feed_all(e)
    res = e.submit(order(did=e.ids.next(), order_type="limit", limit_price_e8=to_e8(60000)))
    assert res.ok
    Commands(e).set_safe_mode(True, "operator", "drill")
    assert "safe_mode" in submit(b).message
    assert Commands(e).cancel(res.ref, "operator").ok
    assert e.order_cache.orders[res.ref].status == oms.CANCELED


def test_submit_when_clock_skew_exceeds_limit_then_denied(make_booted):
    b = make_booted({"risk.max_time_skew_ms": 500.0})
    e = b.engine
    feed_all(e)
    e.clock.set_skew_ms(-800)
    res = submit(b)
    assert not res.ok
    assert "clock_skew" in res.message
    assert "-800" in res.message
    e.clock.set_skew_ms(100)
    assert submit(b).ok


def test_submit_when_market_data_stale_then_denied(make_booted):
    b = make_booted()
    e = b.engine
    feed_all(e)
    e.clock.advance_ms(1500)
    res = submit(b)
    assert not res.ok
    assert "stale_data" in res.message
    feed_all(e)
    assert submit(b).ok


def test_submit_when_symbol_budget_spent_then_denied_and_budget_left_exported(make_booted):
    b = make_booted({"risk.budget_orders_per_day_symbol": 2})
    e = b.engine
    feed_all(e)
    assert submit(b).ok
    assert submit(b, side="sell").ok
    res = submit(b)
    assert not res.ok
    assert "budget" in res.message
    assert submit(b, "ETH/USDT").ok
    e.refresh()
    reg = e.metrics.registry
    assert reg.get_sample_value("daily_budget_left", {"scope": "symbol", "key": "BTC/USDT"}) == 0
    assert reg.get_sample_value("gate_budget_active") == 0  # account budget not spent


def test_submit_when_max_trades_per_day_reached_then_denied_until_next_day(make_booted):
    b = make_booted({"risk.max_trades_per_day": 1})
    e = b.engine
    feed_all(e)
    assert submit(b).ok
    assert "max_trades_per_day" in submit(b, side="sell").message
    e.clock.advance_ms(24 * 3600 * 1000)
    feed_all(e)
    assert submit(b, side="sell").ok


def test_submit_when_max_open_positions_then_new_symbol_denied_reduction_allowed(make_booted):
    b = make_booted({"risk.max_open_positions": 1})
    e = b.engine
    feed_all(e)
    assert submit(b, "BTC/USDT", "buy", "0.01").ok
    assert "max_open_positions" in submit(b, "ETH/USDT", "buy", "0.1").message
    assert submit(b, "BTC/USDT", "sell", "0.01").ok  # reduces: allowed
    assert submit(b, "ETH/USDT", "buy", "0.1").ok  # flat again: a slot is free


def test_submit_when_daily_drawdown_exceeded_then_new_risk_denied(make_booted):
    b = make_booted(
        {
            "risk.max_daily_drawdown_pct": 1.0,
            "risk.risk_per_trade_pct": 100.0,
            "risk.max_order_notional_usd": 1e9,
            "risk.max_position_notional_usd": 1e9,
            "risk.max_gross_exposure_usd": 1e9,
        }
    )
    e = b.engine
    feed_all(e)
    assert submit(b, "BTC/USDT", "buy", "1.0").ok  # ~65k notional on a 100k account
    feed_all(e, {"BTC/USDT": 62000.0, "ETH/USDT": 3200.0, "SOL/USDT": 150.0})
    e.refresh()
    assert e.gates.states["daily_drawdown"].active
    assert "daily_drawdown" in submit(b, "ETH/USDT", "buy", "0.1").message
    assert submit(b, "BTC/USDT", "sell", "0.5").ok  # reducing is still possible


def test_submit_when_notional_above_risk_per_trade_then_sized_down_in_lots(make_booted, tmp_path):
    b = make_booted(
        {
            "risk.risk_per_trade_pct": 1.0,
            "risk.max_order_notional_usd": 1e9,
            "risk.max_position_notional_usd": 1e9,
            "risk.max_gross_exposure_usd": 1e9,
        }
    )
    e = b.engine
    feed_all(e)
    res = submit(b, "BTC/USDT", "buy", "1.0")  # 65k > 1% of 100k
    assert res.ok
    qty = e.order_cache.orders[res.ref].qty_e8
    assert 0 < qty * 65000 <= 1000 * 10**8
    assert qty % e.lot("BTC/USDT") == 0
    b.close("test")
    ev = rows(tmp_path / "data", "SELECT action FROM gate_events WHERE gate='risk_per_trade'")
    assert ev == [("scale",)]


def test_submit_when_psi_between_thresholds_then_halved_and_above_then_denied(make_booted):
    b = make_booted()
    e = b.engine
    feed_all(e)
    e.risk.psi["trend_v1"] = 0.25
    res = e.submit(order(did=e.ids.next(), qty="0.02", model_id="trend_v1"))
    assert res.ok
    assert e.order_cache.orders[res.ref].qty_e8 == to_e8("0.01")
    e.risk.psi["trend_v1"] = 0.35
    res = e.submit(order(did=e.ids.next(), side="sell", model_id="trend_v1"))
    assert not res.ok
    assert "drift" in res.message


def test_submit_when_same_intent_within_window_then_denied_as_dupe(make_booted):
    b = make_booted({"risk.dupe_intent_window_ms": 500.0})
    e = b.engine
    feed_all(e)
    assert submit(b).ok
    assert "dupe_intent" in submit(b).message
    e.clock.advance_ms(600)
    feed_all(e)
    assert submit(b).ok


def test_submit_when_decision_id_reused_then_denied_never_sent_twice(make_booted):
    b = make_booted()
    e = b.engine
    feed_all(e)
    did = e.ids.next()
    assert e.submit(order(did=did)).ok
    res = e.submit(order(did=did, side="sell"))
    assert not res.ok
    assert "already used" in res.message
    assert len(b.engine.venue.orders) == 1


def test_venue_update_when_late_or_out_of_order_then_state_never_moves_backward(make_booted):
    b = make_booted()
    e = b.engine
    feed_all(e)
    res = submit(b)
    o = e.order_cache.orders[res.ref]
    assert o.status == oms.FILLED
    filled = o.filled_qty_e8
    e.on_venue_update(
        VenueOrderUpdate(
            client_order_id=res.ref, venue_order_id="1", status="accepted", filled_qty_e8=0, ts_us=1
        )
    )
    assert o.status == oms.FILLED
    assert o.filled_qty_e8 == filled


def test_fill_when_delivered_twice_then_counted_once(make_booted):
    b = make_booted({"oms.order_type": "limit"})
    e = b.engine
    feed_all(e)
    res = submit(b, qty="0.01")
    o = e.order_cache.orders[res.ref]
    from engine.core.events import VenueFill

    f = VenueFill(
        client_order_id=res.ref,
        venue_order_id=o.venue_order_id,
        trade_id="X1",
        symbol="BTC/USDT",
        side="buy",
        qty_e8=1,
        price_e8=to_e8(65000),
        fee_e8=0,
        liquidity="taker",
        ts_us=e.clock.now_us(),
    )
    before = e.portfolio.positions["BTC/USDT"].qty_e8
    e.on_venue_fill(f)  # order already filled: an overfill is an invariant breach -> halt
    assert e.halted_reason
    assert e.risk.kill_switch
    assert e.portfolio.positions["BTC/USDT"].qty_e8 == before


def test_market_order_when_larger_than_top_of_book_then_partial_fills_walk_depth(make_booted):
    b = make_booted(
        {
            "risk.risk_per_trade_pct": 100.0,
            "risk.max_order_notional_usd": 1e9,
            "risk.max_position_notional_usd": 1e9,
            "risk.max_gross_exposure_usd": 1e9,
        }
    )
    e = b.engine
    feed(e, "BTC/USDT", 64999.0, 65001.0, size=0.5)
    res = submit(b, "BTC/USDT", "buy", "1.5")
    o = e.order_cache.orders[res.ref]
    assert o.status == oms.FILLED
    assert len(o.trade_ids) == 3
    assert o.avg_price_e8 > to_e8(65001)  # paid through the book
    assert e.kpis.slippage_p95()[0] > 0


def test_limit_order_when_market_crosses_then_fills_as_maker_and_survives_restart(make_booted):
    b = make_booted()
    e = b.engine
    feed_all(e)
    res = e.submit(order(did=e.ids.next(), order_type="limit", limit_price_e8=to_e8(64000)))
    assert e.order_cache.orders[res.ref].status == oms.ACCEPTED
    b.close("restart")
    b2 = make_booted()
    e2 = b2.engine
    assert res.ref in e2.order_cache.open_orders
    assert res.ref in e2.venue.orders
    feed(e2, "BTC/USDT", 63900.0, 63950.0, size=2.0)
    o = e2.order_cache.orders[res.ref]
    assert o.status == oms.FILLED
    assert o.avg_price_e8 == to_e8(64000)


def test_restart_when_booted_again_then_new_session_and_distinct_client_ids(make_booted):
    b = make_booted()
    feed_all(b.engine)
    first = submit(b).ref
    b.close("restart")
    b2 = make_booted()
    feed_all(b2.engine)
    second = submit(b2).ref
    assert first.split("-")[1] != second.split("-")[1]
    assert oms.CLIENT_ID_RE.match(first)
    assert oms.CLIENT_ID_RE.match(second)


def test_restart_when_sent_order_never_reached_venue_then_marked_never_sent_not_resent(
    make_booted, tmp_path
):
    import asyncio

    from engine.core.clock import SimClock

    clock = SimClock()
    b = make_booted(clock=clock)
    e = b.engine
    feed_all(e)
    held: list = []
    e.venue.submit = held.append  # the process dies before the venue ever sees it
    res = submit(b)
    assert res.ok
    assert e.order_cache.orders[res.ref].status == oms.SUBMITTED
    e.flush()
    b.writer.wait_idle()
    b.close("crash stand-in")
    b2 = make_booted(clock=clock)
    report = asyncio.run(Reconciler(b2.engine, grace_s=0.0).run("startup"))
    assert report.mismatches["missing_in_broker"] == 1
    assert report.ok
    o = b2.engine.order_cache.orders[res.ref]
    assert o.status == oms.NEVER_SENT
    assert res.ref not in b2.engine.venue.orders
    assert not b2.engine.order_cache.open_orders


def test_flush_when_many_closed_orders_then_memory_bounded_and_late_fill_not_applied_blind(
    make_booted, monkeypatch
):
    import engine.trading.engine as engine_mod
    from engine.core.events import VenueFill

    monkeypatch.setattr(engine_mod, "MAX_ORDERS_IN_MEMORY", 10)
    b = make_booted({"oms.order_type": "market"})
    e = b.engine
    feed_all(e)
    first = None
    for i in range(30):
        res = submit(b, side="buy" if i % 2 else "sell", qty="0.001")
        first = first or res.ref
        e.flush()
    assert len(e.order_cache.orders) <= 10
    assert first not in e.order_cache.orders
    before = e.portfolio.positions["BTC/USDT"].qty_e8
    e.on_venue_fill(
        VenueFill(
            client_order_id=first,
            venue_order_id="1",
            trade_id="late-1",
            symbol="BTC/USDT",
            side="buy",
            qty_e8=1000,
            price_e8=to_e8(65000),
            fee_e8=0,
            liquidity="taker",
            ts_us=e.clock.now_us(),
        )
    )
    assert "late-1" in e.recon.unmatched_fills
    assert not e.halted_reason
    assert e.portfolio.positions["BTC/USDT"].qty_e8 == before


MANY = {
    "oms.order_type": "market",
    "risk.max_trades_per_day": 100_000,
    "risk.budget_orders_per_day_strategy": 100_000,
    "risk.budget_orders_per_day_symbol": 100_000,
    "risk.budget_orders_per_day_account": 100_000,
}


def test_paper_venue_when_many_orders_close_then_memory_bounded_and_resting_kept(
    make_booted, tmp_path
):
    b = make_booted(MANY)
    e, venue = b.engine, b.engine.venue
    venue.max_closed = 10
    feed_all(e)
    resting = e.submit(
        order(
            side="buy",
            qty="0.001",
            did=e.ids.next(),
            order_type="limit",
            limit_price_e8=to_e8(60000),
        )
    )  # far below: rests
    assert resting.ok
    for i in range(40):
        assert submit(b, side="buy" if i % 2 else "sell", qty="0.001").ok
        e.flush()
    assert len(venue.orders) <= 11  # ten closed at most, plus the resting one
    assert resting.ref in venue.orders  # an open order is never forgotten
    assert [o.client_order_id for o in venue.open_orders()] == [resting.ref]
    b.close("test")
    n = rows(tmp_path / "data", "SELECT count(*) FROM paper_orders")
    assert n == [(41,)]  # every order is in the DB, pruned from memory or not


def test_screens_when_orders_accumulate_then_latest_and_fill_ratio_from_bounded_windows(
    make_booted,
):
    from engine.trading import order_cache

    b = make_booted(MANY)
    e = b.engine
    feed_all(e)
    resting = e.submit(
        order(
            side="buy",
            qty="0.004",
            did=e.ids.next(),
            order_type="limit",
            limit_price_e8=to_e8(60000),
        )
    )
    refs = []
    for i in range(order_cache.CLOSED_WINDOW + 10):
        refs.append(submit(b, side="buy" if i % 2 else "sell", qty="0.001").ref)
        e.flush()
    latest = e.order_cache.latest(50)
    assert [o.client_order_id for o in latest] == refs[::-1][:50]  # newest first
    assert (
        len(e.order_cache.recent_orders) == order_cache.RECENT_ORDERS
    )  # bounded, whatever the history
    assert resting.ref not in {o.client_order_id for o in latest}
    assert e.order_cache.fill_ratio("BTC/USDT") == 1.0  # market orders inside the depth fill
    assert len(e.order_cache.recent_closed["BTC/USDT"]) == order_cache.CLOSED_WINDOW
    assert Commands(e).cancel(resting.ref, "operator").ok  # closes with nothing filled
    assert e.order_cache.latest(1)[0].client_order_id == resting.ref  # before any flush
    assert e.order_cache.fill_ratio("BTC/USDT") == 199 / 203  # 199 × 0.001 filled of 0.203 asked
