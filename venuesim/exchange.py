"""Matching engine, balances and order state of the venue simulator (no I/O here).

Role: validate and execute Binance spot order requests against the synthetic books, keep the
spot balances, and fill resting orders as the simulated market moves.

Invariants:
- Every mutation goes into a ``Change`` that the caller commits (store.py) before revealing it.
- Funds for a resting order are locked at placement (quote for BUY at the limit price, base for
  SELL) and released exactly once, when the order fills, cancels or expires; ``free`` and
  ``locked`` never go negative.
- A ``newClientOrderId`` is rejected as a duplicate only while an order with that id is open on
  the same symbol (Binance: "unique among open orders").
- Taker fills walk the book, one trade per level touched, at the level price; maker fills happen
  at the resting order's own price when the top of book crosses it, at most the top size per tick.
- Commission is 0.1 % of what the order receives, charged in that asset.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from venuesim.book import DepthBook
from venuesim.protocol import (
    INSUFFICIENT,
    Change,
    Order,
    Trade,
    VenueError,
    bad,
    exec_report,
)

FEE_BPS = 10  # 0.1 % maker and taker
MAX_QTY_E8 = 9_000_000 * 100_000_000
MAX_PRICE_E8 = 10_000_000 * 100_000_000
_CID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def _notional(price_e8: int, qty_e8: int) -> int:
    return price_e8 * qty_e8 // 100_000_000


def random_client_id() -> str:
    """A Binance-style generated client id (22 url-safe chars)."""
    return secrets.token_urlsafe(16)[:22].replace("-", "x").replace("_", "y")


def parse_e8(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw) * 100_000_000
    except InvalidOperation:
        raise bad(-1100, f"Illegal characters found in parameter '{name}'.") from None
    if not value.is_finite() or value < 0:
        raise bad(-1100, f"Illegal characters found in parameter '{name}'.")
    if value != value.to_integral_value():
        raise bad(-1111, f"Parameter '{name}' has too much precision.")
    return int(value)


def _mandatory(name: str) -> VenueError:
    return bad(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


class Market:
    """Static description of one symbol plus its live book."""

    def __init__(self, unified: str, book: DepthBook) -> None:
        self.unified = unified
        self.base, self.quote = unified.split("/")
        self.venue_id = self.base + self.quote
        self.spec = book.spec
        self.book = book


class Exchange:
    """In-memory venue state; ``alloc(kind)`` hands out durable order/trade ids."""

    def __init__(self, markets: list[Market], alloc: Callable[[str], int]) -> None:
        self.markets = {m.venue_id: m for m in markets}
        self._alloc = alloc
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.balances: dict[str, list[int]] = {}  # asset -> [free_e8, locked_e8]
        self._open: dict[int, Order] = {}
        self._open_cid: dict[tuple[str, str], int] = {}
        # injected slippage (``POST /admin/slippage``): MARKET fills this many bps worse than
        # the levels they take, rounded to the tick — a thin or moving market, on demand
        self.slip_bps = 0.0

    # --- state restore ---------------------------------------------------------------------

    def restore(self, orders: list[Order], trades: list[Trade], bal: dict[str, list[int]]) -> None:
        self.orders = {o.order_id: o for o in orders}
        self.trades = list(trades)
        self.balances = bal
        for o in orders:
            if o.is_open:
                self._open[o.order_id] = o
                self._open_cid[(o.symbol, o.client_order_id)] = o.order_id

    def market(self, params: dict[str, str]) -> Market:
        sym = params.get("symbol")
        if not sym:
            raise _mandatory("symbol")
        m = self.markets.get(sym.upper())
        if m is None:
            raise bad(-1121, "Invalid symbol.")
        return m

    def _bal(self, asset: str, ch: Change) -> list[int]:
        ch.assets.add(asset)
        return self.balances.setdefault(asset, [0, 0])

    # --- placing ---------------------------------------------------------------------------

    def place(self, p: dict[str, str], now_ms: int, ch: Change) -> tuple[Order, list[Trade]]:
        """Validate and execute a new order; raises ``VenueError`` before any mutation."""
        m = self.market(p)
        side = p.get("side", "").upper()
        otype = p.get("type", "").upper()
        if not side:
            raise _mandatory("side")
        if side not in ("BUY", "SELL"):
            raise bad(-1117, "Invalid side.")
        if not otype:
            raise _mandatory("type")
        if otype not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise bad(-1116, "Invalid orderType.")
        cid = p.get("newClientOrderId") or random_client_id()
        if not _CID_RE.match(cid):
            raise bad(-1100, "Illegal characters found in parameter 'newClientOrderId'.")
        if (m.venue_id, cid) in self._open_cid:
            raise bad(-2010, "Duplicate order sent.")
        qty = parse_e8(p, "quantity")
        quote_qty = parse_e8(p, "quoteOrderQty")
        price = parse_e8(p, "price")
        tif = (p.get("timeInForce") or "GTC").upper()
        if otype == "LIMIT" and not p.get("timeInForce"):
            raise _mandatory("timeInForce")
        if tif not in ("GTC", "IOC", "FOK"):
            raise bad(-1115, "Invalid timeInForce.")
        if otype == "MARKET":
            price = None
            if (qty is None) == (quote_qty is None):
                raise bad(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but not both.")
        else:
            if qty is None:
                raise _mandatory("quantity")
            if price is None:
                raise _mandatory("price")
            quote_qty = None
            self._price_filter(m, price)
        if qty is not None:
            self._lot_filter(m, qty)
        book = m.book
        if not book.ready:
            raise bad(-2010, "Market is closed.")
        levels = book.sorted_asks() if side == "BUY" else book.sorted_bids()
        est_price = price if price is not None else book.mid_e8
        notional = quote_qty if quote_qty is not None else _notional(est_price, qty or 0)
        if notional < m.spec.min_notional_e8:
            raise bad(-1013, "Filter failure: NOTIONAL")
        if otype == "LIMIT_MAKER" and _crosses(side, price or 0, book):
            raise bad(-2010, "Order would immediately match and take.")
        fills = [] if otype == "LIMIT_MAKER" else _walk(levels, side, price, qty, quote_qty, m)
        if otype == "MARKET" and self.slip_bps:
            fills = [(_slipped(px, side, self.slip_bps, m), q) for px, q in fills]
        filled = sum(q for _, q in fills)
        if otype == "MARKET" and quote_qty is not None:
            qty = filled  # Binance reports origQty = what the quote amount bought/sold
            if qty <= 0:
                raise bad(-1013, "Filter failure: LOT_SIZE")
        if qty is None:  # not an assert: python -O would drop it
            raise bad(-1013, "Filter failure: LOT_SIZE")
        # Funds: what the whole order may consume (a LIMIT buy locks qty x limit price).
        if side == "BUY":
            asset = m.quote
            need = _notional(price, qty) if price is not None else sum(_notional(*f) for f in fills)
        else:
            asset, need = m.base, qty
        bal = self.balances.get(asset, [0, 0])
        if bal[0] < need:
            raise bad(-2010, INSUFFICIENT)
        if tif == "FOK" and filled < qty:
            fills = []
        # --- from here on, the order exists ---
        o = Order(
            order_id=self._alloc("order"),
            symbol=m.venue_id,
            client_order_id=cid,
            side=side,
            type=otype,
            tif=tif,
            price_e8=price or 0,
            qty_e8=qty,
            quote_qty_e8=quote_qty or 0,
            time_ms=now_ms,
            update_ms=now_ms,
            locked_e8=need,
        )
        b = self._bal(asset, ch)
        b[0] -= need
        b[1] += need
        self.orders[o.order_id] = o
        ch.orders[o.order_id] = o
        ch.reports.append(exec_report(o, "NEW", now_ms))
        trades = [self._fill(o, m, fp, fq, False, now_ms, ch) for fp, fq in fills]
        if o.remaining_e8 > 0 and (otype == "MARKET" or tif in ("IOC", "FOK")):
            o.status = "EXPIRED"
            self._release(o, m, ch)
            ch.reports.append(exec_report(o, "EXPIRED", now_ms))
        elif o.is_open:
            self._open[o.order_id] = o
            self._open_cid[(o.symbol, cid)] = o.order_id
        return o, trades

    def _price_filter(self, m: Market, price: int) -> None:
        tick = m.spec.tick_size_e8
        if price < tick or price > MAX_PRICE_E8 or price % tick:
            raise bad(-1013, "Filter failure: PRICE_FILTER")

    def _lot_filter(self, m: Market, qty: int) -> None:
        lot = m.spec.lot_size_e8
        if qty < lot or qty > MAX_QTY_E8 or qty % lot:
            raise bad(-1013, "Filter failure: LOT_SIZE")

    # --- fills and funds -------------------------------------------------------------------

    def _fill(
        self, o: Order, m: Market, price: int, qty: int, maker: bool, now_ms: int, ch: Change
    ) -> Trade:
        quote = _notional(price, qty)
        if o.side == "BUY":
            # A LIMIT buy locked qty x limit price; release that share, pay the fill price.
            unlock = _notional(o.price_e8, qty) if o.price_e8 else quote
            unlock = min(unlock, o.locked_e8)
            qb = self._bal(m.quote, ch)
            qb[1] -= unlock
            qb[0] += unlock - quote
            fee, fee_asset = qty * FEE_BPS // 10_000, m.base
            self._bal(m.base, ch)[0] += qty - fee
        else:
            unlock = min(qty, o.locked_e8)
            bb = self._bal(m.base, ch)
            bb[1] -= unlock
            bb[0] += unlock - qty
            fee, fee_asset = quote * FEE_BPS // 10_000, m.quote
            self._bal(m.quote, ch)[0] += quote - fee
        o.locked_e8 -= unlock
        o.executed_e8 += qty
        o.cum_quote_e8 += quote
        o.update_ms = now_ms
        o.status = "FILLED" if o.remaining_e8 <= 0 else "PARTIALLY_FILLED"
        t = Trade(
            trade_id=self._alloc("trade"),
            order_id=o.order_id,
            symbol=o.symbol,
            client_order_id=o.client_order_id,
            side=o.side,
            price_e8=price,
            qty_e8=qty,
            quote_e8=quote,
            commission_e8=fee,
            commission_asset=fee_asset,
            time_ms=now_ms,
            is_maker=maker,
        )
        if o.status == "FILLED":
            self._release(o, m, ch)
        self.trades.append(t)
        ch.trades.append(t)
        ch.orders[o.order_id] = o
        ch.reports.append(exec_report(o, "TRADE", now_ms, trade=t))
        return t

    def _release(self, o: Order, m: Market, ch: Change) -> None:
        """Return the order's remaining locked funds and drop it from the open index."""
        if o.locked_e8:
            b = self._bal(m.quote if o.side == "BUY" else m.base, ch)
            b[1] -= o.locked_e8
            b[0] += o.locked_e8
            o.locked_e8 = 0
        self._open.pop(o.order_id, None)
        if self._open_cid.get((o.symbol, o.client_order_id)) == o.order_id:
            del self._open_cid[(o.symbol, o.client_order_id)]
        ch.orders[o.order_id] = o

    # --- cancel / query --------------------------------------------------------------------

    def find(self, p: dict[str, str], m: Market) -> Order | None:
        oid, cid = p.get("orderId"), p.get("origClientOrderId")
        if not oid and not cid:
            raise bad(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        if oid:
            try:
                o = self.orders.get(int(oid))
            except ValueError:
                raise bad(-1100, "Illegal characters found in parameter 'orderId'.") from None
            if o is not None and o.symbol == m.venue_id and (not cid or o.client_order_id == cid):
                return o
            return None
        open_id = self._open_cid.get((m.venue_id, cid or ""))
        if open_id is not None:
            return self.orders[open_id]
        # Closed orders: the most recent one with that client id.
        for o in reversed(self.orders.values()):
            if o.symbol == m.venue_id and o.client_order_id == cid:
                return o
        return None

    def query(self, p: dict[str, str]) -> Order:
        o = self.find(p, self.market(p))
        if o is None:
            raise bad(-2013, "Order does not exist.")
        return o

    def cancel(self, p: dict[str, str], now_ms: int, ch: Change) -> tuple[Order, str]:
        m = self.market(p)
        o = self.find(p, m)
        if o is None or not o.is_open:
            raise bad(-2011, "Unknown order sent.")
        cancel_id = p.get("newClientOrderId") or random_client_id()
        o.status = "CANCELED"
        o.update_ms = now_ms
        self._release(o, m, ch)
        ch.reports.append(
            exec_report(
                o, "CANCELED", now_ms, client_id=cancel_id, orig_client_id=o.client_order_id
            )
        )
        return o, cancel_id

    def open_orders(self, symbol: str | None) -> list[Order]:
        return [o for o in self._open.values() if symbol is None or o.symbol == symbol]

    def my_trades(self, p: dict[str, str]) -> list[Trade]:
        m = self.market(p)
        try:
            oid = int(p["orderId"]) if p.get("orderId") else None
            from_id = int(p["fromId"]) if p.get("fromId") else None
            start = int(p["startTime"]) if p.get("startTime") else None
            end = int(p["endTime"]) if p.get("endTime") else None
            limit = min(int(p.get("limit") or 500), 1000)
        except ValueError:
            raise bad(-1100, "Illegal characters found in a parameter.") from None
        out = [
            t
            for t in self.trades
            if t.symbol == m.venue_id
            and (oid is None or t.order_id == oid)
            and (from_id is None or t.trade_id >= from_id)
            and (start is None or t.time_ms >= start)
            and (end is None or t.time_ms <= end)
        ]
        # Binance: from fromId upward, otherwise the most recent ``limit``; always ascending.
        return out[:limit] if from_id is not None else out[-limit:]

    # --- market ticks ----------------------------------------------------------------------

    def match_resting(self, m: Market, now_ms: int, ch: Change) -> None:
        """Maker fills for resting orders the new top of book crosses."""
        book = m.book
        resting = [o for o in self._open.values() if o.symbol == m.venue_id and o.type != "MARKET"]
        if not resting:
            return
        buys = sorted(
            (o for o in resting if o.side == "BUY" and o.price_e8 >= book.best_ask_e8),
            key=lambda o: (-o.price_e8, o.order_id),
        )
        sells = sorted(
            (o for o in resting if o.side == "SELL" and o.price_e8 <= book.best_bid_e8),
            key=lambda o: (o.price_e8, o.order_id),
        )
        for group, avail in ((buys, book.ask_size_e8), (sells, book.bid_size_e8)):
            for o in group:
                qty = min(o.remaining_e8, avail)
                if qty <= 0:
                    break
                avail -= qty
                self._fill(o, m, o.price_e8, qty, True, now_ms, ch)


def _slipped(price: int, side: str, bps: float, m: Market) -> int:
    tick = max(m.spec.tick_size_e8, 1)
    moved = price * (1 + (bps if side == "BUY" else -bps) / 10_000)
    return max(tick, int(moved) // tick * tick)


def _crosses(side: str, price: int, book: DepthBook) -> bool:
    return price >= book.best_ask_e8 if side == "BUY" else price <= book.best_bid_e8


def _walk(
    levels: list[tuple[int, int]],
    side: str,
    limit: int | None,
    qty: int | None,
    quote_budget: int | None,
    m: Market,
) -> list[tuple[int, int]]:
    """Taker fills (price, qty) against ``levels`` (best first), bounded by price/qty/quote."""
    lot = m.spec.lot_size_e8
    remaining = qty
    budget = quote_budget
    out: list[tuple[int, int]] = []
    for price, size in levels:
        if limit is not None and (price > limit if side == "BUY" else price < limit):
            break
        take = size
        if remaining is not None:
            take = min(take, remaining)
        if budget is not None:
            take = min(take, budget * 100_000_000 // price // lot * lot)
        if take <= 0:
            break
        out.append((price, take))
        if remaining is not None:
            remaining -= take
        if budget is not None:
            budget -= _notional(price, take)
    return out
