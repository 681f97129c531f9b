"""Issue 12, items 1 (venue half) and 1b: the reproductions, against the real process / venue.

- 429 then 418 injected by the loopback venue simulator, through real ccxt: no order leaves with
  a decision older than its time-to-live, new orders are blocked while the adapter backs off,
  and the 418 is reported as a ban (with until-when), not as a 429.
- ``MAX_TRADES_PER_DAY=6``, two headless ``cockpit`` runs on one data dir: 6 orders for the UTC
  day in total, and the budgets reflect them after the relaunch.
- Sizes below the venue's minimum notional / off its amount step never reach the venue.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from engine.core.events import SubmitOrder
from engine.core.units import SCALE, to_e8
from engine.trading import oms
from engine.trading.commands import Commands
from tests.acceptance.helpers import FAST_PROFILE, query, run
from tests.venue.conftest import rig_factory, until  # noqa: F401 (fixture)

TTL_MS = 1500.0  # the documented default of oms.decision_ttl_ms


def _order(e, qty: str = "0.001", symbol: str = "BTC/USDT", side: str = "buy") -> SubmitOrder:
    return SubmitOrder(
        decision_id=e.ids.next(),
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        qty_e8=to_e8(qty),
        ts_us=e.clock.now_us(),
    )


async def _inject(rig, status: int, retry_after_s: int, msg: str) -> None:
    await rig.admin(
        "inject",
        {
            "method": "POST",
            "path": "/api/v3/order",
            "count": 1,
            "kind": "binance_error",
            "status": status,
            "code": -1003,
            "msg": msg,
            "retry_after_s": retry_after_s,
        },
    )


def _gate(e, name: str):
    e.gates.refresh(e.clock.now_us())
    return e.gates.states.get(name)


async def test_orders_when_venue_answers_429_then_418_then_no_stale_send_gate_blocks_and_ban_shown(
    rig_factory,  # noqa: F811 (the fixture imported above)
):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await _inject(rig, 429, 1, "Too many requests.")
    await _inject(rig, 418, 3, "Way too much request weight used; IP banned.")
    decided: dict[str, int] = {}

    def submit() -> object:
        cmd = _order(e)
        res = e.submit(cmd)
        if res.ok:
            decided[res.ref] = cmd.ts_us
        return res

    first = submit()
    assert first.ok  # nothing was throttled yet
    await asyncio.sleep(0.3)  # the 429 is in: the adapter backs off for 1 s
    during_429 = [submit() for _ in range(3)]
    st = _gate(e, "venue_throttle")
    assert st is not None, "no gate blocks new orders during a rate-limit back-off"
    assert st.active, "no gate blocks new orders during a rate-limit back-off"
    assert "429" in st.reason
    assert "ban" not in st.reason.lower()
    assert e.metrics.registry.get_sample_value("gate_venue_throttle_active") == 1
    assert all(not r.ok and "venue_throttle" in r.message for r in during_429)  # type: ignore[attr-defined]

    await until(lambda: "418" in (_gate(e, "venue_throttle").reason or ""), 5, "the 418")
    st = _gate(e, "venue_throttle")
    assert st.active
    assert "BANNED" in st.reason
    assert "until" in st.reason
    assert re.search(r"\d\d:\d\d:\d\d", st.reason), st.reason  # until-when, readable
    assert not submit().ok  # type: ignore[attr-defined]

    await asyncio.sleep(4.0)  # the ban ends (Retry-After 3 s)
    await rig.settle()
    assert not _gate(e, "venue_throttle").active
    after = submit()
    assert after.ok  # type: ignore[attr-defined]
    await rig.settle()

    # where it matters: what the venue holds. Nothing went out on a decision older than the TTL.
    state = await rig.venue_state()
    sent = {
        o["clientOrderId"]: int(o["time"])
        for o in state["orders"]
        if o.get("clientOrderId") in decided
    }
    stale = {
        cid: t * 1000 - decided[cid]
        for cid, t in sent.items()
        if t * 1000 - decided[cid] > TTL_MS * 1000
    }
    assert not stale, f"orders sent on decisions older than the TTL (age µs): {stale}"
    assert after.ref in sent  # type: ignore[attr-defined]
    # the order queued through the back-off expired before it ever left: closed, counted, audited
    o = e.order_cache.orders[first.ref]  # type: ignore[attr-defined]
    assert first.ref not in sent
    assert o.status == oms.REJECTED
    assert "decision expired before send" in o.reason
    assert "TTL" in o.reason
    reg = e.metrics.registry
    assert reg.get_sample_value("orders_error_total", {"reason": "decision_expired"}) == 1
    rig.booted.flush()
    rig.booted.writer.wait_idle()
    finals = rig.booted.con.execute(
        "SELECT payload FROM audit_log WHERE kind = 'order_final'"
    ).fetchall()
    assert any(first.ref in p and "decision expired" in p for (p,) in finals)  # type: ignore[attr-defined]


async def test_ip_ban_when_venue_bans_then_every_request_refused_until_it_ends_and_nothing_stale_sent(
    rig_factory,  # noqa: F811
):
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin(
        "inject", {"kind": "ban", "method": "POST", "path": "/api/v3/order", "retry_after_s": 3}
    )
    res = e.submit(_order(e))
    assert res.ok
    await until(lambda: rig.venue.throttle() is not None, 5, "the ban")
    t = rig.venue.throttle()
    assert t is not None
    assert t.kind == "ban"
    assert "BANNED" in t.reason
    assert 2_000_000 <= t.until_us - e.clock.now_us() <= 3_500_000  # Retry-After / "until" ms
    # the ban outlasts the decision's TTL: the queued order is closed at once, never sent
    await until(
        lambda: e.order_cache.orders[res.ref].status == oms.REJECTED, 5, "expired before send"
    )
    assert "decision expired before send" in e.order_cache.orders[res.ref].reason
    assert not e.submit(_order(e)).ok
    await until(lambda: rig.venue.throttle() is None, 6, "the ban to end")
    ok = e.submit(_order(e))
    assert ok.ok
    await rig.settle()
    cids = [o["clientOrderId"] for o in (await rig.venue_state())["orders"]]
    assert cids == [ok.ref]


async def test_418_when_no_retry_after_then_long_ban_assumed(rig_factory):  # noqa: F811
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    await _inject(rig, 418, 0, "I'm a teapot")
    res = e.submit(_order(e))
    await until(lambda: rig.venue.throttle() is not None, 5, "the ban")
    t = rig.venue.throttle()
    assert t is not None
    assert t.kind == "ban"
    assert t.until_us - e.clock.now_us() > 100_000_000  # 120 s: a short guess earns a longer ban
    await until(
        lambda: e.order_cache.orders[res.ref].status == oms.REJECTED, 5, "expired before send"
    )
    st = _gate(e, "venue_throttle")
    assert st.active
    assert "HTTP 418" in st.reason


async def test_send_when_outcome_unknown_past_the_ttl_then_resolved_by_query_never_expired(
    rig_factory,  # noqa: F811
):
    # a guard, not a reproduction: the TTL must never turn a send that may have reached the
    # venue into a failure, nor re-send it
    rig = await rig_factory(timeout_ms=1000)
    e = rig.engine
    await rig.quotes_ready()
    await rig.admin(
        "inject",
        {"kind": "accept_late", "method": "POST", "path": "/api/v3/order", "delay_ms": 2500},
    )
    res = e.submit(_order(e))
    reg = e.metrics.registry
    await until(
        lambda: reg.get_sample_value("orders_error_total", {"reason": "unknown_outcome"}) == 1,
        5,
        "the send to time out (outcome unknown)",
    )
    await asyncio.sleep(2.0)  # well past the TTL
    await rig.settle()
    o = e.order_cache.orders[res.ref]
    assert o.status == oms.FILLED, (o.status, o.reason)
    assert "expired" not in o.reason, (o.status, o.reason)
    cids = [x["clientOrderId"] for x in (await rig.venue_state())["orders"]]
    assert cids == [res.ref]


async def test_order_when_below_venue_min_notional_then_denied_before_send(rig_factory):  # noqa: F811
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    qty = (
        f"{max(0.00001, 2 * SCALE / e.market.mid_e8('BTC/USDT')):.5f}"  # about 2 USDT (minimum: 5)
    )
    res = e.submit(_order(e, qty))
    assert not res.ok, "an order below the venue's minimum notional was sent"
    assert "venue_limits" in res.message
    assert "minimum notional" in res.message
    assert "\n" not in res.message
    await asyncio.sleep(0.3)
    assert not (await rig.venue_state())["orders"]


async def test_order_when_qty_off_the_venue_step_then_rounded_down_and_filled(rig_factory):  # noqa: F811
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    res = e.submit(_order(e, "0.0012345"))  # BTC/USDT step is 0.00001
    assert res.ok, res.message
    await rig.settle()
    o = e.order_cache.orders[res.ref]
    assert o.qty_e8 == to_e8("0.00123"), (o.qty_e8, o.status, o.reason)
    assert o.status == oms.FILLED, (o.qty_e8, o.status, o.reason)


def _metric(prom: Path, name: str, labels: str) -> float:
    for line in prom.read_text().splitlines():
        if line.startswith(f"{name}{{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{labels}}} not in {prom}")


def test_second_run_when_max_trades_per_day_reached_then_no_more_orders_same_utc_day(tmp_path):
    d = tmp_path / "d"
    prof = tmp_path / "p.toml"
    prof.write_text(FAST_PROFILE)
    env = {"MAX_TRADES_PER_DAY": "6"}
    args = ("--headless", "--profile", str(prof), "--data-dir", str(d), "--seed", "3")
    first = run(*args, "--duration", "8", **env)
    assert first.returncode == 0, first.stderr
    n1 = query(d, "SELECT count(*) FROM orders")[0][0]
    assert n1 == 6, f"the first run should reach MAX_TRADES_PER_DAY=6, sent {n1}"
    t0 = time.time()
    second = run(*args, "--duration", "6", **env)
    assert second.returncode == 0, second.stderr
    day_start_us = int(t0 // 86_400) * 86_400 * 1_000_000
    n = query(d, f"SELECT count(*) FROM orders WHERE created_us >= {day_start_us}")[0][0]
    assert n == 6, f"{n} orders in one UTC day with MAX_TRADES_PER_DAY=6 (limit reset on restart)"
    prom = d / "metrics" / "metrics.prom"
    account = 500  # budget_orders_per_day_account default
    assert _metric(prom, "daily_budget_left", 'scope="account"') == account - 6


def _round_trip(b, qty: str = "0.01") -> None:
    """Buy then sell on paper: a realized loss (spread and fees) that moves equity."""
    from tests.conftest import feed

    e = b.engine
    for side in ("buy", "sell"):
        feed(e, "BTC/USDT", 64990.0, 65010.0, size=5.0)
        assert e.submit(_order(e, qty, side=side)).ok
    e.refresh()
    b.flush()
    b.writer.wait_idle()


def test_restart_when_same_utc_day_then_drawdown_baseline_kept_and_next_day_rebased(
    make_booted, tmp_path
):
    from engine.core.clock import SimClock

    d = tmp_path / "dd"
    day0 = 1_767_225_600_000_000_000 + 3_600_000_000_000  # 2026-01-01 01:00Z
    b = make_booted(data_dir=d, clock=SimClock(day0))
    start = b.engine.risk.equity_day_start_e8
    _round_trip(b)
    loss = start - b.engine.risk.equity_e8
    assert loss > 0
    b.close("day 0")
    # next UTC day: the baseline is the equity at that day's start, not the starting balance
    b = make_booted(data_dir=d, clock=SimClock(day0 + 86_400_000_000_000))
    r = b.engine.risk
    assert r.equity_day_start_e8 == start - loss, "day baseline ignores yesterday's realized PnL"
    assert r.drawdown_pct() == 0.0
    _round_trip(b)
    Commands(b.engine).reset_risk("op", "re-baseline after review")  # an operator's new baseline...
    rebased = r.equity_day_start_e8
    assert rebased < start - loss
    b.flush()
    b.writer.wait_idle()
    b.close("day 1")
    # ...survives a restart on the same UTC day
    b = make_booted(data_dir=d, clock=SimClock(day0 + 86_400_000_000_000 + 60_000_000_000))
    assert b.engine.risk.equity_day_start_e8 == rebased
    # day 1's round trip came before the operator's reset: the restarted budget stays restarted
    assert b.engine.risk.orders_today == 0
