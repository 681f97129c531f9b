"""The portfolio: positions, realised PnL, fees, and equity marked at the current mids.

Role: the one owner of what the engine holds. Fills change it (``apply_fill``); equity is
computed from it (``unrealized_e8``, ``equity_e8``) without writing anything, so a screen that
reads it four times a second changes nothing (the engine re-marks the drawdown gate's equity in
``Engine.refresh`` only).

Invariants:
- Money is integer e8 quote units; a position's quantity is exactly the signed sum of its fills.
- ``realized_e8`` and ``fees_e8`` are this process's running totals (positions carry their own
  since-inception figures); ``base_fees_e8`` are commissions paid in the base asset, per symbol.
- ``dirty_positions`` are the symbols changed since the last flush (written as upserts).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from engine.core.events import VenueFill
from engine.trading.positions import Position


class Portfolio:
    """Positions and PnL of one engine session (loop thread)."""

    __slots__ = (
        "base_fees_e8",
        "dirty_positions",
        "fees_e8",
        "positions",
        "realized_e8",
        "recent_fills",
        "start_equity_e8",
    )

    def __init__(self, symbols: tuple[str, ...], start_equity_e8: int) -> None:
        self.positions: dict[str, Position] = {s: Position(s) for s in symbols}
        self.start_equity_e8 = start_equity_e8
        self.realized_e8 = 0
        self.fees_e8 = 0
        self.base_fees_e8: dict[str, int] = {}
        self.dirty_positions: set[str] = set()
        self.recent_fills: deque[tuple[Any, ...]] = deque(maxlen=50)  # newest first, for screens

    def apply_fill(self, f: VenueFill) -> Position:
        """Book one fill into its position and the running totals; returns the position."""
        pos = self.positions[f.symbol]
        self.realized_e8 += pos.apply_fill(f.side, f.qty_e8, f.price_e8, f.fee_e8, f.ts_us)
        self.fees_e8 += f.fee_e8
        if f.fee_base_e8:
            self.base_fees_e8[f.symbol] = self.base_fees_e8.get(f.symbol, 0) + f.fee_base_e8
        self.dirty_positions.add(f.symbol)
        return pos

    def note_fill(self, f: VenueFill, slip: float) -> None:
        """Remember a booked fill for the screens."""
        self.recent_fills.appendleft(
            (f.trade_id, f.client_order_id, f.symbol, f.side, f.qty_e8, f.price_e8, slip, f.ts_us)
        )

    def unrealized_e8(self, mid_e8: Callable[[str], int]) -> int:
        """Open positions marked at the given mids (reads only)."""
        return sum(p.unrealized_e8(mid_e8(s)) for s, p in self.positions.items())

    def equity_e8(self, unrealized_e8: int) -> int:
        return self.start_equity_e8 + self.realized_e8 - self.fees_e8 + unrealized_e8

    def pnl_e8(self) -> int:
        """Realised PnL net of fees, this session."""
        return self.realized_e8 - self.fees_e8
