"""The embedded market simulator: determinism, book invariants, regimes, bulk columns."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from itertools import pairwise

import pytest

from engine.core.events import QuoteTick, TradeTick
from engine.core.units import to_e8
from engine.sim.marketsim import REGIMES, MarketSimulator, symbol_spec


def _run(sim: MarketSimulator, steps: int) -> list[QuoteTick | TradeTick]:
    out: list[QuoteTick | TradeTick] = []
    for _ in range(steps):
        out.extend(sim.step())
    return out


def _spread_bps(q: QuoteTick) -> float:
    return (q.ask_e8 - q.bid_e8) / ((q.ask_e8 + q.bid_e8) / 2) * 1e4


def test_step_when_same_seed_then_identical_streams() -> None:
    a = _run(MarketSimulator(seed=5), 500)
    b = _run(MarketSimulator(seed=5), 500)
    assert a == b
    assert any(isinstance(t, TradeTick) for t in a)


def test_step_when_different_seed_then_different_streams() -> None:
    assert _run(MarketSimulator(seed=5), 200) != _run(MarketSimulator(seed=6), 200)


def test_step_when_symbol_added_then_other_symbols_streams_unchanged() -> None:
    alone = [t for t in _run(MarketSimulator(("BTC/USDT",), seed=3), 300)]
    mixed = _run(MarketSimulator(("BTC/USDT", "ETH/USDT"), seed=3), 300)
    assert [(t.bid_e8, t.ask_e8) for t in alone if isinstance(t, QuoteTick)] == [
        (t.bid_e8, t.ask_e8) for t in mixed if isinstance(t, QuoteTick) and t.symbol == "BTC/USDT"
    ]


def test_step_when_run_long_then_books_valid_on_tick_grid_and_lot_sizes() -> None:
    sim = MarketSimulator(("BTC/USDT", "ETH/USDT", "SOL/USDT", "XYZ/USDT"), seed=11)
    last_ts: dict[str, int] = {}
    quotes = 0
    for tick in _run(sim, 5_000):
        if not isinstance(tick, QuoteTick):
            continue
        quotes += 1
        spec = symbol_spec(tick.symbol)
        assert 0 < tick.bid_e8 < tick.ask_e8
        assert tick.bid_e8 % spec.tick_size_e8 == 0
        assert tick.ask_e8 % spec.tick_size_e8 == 0
        assert tick.bid_size_e8 > 0
        assert tick.ask_size_e8 > 0
        assert tick.bid_size_e8 % spec.lot_size_e8 == 0
        assert isinstance(tick.bid_e8, int)
        assert isinstance(tick.ts_ns, int)
        assert tick.ts_ns > last_ts.get(tick.symbol, 0)
        last_ts[tick.symbol] = tick.ts_ns
    assert quotes == 4 * 5_000


def test_step_when_called_then_sim_time_advances_one_interval() -> None:
    sim = MarketSimulator(seed=1, ticks_per_second=20.0, start_ns=1_000_000_000)
    assert sim.now_ns == 1_000_000_000
    ticks = sim.step()
    assert sim.now_ns == 1_050_000_000
    assert {t.symbol for t in ticks if isinstance(t, QuoteTick)} == set(sim.symbols)
    assert all(sim.now_ns <= t.ts_ns < sim.now_ns + 50_000_000 for t in ticks)


def test_step_when_long_run_then_spreads_realistic_and_wider_in_high_vol() -> None:
    sim = MarketSimulator(("BTC/USDT", "SOL/USDT"), seed=2, trade_prob=0.0)
    by_regime: dict[tuple[str, bool], list[float]] = defaultdict(list)
    for _ in range(40_000):
        for q in sim.step():
            assert isinstance(q, QuoteTick)
            by_regime[(q.symbol, sim.regime(q.symbol) == "HIGH_VOL")].append(_spread_bps(q))
    btc_all = by_regime[("BTC/USDT", False)] + by_regime[("BTC/USDT", True)]
    assert 0.5 <= statistics.median(btc_all) <= 3.0
    for sym in ("BTC/USDT", "SOL/USDT"):
        calm = statistics.median(by_regime[(sym, False)])
        wild = statistics.median(by_regime[(sym, True)])
        assert wild > 2.5 * calm, (sym, calm, wild)
    # SOL's book is wider than BTC's, as on a real venue.
    assert statistics.median(by_regime[("SOL/USDT", False)]) > statistics.median(
        by_regime[("BTC/USDT", False)]
    )


def test_regime_when_long_run_then_all_four_occur_and_switch() -> None:
    sim = MarketSimulator(("BTC/USDT",), seed=9, trade_prob=0.0)
    seen: Counter[str] = Counter()
    switches = 0
    prev = sim.regime("BTC/USDT")
    for _ in range(40_000):  # 2,000 s of sim time
        sim.step()
        r = sim.regime("BTC/USDT")
        seen[r] += 1
        switches += r != prev
        prev = r
    assert set(seen) == set(REGIMES)
    # Expected durations are tens of seconds: dozens of switches in 2,000 s, not hundreds.
    assert 15 <= switches <= 200


def test_step_when_trade_printed_then_at_touch_with_matching_aggressor() -> None:
    sim = MarketSimulator(seed=4, trade_prob=0.5)
    last_quote: dict[str, QuoteTick] = {}
    last_id: dict[str, int] = {}
    trades = 0
    for tick in _run(sim, 3_000):
        if isinstance(tick, QuoteTick):
            last_quote[tick.symbol] = tick
            continue
        trades += 1
        q = last_quote[tick.symbol]
        if tick.aggressor == "buy":
            assert tick.price_e8 == q.ask_e8
            assert tick.qty_e8 <= q.ask_size_e8
        else:
            assert tick.price_e8 == q.bid_e8
            assert tick.qty_e8 <= q.bid_size_e8
        assert tick.qty_e8 > 0
        assert tick.ts_ns > q.ts_ns
        assert tick.trade_id > last_id.get(tick.symbol, 0)
        last_id[tick.symbol] = tick.trade_id
    # 3 symbols x 3,000 steps x 0.5
    assert 4_000 < trades < 5_000


def test_step_when_trade_prob_zero_then_quotes_only() -> None:
    assert all(isinstance(t, QuoteTick) for t in _run(MarketSimulator(trade_prob=0.0), 300))


def test_quote_columns_when_generated_then_aligned_monotonic_and_valid() -> None:
    sim = MarketSimulator(seed=8)
    cols = sim.quote_columns("ETH/USDT", 20_000, dt_ns=1_000_000)
    assert set(cols) == {"bid_e8", "ask_e8", "bid_size_e8", "ask_size_e8", "ts_ns"}
    assert all(len(c) == 20_000 and c.typecode == "q" for c in cols.values())
    ts = cols["ts_ns"]
    assert all(b - a == 1_000_000 for a, b in pairwise(ts))
    tick = symbol_spec("ETH/USDT").tick_size_e8
    assert all(0 < b < a for b, a in zip(cols["bid_e8"], cols["ask_e8"], strict=True))
    assert all(b % tick == 0 for b in cols["bid_e8"])
    assert min(cols["bid_size_e8"]) > 0
    assert min(cols["ask_size_e8"]) > 0
    assert sim.quote_columns("ETH/USDT", 20_000) == cols


def test_quote_columns_when_called_then_step_stream_untouched() -> None:
    plain = MarketSimulator(seed=8)
    used = MarketSimulator(seed=8)
    used.quote_columns("BTC/USDT", 1_000)
    assert _run(plain, 100) == _run(used, 100)


def test_symbol_spec_when_known_then_venue_rules_match() -> None:
    btc = symbol_spec("BTC/USDT")
    assert (btc.tick_size_e8, btc.lot_size_e8, btc.min_notional_e8) == (
        to_e8("0.01"),
        to_e8("0.00001"),
        to_e8(5),
    )
    assert symbol_spec("ETH/USDT").lot_size_e8 == to_e8("0.0001")
    assert symbol_spec("SOL/USDT").tick_size_e8 == to_e8("0.001")
    assert symbol_spec("DOGE/USDT").start_price_e8 == to_e8(100)
    with pytest.raises(AttributeError):
        btc.tick_size_e8 = 1  # type: ignore[misc]


def test_init_when_bad_arguments_then_value_error() -> None:
    with pytest.raises(ValueError, match="ticks_per_second"):
        MarketSimulator(ticks_per_second=0)
    with pytest.raises(ValueError, match="unique"):
        MarketSimulator(("BTC/USDT", "BTC/USDT"))
