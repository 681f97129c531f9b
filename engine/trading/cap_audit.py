"""After-the-fact audit of the size caps from a DB: did any order or any exposure exceed its cap?

Role: an independent check of the order path's sizing (used by the crash harness and the
adversarial tests), computed only from the committed ``orders`` and ``fills`` rows — it shares no
code with the gates it checks.

Method: replay, in time order, every order's life — its whole quantity opens on its side when it
is created, each fill moves its quantity from open to filled, a terminal state releases what never
filled — and keep per symbol the long bound (filled + open buys) and the short bound (filled −
open sells). A bound only grows when an order on its side is created, so each bound is valued
there, at that order's arrival mid: the price the gates saw (they value at the higher of the
order's price and the mid). The other side is not revalued then: a later price move is not a
breach of a cap enforced when orders were sent. An order's notional is its quantity at its arrival
mid.

Invariant: read-only; figures are in quote units (USD), 0 when nothing exceeded its cap.
"""

from __future__ import annotations

from typing import Any

from engine.core.units import SCALE

_TERMINAL = ("filled", "canceled", "rejected", "expired", "never_sent")


def audit_caps(con: Any, max_order_usd: float, max_position_usd: float) -> dict[str, Any]:
    """Worst excess over MAX_ORDER_NOTIONAL_USD and over MAX_POSITION_NOTIONAL_USD (exposure)."""
    orders = con.execute(
        "SELECT client_order_id, symbol, side, qty_e8, filled_qty_e8, status, arrival_mid_e8, "
        "created_us, updated_us FROM orders"
    ).fetchall()
    fills = con.execute("SELECT client_order_id, qty_e8, ts_us FROM fills").fetchall()
    by_cid = {str(o[0]): o for o in orders}
    # (ts, kind, ...): opens first at equal times, then fills, then releases
    events: list[tuple[int, int, str, int]] = []
    worst_order = 0.0
    worst_order_id = ""
    for cid, _sym, _side, qty, filled, status, mid, created, updated in orders:
        notional = int(qty) * int(mid or 0) / SCALE / SCALE
        if notional > worst_order:
            worst_order, worst_order_id = notional, str(cid)
        events.append((int(created), 0, str(cid), int(qty)))
        if status in _TERMINAL and int(qty) > int(filled):
            events.append((int(updated), 2, str(cid), int(qty) - int(filled)))
    for cid, qty, ts in fills:
        if str(cid) in by_cid:
            events.append((int(ts), 1, str(cid), int(qty)))
    events.sort()
    filled_q: dict[str, int] = {}
    open_buy: dict[str, int] = {}
    open_sell: dict[str, int] = {}
    worst_pos = 0.0
    worst_pos_at = ""
    for _ts, kind, cid, q in events:
        o = by_cid[cid]
        sym, buy = str(o[1]), o[2] == "buy"
        book = open_buy if buy else open_sell
        if kind == 0:
            book[sym] = book.get(sym, 0) + q
            # the bound on this order's side is the one it raised
            side_bound = (
                filled_q.get(sym, 0) + open_buy.get(sym, 0)
                if buy
                else (open_sell.get(sym, 0) - filled_q.get(sym, 0))
            )
            usd = max(side_bound, 0) * int(o[6] or 0) / SCALE / SCALE
            if usd > worst_pos:
                worst_pos, worst_pos_at = usd, f"{sym} at {cid}"
        elif kind == 1:
            filled_q[sym] = filled_q.get(sym, 0) + (q if buy else -q)
            book[sym] = book.get(sym, 0) - q
        else:
            book[sym] = book.get(sym, 0) - q
    return {
        "max_order_notional_usd": round(worst_order, 2),
        "max_order_notional_over_cap": round(max(0.0, worst_order - max_order_usd), 2),
        "worst_order": worst_order_id,
        "max_exposure_usd": round(worst_pos, 2),
        "max_position_over_cap": round(max(0.0, worst_pos - max_position_usd), 2),
        "worst_exposure": worst_pos_at,
        "orders": len(orders),
        "fills": len(fills),
    }
