"""Positions, PnL and transaction-cost analysis, in exact integer e8 units.

Invariants:
- A position's quantity is exactly the signed sum of the fills applied to it (netting).
- Realised PnL and fees are integers (e8 quote units); no float ever enters reported money.
- Average entry price follows average-cost accounting: increasing a position re-averages, reducing
  realises PnL at the old average, flipping realises the closed part and opens the rest at the fill.
"""

from __future__ import annotations

from engine.core.units import SCALE


class Position:
    """One symbol's net position: quantity, average entry, realised PnL and fees (integer e8)."""

    __slots__ = ("avg_price_e8", "fees_e8", "qty_e8", "realized_pnl_e8", "symbol", "updated_us")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.qty_e8 = 0
        self.avg_price_e8 = 0
        self.realized_pnl_e8 = 0
        self.fees_e8 = 0
        self.updated_us = 0

    def apply_fill(self, side: str, qty_e8: int, price_e8: int, fee_e8: int, ts_us: int) -> int:
        """Apply one fill; returns the PnL it realised (e8)."""
        signed = qty_e8 if side == "buy" else -qty_e8
        old = self.qty_e8
        realized = 0
        if old == 0 or (old > 0) == (signed > 0):
            new = old + signed
            # re-average: (|old|*avg + |signed|*px) / |new|
            self.avg_price_e8 = (abs(old) * self.avg_price_e8 + abs(signed) * price_e8) // abs(new)
            self.qty_e8 = new
        else:
            closed = min(abs(old), abs(signed))
            direction = 1 if old > 0 else -1
            realized = (price_e8 - self.avg_price_e8) * closed * direction // SCALE
            new = old + signed
            self.qty_e8 = new
            if new == 0:
                self.avg_price_e8 = 0
            elif (new > 0) != (old > 0):
                self.avg_price_e8 = price_e8  # flipped: the remainder opened at this fill
        self.realized_pnl_e8 += realized
        self.fees_e8 += fee_e8
        self.updated_us = ts_us
        return realized

    def unrealized_e8(self, mark_e8: int) -> int:
        if self.qty_e8 == 0 or mark_e8 <= 0:
            return 0
        return (mark_e8 - self.avg_price_e8) * self.qty_e8 // SCALE

    def row(self) -> tuple[object, ...]:
        return (
            self.symbol,
            self.qty_e8,
            self.avg_price_e8,
            self.realized_pnl_e8,
            self.fees_e8,
            self.updated_us,
        )


def slippage_bps(side: str, fill_price_e8: int, arrival_mid_e8: int) -> float:
    """Cost of a fill against the arrival mid, in bps; positive = paid more than mid."""
    if arrival_mid_e8 <= 0:
        return 0.0
    diff = fill_price_e8 - arrival_mid_e8 if side == "buy" else arrival_mid_e8 - fill_price_e8
    return diff * 10_000.0 / arrival_mid_e8
