"""KPIs that are true: the figures on screen and in the textfile come from what really happened.

A paper engine with the built-in champion/challenger runs a simulated hour of the seeded market
(SimClock, real DuckDB file): the challenger trades at its canary share, the router latency
histogram records every order, the fill ratio is what was filled, each symbol's SLO row is its own,
the embedded feed reports its uptime, and each readiness signal has its gauge.
"""

from __future__ import annotations

from engine.core.events import QuoteTick
from engine.sim.marketsim import MarketSimulator
from engine.snapshot import EngineSnapshot
from engine.trading.snapshot_builder import SnapshotBuilder


def run_sim(e, minutes: int, tps: float = 5.0, sim: MarketSimulator | None = None) -> None:
    sim = sim or MarketSimulator(e.symbols, seed=7, ticks_per_second=tps)
    next_refresh = 0
    for _ in range(int(minutes * 60 * tps)):
        for t in sim.step():
            if isinstance(t, QuoteTick):
                e.on_quote(t.symbol, t.bid_e8, t.ask_e8, t.bid_size_e8, t.ask_size_e8, t.ts_ns)
        if sim.now_ns >= next_refresh:
            next_refresh = sim.now_ns + 1_000_000_000
            e.refresh()


def test_builtin_challenger_when_canary_share_set_then_trades_near_that_share(make_booted):
    b = make_booted({"models.canary_share": 0.2}, strategy="models")
    e = b.engine
    run_sim(e, 60)
    k = e.kpis
    assert k.trades_placed >= 50, k.trades_placed
    share = k.canary_placed / k.trades_placed
    assert abs(share - 0.2) <= 0.02, (k.canary_placed, k.trades_placed)  # its share of trades
    reg = e.metrics.registry
    assert reg.get_sample_value("canary_trades_total") == k.canary_placed
    # every order sent recorded its decision -> send latency
    assert reg.get_sample_value("router_latency_seconds_count") == k.trades_placed
    assert reg.get_sample_value("fill_ratio") > 0.9  # paper market orders fill in full


def test_snapshot_when_one_symbol_rejected_then_only_its_slo_row_shows_it(make_booted):
    b = make_booted()
    e = b.engine
    now = e.clock.now_us()
    for i in range(10):
        e.kpis.note_outcome("ETH/USDT", now, error=i < 5)
        e.kpis.note_ack("ETH/USDT", now, 250.0)
        e.kpis.note_outcome("BTC/USDT", now, error=False)
        e.kpis.note_ack("BTC/USDT", now, 4.0)
        e.kpis.note_slippage("BTC/USDT", now, 1.5)
    snap: EngineSnapshot = SnapshotBuilder().build(e)
    rows = {s.symbol: s for s in snap.symbols}
    assert rows["ETH/USDT"].error_rate == 0.5
    assert rows["BTC/USDT"].error_rate == 0.0
    assert rows["ETH/USDT"].p95_place_ms == 250.0
    assert rows["BTC/USDT"].p95_place_ms == 4.0
    assert rows["BTC/USDT"].slippage_p95_bps == 1.5
    assert rows["SOL/USDT"].slippage_p95_bps == 0.0
    e.refresh()
    reg = e.metrics.registry
    assert reg.get_sample_value("symbol_error_rate_recent", {"symbol": "ETH/USDT"}) == 0.5
    assert reg.get_sample_value("slo_error_rate_recent") == 0.25


def test_sim_feed_when_quotes_flow_then_uptime_grows_and_stall_resets_it(make_booted):
    b = make_booted()
    e = b.engine
    builder = SnapshotBuilder()
    sim = MarketSimulator(e.symbols, seed=7, ticks_per_second=5.0)
    run_sim(e, 1, sim=sim)
    builder.build(e)
    run_sim(e, 1, sim=sim)
    up = builder.build(e).feeds[0]
    assert up.connected
    assert 59 <= up.uptime_s <= 61  # a simulated minute since the first snapshot
    e.clock.advance_ms(5000)  # no quote for 5 s: stalled
    stalled = builder.build(e).feeds[0]
    assert not stalled.connected
    assert stalled.uptime_s == 0.0


def test_readiness_when_signals_published_then_each_has_its_gauge(make_booted):
    b = make_booted()
    e = b.engine
    far = e.clock.monotonic_ns() / 1e9 + 60
    e.market.readiness["venue"] = (True, far, "connected")
    e.market.readiness["recon"] = (False, far, "mismatch")
    e.refresh()
    reg = e.metrics.registry
    assert reg.get_sample_value("readiness_ok", {"signal": "venue"}) == 1
    assert reg.get_sample_value("readiness_ok", {"signal": "recon"}) == 0
