"""Market blocks by cause: a book resync never lifts an orphan block, an acknowledged orphan
never lifts a gap still resyncing, and the gate-facing dict always shows what still holds."""

from __future__ import annotations

from engine.trading import blocks
from engine.trading.blocks import MarketBlocks


def test_blocks_when_resync_arrives_on_orphan_blocked_symbol_then_still_blocked() -> None:
    b = MarketBlocks()
    b.block("ETH/USDT", blocks.ORPHAN, "ETH/USDT: orphan venue order x")
    b.block("ETH/USDT", blocks.BOOK, "ETH/USDT: order book gap, resyncing")
    assert "orphan" in b["ETH/USDT"]
    assert "gap" in b["ETH/USDT"]
    assert b.unblock("ETH/USDT", blocks.BOOK)  # the resync lifts its own cause only
    assert b["ETH/USDT"] == "ETH/USDT: orphan venue order x"
    assert not b.unblock("ETH/USDT", blocks.BOOK)  # a second resync: nothing of its own left
    assert "ETH/USDT" in b
    assert b.unblock("ETH/USDT", blocks.ORPHAN)
    assert "ETH/USDT" not in b
    assert b.get("ETH/USDT") is None
    assert b.causes("ETH/USDT") == {}


def test_blocks_when_orphan_acknowledged_during_gap_then_gap_keeps_symbol_blocked() -> None:
    b = MarketBlocks()
    b.block("BTC/USDT", blocks.BOOK, "gap")
    b.block("BTC/USDT", blocks.ORPHAN, "orphan")
    b.unblock("BTC/USDT", blocks.ORPHAN)
    assert b["BTC/USDT"] == "gap"


def test_blocks_when_written_or_deleted_directly_then_other_cause_and_full_lift() -> None:
    b = MarketBlocks()
    b["SOL/USDT"] = "operator hold"
    assert b.causes("SOL/USDT") == {blocks.OTHER: "operator hold"}
    b.block("SOL/USDT", blocks.BOOK, "gap")
    del b["SOL/USDT"]  # an explicit override lifts every cause
    assert "SOL/USDT" not in b
    assert b.causes("SOL/USDT") == {}
