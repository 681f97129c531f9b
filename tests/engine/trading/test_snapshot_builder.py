"""The snapshot builder reads the engine and never writes it.

Under the cockpit a snapshot is built 4 times a second; headless, never. If building one changed
engine state (it once re-marked equity, which the drawdown gate reads), the same market would give
the gates different inputs with and without a screen.
"""

from __future__ import annotations

from engine.core.units import SCALE
from engine.trading.snapshot_builder import SnapshotBuilder
from tests.conftest import feed_all
from tests.engine.trading.test_order_path import submit


def test_build_when_market_moved_since_last_mark_then_engine_equity_untouched(make_booted) -> None:
    b = make_booted()
    e = b.engine
    feed_all(e)
    assert submit(b, "BTC/USDT", "buy", "0.02").ok
    e.refresh()  # the engine's own once-a-second mark
    marked = e.risk.equity_e8
    feed_all(e, {"BTC/USDT": 60000.0, "ETH/USDT": 3000.0, "SOL/USDT": 140.0})  # BTC -5,000
    state = (
        e.risk.equity_e8,
        e.risk.drawdown_pct(),
        e.portfolio.realized_e8,
        e.portfolio.fees_e8,
        e.market.ticks,
    )
    snap = SnapshotBuilder().build(e)
    assert (
        e.risk.equity_e8,
        e.risk.drawdown_pct(),
        e.portfolio.realized_e8,
        e.portfolio.fees_e8,
        e.market.ticks,
    ) == state
    assert e.risk.equity_e8 == marked  # not re-marked by the screen
    # the snapshot itself shows the current marks: 0.02 BTC down about 100 from the last mark
    assert abs((marked / SCALE - snap.equity) - 100.0) < 5.0
