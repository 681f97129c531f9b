"""Synthetic order book of one symbol: the market simulator's top of book plus a depth model.

Role: turn each ``QuoteTick`` into a full ~20-level book per side so that ``/api/v3/depth``,
``depthUpdate`` diffs and MARKET orders walking the book all see real content.

Invariants:
- Level 0 of each side is exactly the simulator's quote (price and size); level ``i`` sits
  ``i`` price steps behind it, with a size that grows with ``i``. Prices are on the tick grid and
  sizes are positive multiples of the lot size (e8 ints throughout).
- ``update_id`` only grows. ``apply`` returns the diff against the previous book with
  ``U == previous u + 1`` (contiguous per symbol) and advances ``update_id`` by the number of
  changed levels, so a REST snapshot taken at any moment (``lastUpdateId = update_id``) is
  exactly the state after the diff whose ``u`` equals it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine.core.events import QuoteTick
from engine.sim.marketsim import SymbolSpec

LEVELS = 20
_STEP_BPS = 0.5  # distance between depth levels, in bps of the start price (rounded to ticks)
_RESIZE_PROB = 0.3  # chance per tick that a deep level's size is redrawn (keeps diffs small)


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """One ``depthUpdate``: first/last update id and the changed levels (qty 0 = removed)."""

    first_id: int
    last_id: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class DepthBook:
    """Mutable book of one symbol; only the price loop calls ``apply``."""

    def __init__(self, spec: SymbolSpec, rng: random.Random, first_update_id: int = 1000) -> None:
        self.spec = spec
        self._rng = rng
        step_ticks = max(1, round(spec.start_price_e8 * _STEP_BPS * 1e-4 / spec.tick_size_e8))
        self.step_e8 = step_ticks * spec.tick_size_e8
        self.update_id = first_update_id
        self.bids: dict[int, int] = {}  # price_e8 -> qty_e8
        self.asks: dict[int, int] = {}
        self.best_bid_e8 = self.best_ask_e8 = 0
        self.bid_size_e8 = self.ask_size_e8 = 0
        # Deep-level size multipliers per side; redrawn now and then, not every tick.
        self._mult = [[self._draw() for _ in range(LEVELS)] for _ in range(2)]

    def _draw(self) -> float:
        return 0.5 + self._rng.random()

    def _side(self, top_e8: int, top_size_e8: int, sign: int, mult: list[float]) -> dict[int, int]:
        lot = self.spec.lot_size_e8
        median_lots = self.spec.size_median_e8 / lot
        levels = {top_e8: top_size_e8}
        for i in range(1, LEVELS):
            price = top_e8 + sign * i * self.step_e8
            if price <= 0:
                break
            lots = int(median_lots * (1.0 + 0.3 * i) * mult[i]) or 1
            levels[price] = lots * lot
        return levels

    def apply(self, q: QuoteTick) -> DepthDiff | None:
        """Rebuild the book from ``q``; the diff to publish, or None when nothing changed."""
        for side in self._mult:
            for i in range(1, LEVELS):
                if self._rng.random() < _RESIZE_PROB:
                    side[i] = self._draw()
        bids = self._side(q.bid_e8, q.bid_size_e8, -1, self._mult[0])
        asks = self._side(q.ask_e8, q.ask_size_e8, +1, self._mult[1])
        db, da = _diff(self.bids, bids), _diff(self.asks, asks)
        self.bids, self.asks = bids, asks
        self.best_bid_e8, self.best_ask_e8 = q.bid_e8, q.ask_e8
        self.bid_size_e8, self.ask_size_e8 = q.bid_size_e8, q.ask_size_e8
        n = len(db) + len(da)
        if n == 0:
            return None
        first = self.update_id + 1
        self.update_id += n
        return DepthDiff(first, self.update_id, db, da)

    def sorted_bids(self) -> list[tuple[int, int]]:
        return sorted(self.bids.items(), reverse=True)

    def sorted_asks(self) -> list[tuple[int, int]]:
        return sorted(self.asks.items())

    @property
    def ready(self) -> bool:
        return bool(self.bids and self.asks)

    @property
    def mid_e8(self) -> int:
        return (self.best_bid_e8 + self.best_ask_e8) // 2


def _diff(old: dict[int, int], new: dict[int, int]) -> list[tuple[int, int]]:
    changed = [(p, q) for p, q in new.items() if old.get(p) != q]
    changed += [(p, 0) for p in old if p not in new]
    return sorted(changed)
