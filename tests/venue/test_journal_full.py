"""The intent journal on a full disk (a real tmpfs under the data dir), real engine → real ccxt →
loopback venue: an intent that cannot be made durable never leaves, and trading halts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.core.events import SubmitOrder
from engine.core.units import to_e8
from engine.trading import oms
from tests.conftest import fill_disk


async def test_order_when_intent_journal_cannot_be_written_then_never_sent_and_halted(
    rig_factory, tmpfs: Callable[..., Path], tmp_path: Path
) -> None:
    journal_fs = tmpfs("64k", at=tmp_path / "data" / "journal")
    rig = await rig_factory()
    e = rig.engine
    await rig.quotes_ready()
    first = e.submit(SubmitOrder(e.ids.next(), "BTC/USDT", "buy", to_e8("0.001")))
    assert first.ok, first.message  # the journal works: the order goes out
    await rig.settle()
    rig.booted.flush()  # the DB holds the intent: the journal is cut to empty
    assert (journal_fs / "intents.bin").stat().st_size == 0
    fill_disk(journal_fs)  # the next intent needs a block the disk no longer has
    res = e.submit(SubmitOrder(e.ids.next(), "BTC/USDT", "buy", to_e8("0.001")))  # was: OSError
    assert not res.ok
    assert "intent journal write failed" in res.message
    o = e.order_cache.orders[res.ref]
    assert o.status == oms.NEVER_SENT  # certain: it never left
    assert res.ref not in e.order_cache.open_orders
    assert "intent journal" in e.halted_reason  # fail closed: the next one would fail too
    assert e.risk.kill_switch
    assert not e.submit(SubmitOrder(e.ids.next(), "BTC/USDT", "sell", to_e8("0.001"))).ok
    state = await rig.venue_state()
    assert [x for x in state["orders"] if x.get("clientOrderId") == res.ref] == []
    assert len([x for x in state["orders"] if x.get("clientOrderId") == first.ref]) == 1
