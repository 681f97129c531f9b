"""The venue port: what the OMS needs from any venue (paper, loopback ccxt, testnet, live).

Invariants:
- ``submit`` never raises for a venue-side refusal: every outcome comes back through the sink as a
  ``VenueOrderUpdate`` (accepted / rejected / unknown ...) or ``VenueFill``, so every profile emits
  the same event types.
- ``query_order`` answers "what do you know about this client id?" and is the only way an
  ``unknown`` outcome is resolved.
- ``throttle()`` says whether the venue is refusing our requests right now (a rate-limit back-off
  or an IP ban), with until-when; the ``venue_throttle`` gate reads it. ``limits(symbol)`` gives
  the venue's own amount step and minimums, read from the venue (ccxt markets) or the paper spec.
- An ``OrderRequest`` carries its decision time and a send-by deadline (decision + TTL): a venue
  that queues orders (back-off) never sends one after its deadline; it reports it ``rejected``
  (it certainly never left). A send that may have reached the venue is ``unknown``, never re-sent.
- ``in_process`` is True only for a venue whose state is persisted in the engine's own DB
  transaction (paper): then outbox and venue state are committed together. Otherwise the OMS makes
  the intent durable (fsynced journal) before ``submit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.core.events import VenueFill, VenueOrderUpdate


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


@dataclass(frozen=True, slots=True)
class VenueThrottle:
    """The venue refuses requests until ``until_us`` (engine clock): ``kind`` is ``rate_limit``
    (HTTP 429 / -1003: back off) or ``ban`` (HTTP 418: the IP is banned)."""

    kind: str
    until_us: int
    reason: str  # one line for the gates panel, e.g. "venue BANNED this IP (HTTP 418) until ..."


@dataclass(frozen=True, slots=True)
class VenueLimits:
    """The venue's trading rules for one symbol (e8): sizes are whole steps, at least
    ``min_qty_e8`` and worth at least ``min_notional_e8`` (0 = no such rule)."""

    step_e8: int
    min_qty_e8: int
    min_notional_e8: int


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
    decided_us: int  # when the decision was taken (engine clock); 0 = unknown
    send_by_us: int  # never sent after this (decision + TTL); 0 = no deadline


class VenuePort(Protocol):
    """What the engine needs from a venue (paper, ccxt): submit and cancel without blocking, limits
    and throttle state for the gates, and queries that resolve an order whose outcome is unknown."""

    name: str
    in_process: bool

    def bind(self, sink: VenueSink) -> None: ...

    def submit(self, order: OrderRequest) -> None: ...

    def cancel(self, client_order_id: str, symbol: str) -> None: ...

    def throttle(self) -> VenueThrottle | None: ...

    def limits(self, symbol: str) -> VenueLimits: ...

    async def query_order(self, client_order_id: str, symbol: str) -> VenueOrderUpdate | None: ...

    def on_quote(
        self, symbol: str, bid_e8: int, ask_e8: int, bid_sz_e8: int, ask_sz_e8: int, ts_ns: int
    ) -> None: ...

    # reconciliation (one code path for start-up, periodic runs and `cockpit reconcile`)
    async def fetch_open(self, symbol: str) -> list[VenueOrderView]: ...

    async def fetch_fills(self, symbol: str, since_ms: int | None) -> list[VenueFill]: ...

    async def fetch_balances(self) -> dict[str, int] | None: ...
