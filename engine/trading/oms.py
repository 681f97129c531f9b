"""Order state machine and idempotent client order ids.

Invariants:
- A client order id is derived deterministically from its decision id (``<decision_id>.<leg>``),
  is at most 36 characters of ``[.A-Za-z0-9:/_-]`` and is never reused: decision ids carry a
  session number that is made durable (incremented and committed) before the first decision.
- Only legal transitions happen. A late or out-of-order venue report never moves an order back
  (``RANK``), a terminal order never changes, and ``filled_qty_e8`` never decreases.
- Fills are de-duplicated by venue trade id before they touch positions.
- ``unknown`` means the outcome of a send is uncertain; it is resolved only by asking the venue,
  never assumed failed and never re-sent.
"""

from __future__ import annotations

import re

PENDING = "pending"  # intent recorded (durable before send for external venues)
SUBMITTED = "submitted"  # handed to the venue, no answer yet
UNKNOWN = "unknown"  # send outcome uncertain -> query the venue by client id
ACCEPTED = "accepted"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELED = "canceled"
REJECTED = "rejected"
EXPIRED = "expired"
NEVER_SENT = "never_sent"  # venue has no trace after the grace period; never auto-resent

TERMINAL = frozenset({FILLED, CANCELED, REJECTED, EXPIRED, NEVER_SENT})
OPEN = frozenset({PENDING, SUBMITTED, UNKNOWN, ACCEPTED, PARTIALLY_FILLED})

_AFTER_SEND = frozenset({ACCEPTED, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED})
LEGAL: dict[str, frozenset[str]] = {
    PENDING: _AFTER_SEND | {SUBMITTED, UNKNOWN, NEVER_SENT},
    SUBMITTED: _AFTER_SEND | {UNKNOWN, NEVER_SENT},  # never_sent: the venue has no trace
    UNKNOWN: _AFTER_SEND | {NEVER_SENT},
    ACCEPTED: frozenset({PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED}),
    PARTIALLY_FILLED: frozenset({PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED}),
    FILLED: frozenset(),
    CANCELED: frozenset(),
    REJECTED: frozenset(),
    EXPIRED: frozenset(),
    NEVER_SENT: frozenset(),
}

CLIENT_ID_RE = re.compile(r"^[.A-Za-z0-9:/_-]{1,36}$")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def b36(n: int) -> str:
    if n < 0:
        raise ValueError(f"b36: negative value {n}")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


class DecisionIds:
    """``<prefix>-<session>-<seq>`` in base 36; unique because the session is durable."""

    __slots__ = ("_head", "seq")

    def __init__(self, prefix: str, session: int, seq: int = 0) -> None:
        self._head = f"{prefix}-{b36(session)}-"
        self.seq = seq

    def next(self) -> str:
        self.seq += 1
        return self._head + b36(self.seq)


def client_order_id(decision_id: str, leg: int = 0) -> str:
    cid = f"{decision_id}.{leg}"
    if not CLIENT_ID_RE.match(cid):
        raise ValueError(f"client order id {cid!r} violates ^[.A-Za-z0-9:/_-]{{1,36}}$")
    return cid


class Order:
    """The engine's mutable view of one order (owned by the engine loop; never shared)."""

    __slots__ = (
        "acked_us",
        "arrival_mid_e8",
        "client_order_id",
        "created_us",
        "decided_us",
        "decision_id",
        "filled_qty_e8",
        "limit_price_e8",
        "model_id",
        "notional_filled_e16",
        "order_type",
        "qty_e8",
        "reason",
        "routed",
        "send_by_us",
        "side",
        "status",
        "strategy",
        "submitted_us",
        "symbol",
        "trade_ids",
        "updated_us",
        "venue_order_id",
    )

    def __init__(
        self,
        client_order_id: str,
        decision_id: str,
        symbol: str,
        side: str,
        qty_e8: int,
        *,
        order_type: str = "market",
        limit_price_e8: int = 0,
        strategy: str = "default",
        model_id: str = "",
        routed: str = "",
        arrival_mid_e8: int = 0,
        created_us: int = 0,
        decided_us: int = 0,
        send_by_us: int = 0,
    ) -> None:
        self.client_order_id = client_order_id
        self.decision_id = decision_id
        self.venue_order_id = ""
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.qty_e8 = qty_e8
        self.limit_price_e8 = limit_price_e8
        self.filled_qty_e8 = 0
        self.notional_filled_e16 = 0
        self.status = PENDING
        self.reason = ""
        self.strategy = strategy
        self.model_id = model_id
        self.routed = routed
        self.arrival_mid_e8 = arrival_mid_e8
        self.created_us = created_us
        # not persisted: only a new order is ever sent (a loaded one is resolved by query)
        self.decided_us = decided_us
        self.send_by_us = send_by_us  # decision + TTL: a venue never sends it later than this
        self.submitted_us = 0
        self.acked_us = 0  # first venue acknowledgement (accept or fill): regulatory timestamp
        self.updated_us = created_us
        self.trade_ids: set[str] = set()

    @property
    def avg_price_e8(self) -> int:
        return self.notional_filled_e16 // self.filled_qty_e8 if self.filled_qty_e8 else 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def transition(self, new: str, ts_us: int, reason: str = "") -> bool:
        """Move to ``new`` if legal; returns False (and changes nothing) otherwise."""
        if new == self.status and new != PARTIALLY_FILLED:
            return False
        if new not in LEGAL[self.status]:
            return False
        self.status = new
        self.updated_us = ts_us
        if reason:
            self.reason = reason
        return True

    def apply_fill(self, trade_id: str, qty_e8: int, price_e8: int, ts_us: int) -> bool:
        """Add a fill once (by trade id); returns False for a duplicate or an overfill."""
        if trade_id in self.trade_ids or qty_e8 <= 0:
            return False
        if self.filled_qty_e8 + qty_e8 > self.qty_e8:
            return False  # a venue never fills more than asked: treat as an invariant breach
        self.trade_ids.add(trade_id)
        if not self.acked_us:
            self.acked_us = (
                ts_us  # a fill is an acknowledgement too (a market order may skip "new")
            )
        self.filled_qty_e8 += qty_e8
        self.notional_filled_e16 += qty_e8 * price_e8
        new = FILLED if self.filled_qty_e8 == self.qty_e8 else PARTIALLY_FILLED
        if not self.transition(new, ts_us):
            self.updated_us = ts_us  # fill after cancel (race): quantity still counts
        return True

    def row(self) -> tuple[object, ...]:
        return (
            self.client_order_id,
            self.decision_id,
            self.venue_order_id,
            self.symbol,
            self.side,
            self.order_type,
            self.qty_e8,
            self.limit_price_e8,
            self.filled_qty_e8,
            self.avg_price_e8,
            self.status,
            self.reason,
            self.strategy,
            self.model_id,
            self.routed,
            self.arrival_mid_e8,
            self.created_us,
            self.submitted_us,
            self.updated_us,
            self.acked_us,
        )

    @classmethod
    def from_row(cls, row: tuple[object, ...], trade_ids: set[str]) -> Order:
        (
            cid,
            did,
            void,
            sym,
            side,
            otype,
            qty,
            lpx,
            filled,
            avg,
            status,
            reason,
            strategy,
            mid_,
            routed,
            arrival,
            created,
            submitted,
            updated,
            *later,  # acked_us (migration 6)
        ) = row
        o = cls(
            str(cid),
            str(did),
            str(sym),
            str(side),
            int(qty),  # type: ignore[call-overload]
            order_type=str(otype),
            limit_price_e8=int(lpx),  # type: ignore[call-overload]
            strategy=str(strategy or ""),
            model_id=str(mid_ or ""),
            routed=str(routed or ""),
            arrival_mid_e8=int(arrival or 0),  # type: ignore[call-overload]
            created_us=int(created),  # type: ignore[call-overload]
        )
        o.venue_order_id = str(void or "")
        o.filled_qty_e8 = int(filled)  # type: ignore[call-overload]
        o.notional_filled_e16 = int(filled) * int(avg)  # type: ignore[call-overload]
        o.status = str(status)
        o.reason = str(reason or "")
        o.submitted_us = int(submitted or 0)  # type: ignore[call-overload]
        o.updated_us = int(updated)  # type: ignore[call-overload]
        o.acked_us = int(later[0] or 0) if later else 0  # type: ignore[call-overload]
        o.trade_ids = trade_ids
        return o


def reason_class(reason: str) -> str:
    """The `reason` label of ``orders_error_total`` for a rejected order's text."""
    low = reason.lower()
    for key, cls in (
        ("decision expired", "decision_expired"),  # our own refusal to send a stale order
        ("duplicate", "duplicate"),
        ("insufficient", "insufficient_funds"),
        ("filter", "invalid_order"),
        ("no market", "no_market"),
        ("timeout", "timeout"),
        ("rate", "rate_limit"),
    ):
        if key in low:
            return cls
    return "other"
