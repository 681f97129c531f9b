"""Positions, PnL and transaction-cost analysis, in exact integer e8 units.

Invariants:
- A position's quantity is exactly the signed sum of the fills applied to it (netting).
- Realised PnL and fees are integers (e8 quote units); no float ever enters reported money.
- Average entry price follows average-cost accounting: increasing a position re-averages, reducing
  realises PnL at the old average, flipping realises the closed part and opens the rest at the fill.
"""

from __future__ import annotations

from engine.core.units import SCALE


def avg_cost_step(old: int, avg: int, signed: int, price_e8: int) -> tuple[int, int, int]:
    """One fill under average-cost accounting: (new quantity, new average, realised PnL), all e8.

    The one implementation: the engine's ``Position`` and the daily report's replay both call it,
    so a report cannot disagree with the engine by a rounding."""
    if old == 0 or (old > 0) == (signed > 0):
        new = old + signed
        # re-average: (|old|*avg + |signed|*px) / |new|
        return new, (abs(old) * avg + abs(signed) * price_e8) // abs(new), 0
    closed = min(abs(old), abs(signed))
    realized = (price_e8 - avg) * closed * (1 if old > 0 else -1) // SCALE
    new = old + signed
    if new == 0:
        return 0, 0, realized
    if (new > 0) != (old > 0):
        return new, price_e8, realized  # flipped: the remainder opened at this fill
    return new, avg, realized


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
        self.qty_e8, self.avg_price_e8, realized = avg_cost_step(
            self.qty_e8, self.avg_price_e8, signed, price_e8
        )
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
