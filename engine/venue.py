"""The venue port: what the OMS needs from any venue (paper, loopback ccxt, testnet, live).

Invariants:
- ``submit`` never raises for a venue-side refusal: every outcome comes back through the sink as a
  ``VenueOrderUpdate`` (accepted / rejected / unknown ...) or ``VenueFill``, so every profile emits
  the same event types.
- ``query_order`` answers "what do you know about this client id?" and is the only way an
  ``unknown`` outcome is resolved.
- ``in_process`` is True only for a venue whose state is persisted in the engine's own DB
  transaction (paper): then outbox and venue state are committed together. Otherwise the OMS makes
  the intent durable (fsynced journal) before ``submit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.events import VenueFill, VenueOrderUpdate


@dataclass(frozen=True, slots=True)
class VenueOrderView:
    """What the venue says about one order, for reconciliation (amounts e8)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: str
    order_type: str
    status: str
    qty_e8: int
    filled_qty_e8: int
    price_e8: int


class VenueSink(Protocol):
    def on_venue_update(self, update: VenueOrderUpdate) -> None: ...

    def on_venue_fill(self, fill: VenueFill) -> None: ...


class OrderRequest(Protocol):
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    qty_e8: int
    limit_price_e8: int


class VenuePort(Protocol):
    name: str
    in_process: bool

    def bind(self, sink: VenueSink) -> None: ...

    def submit(self, order: OrderRequest) -> None: ...

    def cancel(self, client_order_id: str, symbol: str) -> None: ...

    async def query_order(self, client_order_id: str, symbol: str) -> VenueOrderUpdate | None: ...

    def on_quote(
        self, symbol: str, bid_e8: int, ask_e8: int, bid_sz_e8: int, ask_sz_e8: int, ts_ns: int
    ) -> None: ...

    # reconciliation (one code path for start-up, periodic runs and `cockpit reconcile`)
    async def fetch_open(self, symbol: str) -> list[VenueOrderView]: ...

    async def fetch_fills(self, symbol: str, since_ms: int | None) -> list[VenueFill]: ...

    async def fetch_balances(self) -> dict[str, int] | None: ...
