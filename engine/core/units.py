"""Fixed-point units for money and quantities.

Invariant: every price, quantity, fee and PnL figure inside the engine is a Python ``int`` scaled by
``SCALE`` (1e8), suffixed ``_e8`` in names. Floats are used only for signals (features, model
probabilities), never for amounts that are reported or reconciled, so sums of fills are exact.
"""

from __future__ import annotations

from decimal import Decimal

SCALE = 100_000_000
_DSCALE = Decimal(SCALE)


def to_e8(value: float | str | Decimal) -> int:
    """Convert a human value (``"0.01"``, ``0.01``) to e8 units, rounding half-even."""
    return int((Decimal(str(value)) * _DSCALE).to_integral_value())


def from_e8(value_e8: int) -> Decimal:
    """Exact decimal view of an e8 amount, for reports and screens."""
    return Decimal(value_e8) / _DSCALE


def notional_e8(price_e8: int, qty_e8: int) -> int:
    """Quote notional (e8) of ``qty`` at ``price``; truncates toward zero below 1e-8 quote."""
    return price_e8 * qty_e8 // SCALE


def bps(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` in basis points; 0 when the denominator is 0."""
    return numerator / denominator * 10_000.0 if denominator else 0.0
