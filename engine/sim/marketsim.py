"""Embedded market simulator: the offline, deterministic quote/trade feed of the paper profile.

Role: produce realistic top-of-book quotes and trade prints for a few symbols, with a hidden
regime (``TREND_UP``, ``TREND_DOWN``, ``RANGE``, ``HIGH_VOL``) per symbol that switches as a Markov
chain, so models, gates and the cockpit have something meaningful to react to without a network.

Invariants:
- Deterministic: the same ``seed`` and symbols give the same tick stream. Each symbol draws from
  its own ``random.Random`` seeded from ``(seed, symbol)``, so adding a symbol leaves the others'
  streams unchanged. No global random, no wall clock: sim time starts at ``start_ns`` and advances
  by exactly one tick interval per ``step()``.
- Every price and size is an ``int`` in e8 units; prices sit on the symbol's tick grid,
  ``bid < ask``, sizes are positive multiples of the lot size.
- Per-symbol timestamps strictly increase (the jitter is smaller than the tick interval).
- ``quote_columns`` runs the same process on a private state, so benchmarks never perturb the
  ``step()`` stream.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from engine.core.events import QuoteTick, Regime, TradeTick
from engine.core.units import SCALE, to_e8

REGIMES: tuple[Regime, ...] = ("TREND_UP", "TREND_DOWN", "RANGE", "HIGH_VOL")


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Static trading rules and simulation parameters of one symbol (shared with the venues)."""

    symbol: str
    tick_size_e8: int
    lot_size_e8: int
    min_notional_e8: int
    start_price_e8: int
    base_spread_bps: float
    size_median_e8: int  # median top-of-book size per side


_MIN_NOTIONAL_E8 = to_e8(5)

_SPECS: dict[str, SymbolSpec] = {
    "BTC/USDT": SymbolSpec(
        "BTC/USDT", to_e8("0.01"), to_e8("0.00001"), _MIN_NOTIONAL_E8, to_e8(65000), 1.0, to_e8(1.2)
    ),
    "ETH/USDT": SymbolSpec(
        "ETH/USDT", to_e8("0.01"), to_e8("0.0001"), _MIN_NOTIONAL_E8, to_e8(3200), 1.5, to_e8(15)
    ),
    "SOL/USDT": SymbolSpec(
        "SOL/USDT", to_e8("0.001"), to_e8("0.001"), _MIN_NOTIONAL_E8, to_e8(150), 3.0, to_e8(200)
    ),
}


def symbol_spec(symbol: str) -> SymbolSpec:
    """Spec of ``symbol``; unknown symbols get a generic 100-USDT instrument."""
    spec = _SPECS.get(symbol)
    if spec is None:
        spec = SymbolSpec(
            symbol, to_e8("0.01"), to_e8("0.001"), _MIN_NOTIONAL_E8, to_e8(100), 5.0, to_e8(100)
        )
    return spec


# --- regime dynamics -------------------------------------------------------------------------
# Volatility is the same in bps for every symbol on purpose: one set of model thresholds and one
# drift reference then fit every simulated symbol. All figures are per second of sim time.
_BASE_VOL_BPS_S = 1.0  # bps per sqrt(second)
# regime: (drift bps/s, vol multiple, spread multiple, mean-reversion rate 1/s, mean duration s)
_REGIME_PARAMS: dict[str, tuple[float, float, float, float, float]] = {
    "TREND_UP": (1.75, 1.0, 1.0, 0.0, 30.0),
    "TREND_DOWN": (-1.75, 1.0, 1.0, 0.0, 30.0),
    "RANGE": (0.0, 0.8, 1.0, 0.3, 40.0),
    "HIGH_VOL": (0.0, 3.5, 4.0, 0.0, 20.0),
}
# Where a regime goes when it ends (weights; self-transitions are excluded by construction).
_TRANSITIONS: dict[str, tuple[tuple[Regime, ...], tuple[float, ...]]] = {
    "TREND_UP": (("TREND_DOWN", "RANGE", "HIGH_VOL"), (0.2, 0.55, 0.25)),
    "TREND_DOWN": (("TREND_UP", "RANGE", "HIGH_VOL"), (0.2, 0.55, 0.25)),
    "RANGE": (("TREND_UP", "TREND_DOWN", "HIGH_VOL"), (0.4, 0.4, 0.2)),
    "HIGH_VOL": (("TREND_UP", "TREND_DOWN", "RANGE"), (0.25, 0.25, 0.5)),
}
_SIZE_SIGMA = 0.5  # lognormal sigma of book sizes: median 1.2 BTC -> mostly 0.5..3 BTC
_TRADE_SIGMA = 0.8
_TRADE_MEDIAN_FRACTION = 0.05  # median trade qty as a fraction of the median book size
_TABLE_SIZE = 4096  # lognormal multipliers are drawn from a table: a few ns instead of a gauss()


class _SymState:
    """Mutable per-symbol process state; ``advance`` is the hot path (one call per tick)."""

    __slots__ = (
        "anchor",
        "ask_e8",
        "ask_size_e8",
        "bid_e8",
        "bid_size_e8",
        "drift",
        "dt_s",
        "half_spread_frac",
        "kappa",
        "lot",
        "p_switch",
        "price",
        "regime",
        "rng",
        "size_median",
        "size_mult",
        "size_table",
        "spec",
        "spread_mult",
        "tick",
        "tick_f",
        "trade_id",
        "vol",
    )

    def __init__(self, spec: SymbolSpec, rng: random.Random, dt_s: float) -> None:
        self.regime: Regime = "RANGE"
        self.spec = spec
        self.rng = rng
        self.dt_s = dt_s
        self.price = spec.start_price_e8 / SCALE
        self.anchor = self.price
        self.tick = spec.tick_size_e8
        self.tick_f = spec.tick_size_e8 / SCALE
        self.lot = spec.lot_size_e8
        self.size_median = spec.size_median_e8 / spec.lot_size_e8  # in lots
        self.size_table = [math.exp(_SIZE_SIGMA * rng.gauss(0.0, 1.0)) for _ in range(_TABLE_SIZE)]
        self.bid_e8 = self.ask_e8 = self.bid_size_e8 = self.ask_size_e8 = 0
        self.trade_id = 0
        self._enter(REGIMES[rng.randrange(4)])

    def _enter(self, regime: Regime) -> None:
        drift_bps, vol_mult, spread_mult, kappa, duration_s = _REGIME_PARAMS[regime]
        dt = self.dt_s
        self.regime = regime
        self.drift = drift_bps * 1e-4 * dt
        self.vol = _BASE_VOL_BPS_S * vol_mult * 1e-4 * math.sqrt(dt)
        self.kappa = min(kappa * dt, 1.0)
        self.p_switch = min(dt / duration_s, 1.0)
        self.spread_mult = spread_mult
        self.half_spread_frac = self.spec.base_spread_bps * spread_mult * 0.5e-4
        self.size_mult = 0.5 if regime == "HIGH_VOL" else 1.0  # books thin out when vol spikes
        self.anchor = self.price  # RANGE mean-reverts toward the level it started at

    def advance(self) -> None:
        rng = self.rng
        if rng.random() < self.p_switch:
            targets, weights = _TRANSITIONS[self.regime]
            self._enter(rng.choices(targets, weights)[0])
        price = self.price
        ret = self.drift + self.vol * rng.gauss(0.0, 1.0)
        if self.kappa:
            ret += self.kappa * (self.anchor - price) / price
        price *= 1.0 + ret
        self.price = price
        # Spread jitters +-30 % around its regime level; it is a whole number of ticks (>= 1).
        spread = price * self.half_spread_frac * (1.4 + 1.2 * rng.random())
        n_ticks = int(spread / self.tick_f + 0.5) or 1
        bid_ticks = int((price - 0.5 * n_ticks * self.tick_f) / self.tick_f)
        tick = self.tick
        self.bid_e8 = bid_ticks * tick
        self.ask_e8 = (bid_ticks + n_ticks) * tick
        table = self.size_table
        lots = self.size_median * self.size_mult
        self.bid_size_e8 = (int(lots * table[int(rng.random() * _TABLE_SIZE)]) or 1) * self.lot
        self.ask_size_e8 = (int(lots * table[int(rng.random() * _TABLE_SIZE)]) or 1) * self.lot

    def trade(self) -> tuple[int, int, bool]:
        """One print at the touch: (price_e8, qty_e8, buyer_is_aggressor)."""
        rng = self.rng
        # Aggressors lean with the drift, so trade flow carries a little of the regime signal.
        p_buy = 0.5 + (0.15 if self.drift > 0 else -0.15 if self.drift < 0 else 0.0)
        buy = rng.random() < p_buy
        lots = self.size_median * _TRADE_MEDIAN_FRACTION
        qty_lots = int(lots * math.exp(_TRADE_SIGMA * rng.gauss(0.0, 1.0))) or 1
        touch_size = self.ask_size_e8 if buy else self.bid_size_e8
        qty = min(qty_lots * self.lot, touch_size)
        self.trade_id += 1
        return (self.ask_e8 if buy else self.bid_e8), qty, buy


class MarketSimulator:
    """Multi-symbol simulated feed. ``step()`` advances sim time by one tick interval."""

    def __init__(
        self,
        symbols: Sequence[str] = ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
        seed: int = 42,
        ticks_per_second: float = 20.0,
        trade_prob: float = 0.3,
        start_ns: int = 1_767_225_600_000_000_000,
    ) -> None:
        if ticks_per_second <= 0:
            raise ValueError(f"ticks_per_second must be > 0, got {ticks_per_second}")
        if not 0.0 <= trade_prob <= 1.0:
            raise ValueError(f"trade_prob must be within 0..1, got {trade_prob}")
        if len(set(symbols)) != len(symbols) or not symbols:
            raise ValueError(f"symbols must be non-empty and unique, got {list(symbols)}")
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.seed = seed
        self.trade_prob = trade_prob
        self._dt_ns = round(1e9 / ticks_per_second)
        self._now_ns = start_ns
        dt_s = self._dt_ns / 1e9
        self._states = [
            _SymState(symbol_spec(s), random.Random(f"{seed}:{s}"), dt_s) for s in self.symbols
        ]
        self._by_symbol = dict(zip(self.symbols, self._states, strict=True))
        # Symbols tick in a fixed order a few µs apart, well inside one interval (keeps ts monotonic).
        self._offsets_ns = [min(i * 37_000, self._dt_ns // 4) for i in range(len(self.symbols))]

    @property
    def now_ns(self) -> int:
        """Sim time of the last step (``start_ns`` before the first)."""
        return self._now_ns

    @property
    def dt_ns(self) -> int:
        """Sim time between two steps."""
        return self._dt_ns

    def regime(self, symbol: str) -> Regime:
        """Ground-truth regime of ``symbol`` (what the models try to infer)."""
        return self._by_symbol[symbol].regime

    def spec(self, symbol: str) -> SymbolSpec:
        return self._by_symbol[symbol].spec

    def step(self) -> list[QuoteTick | TradeTick]:
        """Advance one interval; a quote per symbol, each followed by a trade with ``trade_prob``."""
        self._now_ns = now = self._now_ns + self._dt_ns
        out: list[QuoteTick | TradeTick] = []
        trade_prob = self.trade_prob
        for st, offset in zip(self._states, self._offsets_ns, strict=True):
            st.advance()
            ts = now + offset
            sym = st.spec.symbol
            out.append(
                QuoteTick(
                    symbol=sym,
                    bid_e8=st.bid_e8,
                    ask_e8=st.ask_e8,
                    bid_size_e8=st.bid_size_e8,
                    ask_size_e8=st.ask_size_e8,
                    ts_ns=ts,
                )
            )
            if trade_prob and st.rng.random() < trade_prob:
                price, qty, buy = st.trade()
                out.append(
                    TradeTick(
                        symbol=sym,
                        price_e8=price,
                        qty_e8=qty,
                        aggressor="buy" if buy else "sell",
                        trade_id=st.trade_id,
                        ts_ns=ts + 1_000,  # the print follows the quote it hit
                    )
                )
        return out

    def quote_columns(self, symbol: str, n: int, dt_ns: int = 1_000_000) -> dict[str, array[int]]:
        """``n`` quotes of ``symbol``, ``dt_ns`` apart, as typed columns (for benchmarks).

        Same process as ``step()`` but on a private state seeded from this simulator's seed, so
        the live stream is untouched and two calls with the same arguments return equal columns.
        """
        if n < 0 or dt_ns <= 0:
            raise ValueError(f"need n >= 0 and dt_ns > 0, got n={n} dt_ns={dt_ns}")
        st = _SymState(
            symbol_spec(symbol), random.Random(f"{self.seed}:{symbol}:cols"), dt_ns / 1e9
        )
        bid, ask, bsz, asz = array("q"), array("q"), array("q"), array("q")
        ts = array("q", range(self._now_ns + dt_ns, self._now_ns + dt_ns * (n + 1), dt_ns))
        advance = st.advance
        bid_append, ask_append, bsz_append, asz_append = (
            bid.append,
            ask.append,
            bsz.append,
            asz.append,
        )
        for _ in range(n):
            advance()
            bid_append(st.bid_e8)
            ask_append(st.ask_e8)
            bsz_append(st.bid_size_e8)
            asz_append(st.ask_size_e8)
        return {"bid_e8": bid, "ask_e8": ask, "bid_size_e8": bsz, "ask_size_e8": asz, "ts_ns": ts}
