"""Go/No-Go arithmetic: daily PnL from fills, the annualised Sharpe, and its refusals."""

from __future__ import annotations

import math

from engine.core.units import to_e8
from engine.runtime.gonogo import DAY_US, daily_pnl, sharpe


def fill(day: int, side: str, qty: str, price: float, fee: float = 0.0):
    return ("BTC/USDT", side, to_e8(qty), to_e8(price), to_e8(fee), day * DAY_US + 1)


def test_daily_pnl_when_round_trips_on_two_days_then_net_realised_per_day() -> None:
    rows = [
        fill(10, "buy", "1", 100.0),
        fill(10, "sell", "1", 110.0, fee=1.0),  # +10 - 1
        fill(11, "buy", "2", 100.0, fee=0.5),
        fill(11, "sell", "2", 95.0),  # -10 - 0.5
    ]
    assert daily_pnl(rows, 0) == {10: 9.0, 11: -10.5}
    assert daily_pnl(rows, 11 * DAY_US) == {11: -10.5}  # the window, not all history


def test_sharpe_when_under_two_days_then_none_and_when_steady_gains_then_high() -> None:
    assert sharpe([5.0]) is None
    assert sharpe([]) is None
    s = sharpe([1.0, 1.2, 0.9, 1.1])
    assert s is not None
    assert s > 10
    assert sharpe([1.0, -1.0, 1.0, -1.0]) == 0.0
    assert sharpe([2.0, 2.0]) == math.inf
