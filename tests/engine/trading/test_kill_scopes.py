"""Kill-switch scopes, reduce-only mode and flatten through the one door (FIA 2015 §1.11), on a
paper engine with a real DuckDB file: what each lets through, what survives a restart, and the
daily-loss reaction."""

from __future__ import annotations

from engine.api import EngineAPI, adds_risk
from engine.core.events import (
    ArmKillSwitch,
    DisarmKillSwitch,
    Flatten,
    SetReduceOnly,
    SetSafeMode,
    SubmitOrder,
)
from engine.core.units import to_e8
from tests.conftest import feed, feed_all


def order(e, symbol="BTC/USDT", side="buy", qty="0.01", model="", reduce_only=False):
    return SubmitOrder(
        decision_id=e.ids.next(),
        symbol=symbol,
        side=side,
        qty_e8=to_e8(qty),
        model_id=model,
        actor="op",
        reduce_only=reduce_only,
    )


def test_symbol_scope_when_armed_then_only_that_symbol_stops_and_it_survives_restart(
    make_booted,
):
    b = make_booted()
    e, api = b.engine, EngineAPI(b.engine)
    feed_all(e)
    assert api.handle(ArmKillSwitch(symbol="ETH/USDT", reason="bad feed")).ok
    assert e.submit(order(e, "ETH/USDT", qty="0.1")).ref == "kill_scope"
    assert e.submit(order(e)).ok
    e.refresh()
    assert "symbol:ETH/USDT killed: bad feed" in e.gates.states["kill_scope"].reason
    b.close("restart")
    b2 = make_booted()
    e2 = b2.engine
    feed_all(e2)
    assert e2.submit(order(e2, "ETH/USDT", qty="0.1")).ref == "kill_scope"
    assert EngineAPI(e2).handle(DisarmKillSwitch(symbol="ETH/USDT")).ok
    assert e2.submit(order(e2, "ETH/USDT", qty="0.1")).ok


def test_model_scope_when_armed_then_that_models_orders_stop_manual_ones_pass(make_booted):
    b = make_booted()
    e, api = b.engine, EngineAPI(b.engine)
    feed_all(e)
    assert api.handle(ArmKillSwitch(model="trend_v1", reason="misbehaving")).ok
    assert e.submit(order(e, model="trend_v1")).ref == "kill_scope"
    assert e.submit(order(e, model="trend_fast_v1")).ok
    assert e.submit(order(e)).ok
    assert not api.handle(ArmKillSwitch(symbol="XYZ/USDT")).ok  # unknown symbol: refused


def test_reduce_only_when_on_then_only_wholly_reducing_orders_pass(make_booted):
    b = make_booted()
    e, api = b.engine, EngineAPI(b.engine)
    feed_all(e)
    assert e.submit(order(e, qty="0.02")).ok
    assert api.handle(SetReduceOnly(on=True, reason="end of day")).ok
    assert e.submit(order(e, qty="0.01")).ref == "reduce_only"  # adds
    assert e.submit(order(e, side="sell", qty="0.03")).ref == "reduce_only"  # flips through zero
    assert e.submit(order(e, side="sell", qty="0.01")).ok  # reduces
    assert e.submit(order(e, "ETH/USDT", qty="0.1")).ref == "reduce_only"
    assert api.handle(SetReduceOnly(on=False, reason="next day")).ok
    assert e.submit(order(e, "ETH/USDT", qty="0.1")).ok


def test_reduce_only_order_when_larger_than_position_then_refused(make_booted):
    b = make_booted()
    e = b.engine
    feed_all(e)
    assert e.submit(order(e, qty="0.02")).ok
    res = e.submit(order(e, side="sell", qty="0.05", reduce_only=True))
    assert res.ref == "reduce_only"
    assert "would add exposure" in res.message


def test_flatten_when_kill_switch_and_safe_mode_on_then_every_position_closed(make_booted):
    b = make_booted()
    e, api = b.engine, EngineAPI(b.engine)
    feed_all(e)
    assert e.submit(order(e, qty="0.02")).ok
    assert e.submit(order(e, "ETH/USDT", side="sell", qty="0.3")).ok
    assert api.handle(ArmKillSwitch(reason="incident")).ok
    assert api.handle(SetSafeMode(on=True, reason="incident")).ok
    assert e.submit(order(e)).ref == "kill_switch"  # new risk: still refused
    res = api.handle(Flatten(reason="incident: get flat"))
    assert res.ok, res.message
    assert "BTC/USDT 0.02" in res.message
    assert "ETH/USDT 0.3" in res.message
    assert all(p.qty_e8 == 0 for p in e.portfolio.positions.values())
    assert e.risk.kill_switch  # flatten closes positions; it does not lift the kill switch


def test_daily_loss_cap_when_tripped_with_flatten_on_then_reduce_only_and_flat(make_booted):
    ov = {
        "risk.flatten_on_daily_loss": True,
        "risk.max_daily_drawdown_pct": 1.0,
        "risk.risk_per_trade_pct": 100.0,
        "risk.max_order_notional_usd": 1e9,
        "risk.max_position_notional_usd": 1e9,
        "risk.max_gross_exposure_usd": 1e9,
    }
    b = make_booted(ov)
    e = b.engine
    feed_all(e)
    assert e.submit(order(e, qty="1")).ok
    feed(e, "BTC/USDT", 61999, 62001)  # -3 % on a whole BTC: the daily loss cap trips
    e.refresh()
    b.evaluate_alerts()
    assert e.risk.reduce_only.startswith("daily loss cap")
    assert e.portfolio.positions["BTC/USDT"].qty_e8 == 0
    b.flush()
    b.writer.wait_idle()
    actors = b.con.execute("SELECT actor FROM audit_log WHERE kind='flatten_requested'").fetchall()
    assert actors == [("engine",)]


def test_policy_when_asked_then_arming_reduces_risk_and_lifting_adds_it():
    assert not adds_risk(ArmKillSwitch())
    assert not adds_risk(SetReduceOnly(on=True))
    assert not adds_risk(SetSafeMode(on=True))
    assert adds_risk(DisarmKillSwitch())
    assert adds_risk(SetReduceOnly(on=False))
    assert adds_risk(SetSafeMode(on=False))
    assert adds_risk(Flatten())


def test_kill_scopes_when_persisted_value_unreadable_then_start_arms_global_kill(make_booted):
    b = make_booted()
    b.engine.recorder.set_state("kill_scopes", '{"symbol:BTC/USDT": ')  # a torn value
    b.flush()
    b.writer.wait_idle()
    b.close("restart")
    b2 = make_booted()
    assert b2.engine.risk.kill_switch  # fail closed: the scopes cannot be read back
    assert "kill_scopes unreadable" in b2.engine.risk.kill_reason


def test_scope_when_model_id_hostile_then_refused_and_shell_output_escaped(make_booted):
    from cockpit.control_cli import shown

    b = make_booted()
    res = EngineAPI(b.engine).handle(ArmKillSwitch(model="\x1b]0;pwned\x07", reason="x"))
    assert not res.ok
    assert "not a model id" in res.message
    assert "\x1b" not in shown(res.message)  # what the shell prints: escaped, never run
    assert "\\x1b" in shown(res.message)
    assert not b.engine.risk.kill_scopes
