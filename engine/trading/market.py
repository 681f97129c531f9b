"""Market state: the latest quote and trade per symbol, staleness, trading blocks, readiness.

Role: the one owner of what the engine knows about the market. The engine's tick handler writes
the quote fields inline (the hot path: plain dicts, no method call per tick); the stale-data gate,
the strategy, the snapshot and the telemetry read them.

Invariants:
- ``quotes[symbol]`` is the last *well-formed* quote (bid > 0, ask >= bid); a malformed one never
  reaches prices, the venue or the strategy.
- ``last_quote_us`` and ``worst_gap_us`` are on the engine clock; ``worst_gap_us`` is the longest
  gap between two quotes actually seen (staleness experienced, not configured).
- ``blocked`` lifts a symbol only when every cause that blocked it is gone (``MarketBlocks``).
- ``ticks`` counts quotes processed; ``ticks_exported`` is how many the metrics already counted.
Loop-thread only, like the rest of the engine state.
"""

from __future__ import annotations

from engine.trading.blocks import MarketBlocks


class MarketState:
    """Quotes, trades, staleness, blocks and readiness signals of one engine (loop thread)."""

    __slots__ = (
        "blocked",
        "last_quote_us",
        "last_trade",
        "quotes",
        "readiness",
        "ticks",
        "ticks_exported",
        "trade_volume_e8",
        "worst_gap_us",
    )

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self.quotes: dict[str, tuple[int, int, int, int]] = {}  # bid, ask, bid size, ask size
        self.last_quote_us: dict[str, int] = {s: 0 for s in symbols}
        self.worst_gap_us: dict[str, int] = {s: 0 for s in symbols}
        self.last_trade: dict[str, tuple[int, int, int]] = {}  # price, qty, ts_ns
        self.trade_volume_e8: dict[str, int] = {}
        self.blocked = MarketBlocks()  # symbol -> reason, each cause lifted on its own
        # readiness signals: name -> (ok, expiry on the engine clock in s, reason)
        self.readiness: dict[str, tuple[bool, float, str]] = {}
        self.ticks = 0
        self.ticks_exported = 0

    def mid_e8(self, symbol: str) -> int:
        """The mid of the last quote, 0 when there is none yet."""
        q = self.quotes.get(symbol)
        return (q[0] + q[1]) // 2 if q else 0

    def on_trade(self, symbol: str, price_e8: int, qty_e8: int, ts_ns: int) -> None:
        """A public trade print: last price and volume (a malformed print is dropped)."""
        if price_e8 <= 0 or qty_e8 <= 0:
            return
        self.last_trade[symbol] = (price_e8, qty_e8, ts_ns)
        self.trade_volume_e8[symbol] = self.trade_volume_e8.get(symbol, 0) + qty_e8
