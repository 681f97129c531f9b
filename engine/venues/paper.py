"""In-process paper venue: matches orders against the live (or simulated) top of book.

Model:
- Depth: level ``i`` sits ``i`` price steps behind the top (step = max(tick, half spread)) with
  size ``top_size * (1 + 0.5 i)``; a market order walks it (one fill per level, taker fee) and any
  remainder beyond ``depth_levels`` expires (IOC semantics) — hence partial fills and slippage.
- Limit orders: the marketable part fills as taker on arrival, the rest rests; a resting order
  fills as maker at its limit when the opposite top crosses it, at most the top size per quote.
- Latency: each order arrives after a sampled delay (mean ± jitter, seeded). With a scheduler (real
  time) arrival really is deferred, so the book may have moved; without one (replay) the order is
  matched at once and the latency is only reported.
- Duplicate client ids are refused only while the first order is open (Binance semantics).
- Trading rules are the symbol's spec (``engine.sim.marketsim.symbol_spec``): sizes off the lot step
  are refused (``LOT_SIZE``) and so is an order worth less than the minimum notional
  (``NOTIONAL``), as Binance does; ``limits()`` exposes them to the gates. Never throttled.

Invariants: a venue never fills more than an order's quantity; every state change marks the order
dirty so the engine persists the venue's truth in the same transaction as its own rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from engine.core.events import VenueFill, VenueOrderUpdate
from engine.core.units import SCALE
from engine.sim.marketsim import symbol_spec
from engine.trading.venue_port import (
    OrderRequest,
    VenueLimits,
    VenueOrderView,
    VenueSink,
    VenueThrottle,
)
from engine.trading.windows import forget_oldest

_OPEN = ("accepted", "partially_filled")


class PaperOrder:
    """One resting order of the paper venue (mutable, owned by `PaperVenue`)."""

    __slots__ = (
        "client_order_id",
        "created_us",
        "filled_qty_e8",
        "fills",
        "limit_price_e8",
        "order_type",
        "qty_e8",
        "side",
        "status",
        "symbol",
        "updated_us",
        "venue_order_id",
    )

    def __init__(self, req: OrderRequest, venue_order_id: int, ts_us: int) -> None:
        self.client_order_id = req.client_order_id
        self.venue_order_id = venue_order_id
        self.symbol = req.symbol
        self.side = req.side
        self.order_type = req.order_type
        self.qty_e8 = req.qty_e8
        self.limit_price_e8 = req.limit_price_e8
        self.filled_qty_e8 = 0
        self.status = "accepted"
        self.created_us = ts_us
        self.updated_us = ts_us
        self.fills = 0

    def row(self) -> tuple[object, ...]:
        return (
            self.client_order_id,
            self.venue_order_id,
            self.symbol,
            self.side,
            self.order_type,
            self.qty_e8,
            self.limit_price_e8,
            self.filled_qty_e8,
            self.status,
            self.created_us,
            self.updated_us,
        )


def _view(o: PaperOrder) -> VenueOrderView:
    return VenueOrderView(
        o.client_order_id,
        str(o.venue_order_id),
        o.symbol,
        o.side,
        o.order_type,
        o.status,
        o.qty_e8,
        o.filled_qty_e8,
        o.limit_price_e8,
    )


class _Book:
    __slots__ = ("ask", "ask_sz", "bid", "bid_sz", "resting", "ts_ns")

    def __init__(self) -> None:
        self.bid = self.ask = self.bid_sz = self.ask_sz = self.ts_ns = 0
        self.resting: list[PaperOrder] = []


class PaperVenue:
    """The in-process paper venue: fills against the simulated market with fees, slippage and the
    venue's amount step and minimums, and reports through the same `VenueOrderUpdate` /
    `VenueFill` types as a real venue, so paper and testnet exercise the same engine code."""

    name = "paper"
    in_process = True

    def __init__(
        self,
        *,
        now_us: Callable[[], int],
        tick_size_e8: dict[str, int],
        maker_fee_bps: float = 1.0,
        taker_fee_bps: float = 7.5,
        latency_ms_mean: float = 15.0,
        latency_ms_jitter: float = 5.0,
        depth_levels: int = 10,
        seed: int = 0,
        call_later: Callable[[float, Callable[..., Any], Any], Any] | None = None,
    ) -> None:
        self._now_us = now_us
        self._tick = tick_size_e8
        self._maker_fee_cbps = round(maker_fee_bps * 100)
        self._taker_fee_cbps = round(taker_fee_bps * 100)
        self._lat_mean = latency_ms_mean
        self._lat_jit = latency_ms_jitter
        self._levels = depth_levels
        self._rng = random.Random(seed)  # noqa: S311 - jitter / simulation, not a secret
        self.call_later = call_later
        self._sink: VenueSink | None = None
        self._books: dict[str, _Book] = {}
        self.orders: dict[str, PaperOrder] = {}
        self.dirty: dict[str, PaperOrder] = {}
        self.max_closed = 5_000  # closed orders kept in memory (queries of recent ones)
        self._next_id = 1
        self.last_latency_ms = 0.0
        self._limits: dict[str, VenueLimits] = {}

    # --- port ------------------------------------------------------------------------------

    def bind(self, sink: VenueSink) -> None:
        self._sink = sink

    def load(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Restore the venue's truth from the DB (resting orders survive a restart)."""
        for row in rows:
            cid, void, sym, side, otype, qty, lpx, filled, status, created, updated = row
            o = PaperOrder.__new__(PaperOrder)
            o.client_order_id, o.venue_order_id, o.symbol, o.side = cid, int(void), sym, side
            o.order_type, o.qty_e8, o.limit_price_e8 = otype, int(qty), int(lpx)
            o.filled_qty_e8, o.status, o.created_us, o.updated_us = (
                int(filled),
                status,
                created,
                updated,
            )
            o.fills = 0
            self.orders[cid] = o
            self._next_id = max(self._next_id, o.venue_order_id + 1)
            if status in _OPEN:
                self._book(sym).resting.append(o)

    def submit(self, req: OrderRequest) -> None:
        lat = max(0.0, self._rng.gauss(self._lat_mean, self._lat_jit)) if self._lat_mean else 0.0
        self.last_latency_ms = lat
        if self.call_later is not None and lat > 0:
            self.call_later(lat / 1000.0, self._arrive, req)
        else:
            # replay: match now, but stamp the venue's events with the simulated arrival time
            self._arrive(req, int(lat * 1000))

    def throttle(self) -> VenueThrottle | None:
        return None  # an in-process venue has no rate limits

    def limits(self, symbol: str) -> VenueLimits:
        lim = self._limits.get(symbol)
        if lim is None:
            sp = symbol_spec(symbol)
            lim = self._limits[symbol] = VenueLimits(
                sp.lot_size_e8, sp.lot_size_e8, sp.min_notional_e8
            )
        return lim

    def cancel(self, client_order_id: str, symbol: str) -> None:
        o = self.orders.get(client_order_id)
        sink = self._sink
        if sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("sink is not set: used before start")
        if o is None or o.status not in _OPEN:
            # Binance -2011 "Unknown order sent.": report the current truth, if any
            if o is not None:
                sink.on_venue_update(self._update(o))
            return
        o.status = "canceled"
        o.updated_us = self._now_us()
        self._book(o.symbol).resting.remove(o)
        self.dirty[o.client_order_id] = o
        sink.on_venue_update(self._update(o))

    async def query_order(self, client_order_id: str, symbol: str) -> VenueOrderUpdate | None:
        o = self.orders.get(client_order_id)
        return None if o is None else self._update(o)

    async def fetch_open(self, symbol: str) -> list[VenueOrderView]:
        b = self._books.get(symbol)  # resting = exactly the open orders (market orders never rest)
        return [_view(o) for o in b.resting] if b is not None else []

    async def fetch_fills(self, symbol: str, since_ms: int | None) -> list[VenueFill]:
        return []  # fills are committed atomically with the engine's own rows: nothing to fetch

    async def fetch_balances(self) -> dict[str, int] | None:
        return None  # the paper account is the engine's own ledger

    def open_orders(self) -> list[PaperOrder]:
        return [o for b in self._books.values() for o in b.resting]

    def drain_dirty(self) -> list[tuple[object, ...]]:
        """Rows for the writer; then closed orders beyond ``max_closed`` are forgotten (bounded
        memory: their rows are in this batch or an earlier one, and open ones always stay)."""
        rows = [o.row() for o in self.dirty.values()]
        self.dirty.clear()
        if len(self.orders) > self.max_closed + sum(len(b.resting) for b in self._books.values()):
            forget_oldest(self.orders, self.max_closed * 4 // 5, lambda _, o: o.status not in _OPEN)
        return rows

    # --- market data -----------------------------------------------------------------------

    def on_quote(
        self, symbol: str, bid_e8: int, ask_e8: int, bid_sz_e8: int, ask_sz_e8: int, ts_ns: int
    ) -> None:
        b = self._books.get(symbol)
        if b is None:
            b = self._book(symbol)
        b.bid, b.ask, b.bid_sz, b.ask_sz, b.ts_ns = bid_e8, ask_e8, bid_sz_e8, ask_sz_e8, ts_ns
        if b.resting:
            self._match_resting(b)

    # --- matching --------------------------------------------------------------------------

    def _book(self, symbol: str) -> _Book:
        b = self._books.get(symbol)
        if b is None:
            b = self._books[symbol] = _Book()
        return b

    def _update(self, o: PaperOrder, reason: str = "") -> VenueOrderUpdate:
        return VenueOrderUpdate(
            client_order_id=o.client_order_id,
            venue_order_id=str(o.venue_order_id),
            status=o.status,
            filled_qty_e8=o.filled_qty_e8,
            ts_us=o.updated_us,
            reason=reason,
        )

    def _reject(self, req: OrderRequest, reason: str) -> None:
        if self._sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("self._sink is not set: used before start")
        self._sink.on_venue_update(
            VenueOrderUpdate(
                client_order_id=req.client_order_id,
                venue_order_id="",
                status="rejected",
                filled_qty_e8=0,
                ts_us=self._now_us(),
                reason=reason,
            )
        )

    def _arrive(self, req: OrderRequest, delay_us: int = 0) -> None:
        sink = self._sink
        if sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("sink is not set: used before start")
        prior = self.orders.get(req.client_order_id)
        if prior is not None and prior.status in _OPEN:
            self._reject(req, "-2010 Duplicate order sent.")
            return
        b = self._books.get(req.symbol)
        if b is None or b.bid <= 0 or b.ask <= 0:
            self._reject(req, f"no market for {req.symbol}")
            return
        if req.qty_e8 <= 0 or (req.order_type == "limit" and req.limit_price_e8 <= 0):
            self._reject(req, "-1013 Filter failure: LOT_SIZE / PRICE_FILTER")
            return
        lim = self.limits(req.symbol)
        if req.qty_e8 < lim.min_qty_e8 or req.qty_e8 % max(lim.step_e8, 1):
            self._reject(req, "-1013 Filter failure: LOT_SIZE")
            return
        ref = req.limit_price_e8 if req.order_type == "limit" else (b.bid + b.ask) // 2
        if req.qty_e8 * ref // SCALE < lim.min_notional_e8:
            self._reject(req, "-1013 Filter failure: NOTIONAL")
            return
        now = self._now_us() + delay_us
        o = PaperOrder(req, self._next_id, now)
        self._next_id += 1
        self.orders[o.client_order_id] = o
        self.dirty[o.client_order_id] = o
        sink.on_venue_update(self._update(o))  # ack first, as a venue does
        self._take(o, b, now)
        if o.status in _OPEN:
            if o.order_type == "market":
                o.status = "expired"  # IOC remainder beyond the modelled depth
                o.updated_us = now
                sink.on_venue_update(self._update(o, "market remainder beyond depth expired"))
            else:
                b.resting.append(o)

    def _take(self, o: PaperOrder, b: _Book, now: int) -> None:
        """Walk the modelled depth as a taker, within the limit price if any."""
        buy = o.side == "buy"
        top, top_sz = (b.ask, b.ask_sz) if buy else (b.bid, b.bid_sz)
        step = max(self._tick.get(o.symbol, 1), (b.ask - b.bid) // 2)
        limit = o.limit_price_e8 if o.order_type == "limit" else 0
        for level in range(self._levels):
            remaining = o.qty_e8 - o.filled_qty_e8
            if remaining <= 0:
                break
            price = top + level * step if buy else top - level * step
            if limit and ((buy and price > limit) or (not buy and price < limit)):
                break
            size = top_sz + top_sz * level // 2
            self._fill(o, min(remaining, size), price, "taker", now)

    def _match_resting(self, b: _Book) -> None:
        for o in list(b.resting):
            buy = o.side == "buy"
            if buy and b.ask <= o.limit_price_e8:
                avail = b.ask_sz
            elif not buy and b.bid >= o.limit_price_e8:
                avail = b.bid_sz
            else:
                continue
            self._fill(
                o,
                min(o.qty_e8 - o.filled_qty_e8, avail),
                o.limit_price_e8,
                "maker",
                b.ts_ns // 1000,
            )
            if o.status not in _OPEN:
                b.resting.remove(o)

    def _fill(self, o: PaperOrder, qty: int, price: int, liquidity: str, now: int) -> None:
        if qty <= 0:
            return
        sink = self._sink
        if sink is None:  # not an assert: python -O would drop it
            raise RuntimeError("sink is not set: used before start")
        o.filled_qty_e8 += qty
        o.fills += 1
        o.status = "filled" if o.filled_qty_e8 >= o.qty_e8 else "partially_filled"
        o.updated_us = now
        # fee in integer hundredths of a bp, so reported fees are exact
        fee_cbps = self._taker_fee_cbps if liquidity == "taker" else self._maker_fee_cbps
        fee = price * qty // SCALE * fee_cbps // 1_000_000
        self.dirty[o.client_order_id] = o
        sink.on_venue_fill(
            VenueFill(
                client_order_id=o.client_order_id,
                venue_order_id=str(o.venue_order_id),
                # unique per order across restarts: cumulative filled qty only grows
                trade_id=f"P{o.venue_order_id}-{o.filled_qty_e8}",
                symbol=o.symbol,
                side=o.side,  # type: ignore[arg-type]
                qty_e8=qty,
                price_e8=price,
                fee_e8=fee,
                liquidity=liquidity,  # type: ignore[arg-type]
                ts_us=now,
            )
        )
