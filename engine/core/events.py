"""Immutable market data, decisions, commands, command results and venue reports.

There is no event bus. What happened leaves the engine by three channels, each with one reader:
the ``CommandResult`` returned to whoever sent a command (the TUI modal, the control socket, the
CLI); the rows the engine records (orders, fills, ``gate_events``, incidents, the audit chain) in
DuckDB; and the ``engine.snapshot.EngineSnapshot`` the cockpit pulls a few times a second.

Invariants:
- Commands are imperative (``SubmitOrder``), reports and results past tense or plain data; all
  are frozen msgspec Structs, so a value can be shared across threads without copying.
- Every time is an integer: ``ts_us`` (UTC µs) or ``ts_ns`` for market data.
- Amounts are integer e8 units (see ``engine.core.units``).
- A denial is data (a ``CommandResult(ok=False)`` and a ``gate_events`` row), never an exception.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Side = Literal["buy", "sell"]
Action = Literal["LONG", "SHORT", "NO_TRADE"]
Regime = Literal["TREND_UP", "TREND_DOWN", "RANGE", "HIGH_VOL"]
OrderType = Literal["market", "limit"]


class _Frozen(msgspec.Struct, frozen=True, kw_only=True):
    pass


# --- market data -----------------------------------------------------------------------------


class QuoteTick(_Frozen, frozen=True, gc=False):
    symbol: str
    bid_e8: int
    ask_e8: int
    bid_size_e8: int
    ask_size_e8: int
    ts_ns: int


class TradeTick(_Frozen, frozen=True, gc=False):
    symbol: str
    price_e8: int
    qty_e8: int
    aggressor: Side
    trade_id: int
    ts_ns: int


# --- models ----------------------------------------------------------------------------------


class Decision(_Frozen, frozen=True, gc=False):
    """One model verdict for one symbol. ``position_size`` is a 0..1 fraction of the risk budget."""

    decision_id: str
    ts_us: int
    symbol: str
    model_id: str
    action: Action
    prob: float
    expected_return: float
    regime: Regime
    regime_reason: str
    risk_allowed: bool
    position_size: float
    routed: str = "champion"  # champion | challenger | pinned | bench
    psi: float = 0.0


# --- commands (operator and strategy intent) -------------------------------------------------


class SubmitOrder(_Frozen, frozen=True):
    """``ts_us``: when the decision was taken (engine clock; 0 = now, e.g. an operator's order).
    The order's time-to-live (``oms.decision_ttl_ms``) runs from it: it is checked at the gates
    and again by the venue adapter at the moment it sends."""

    decision_id: str
    symbol: str
    side: Side
    qty_e8: int
    order_type: OrderType = "market"
    limit_price_e8: int = 0
    strategy: str = "default"
    model_id: str = ""
    actor: str = "engine"
    ts_us: int = 0
    reduce_only: bool = False


class CancelOrder(_Frozen, frozen=True):
    client_order_id: str
    actor: str = "operator"
    reason: str = ""


class CancelAll(_Frozen, frozen=True):
    symbol: str | None = None
    actor: str = "operator"
    reason: str = ""


class ArmKillSwitch(_Frozen, frozen=True):
    """Stop new orders: for the whole account, or only one ``symbol`` or one ``model``."""

    actor: str = "operator"
    reason: str = ""
    symbol: str = ""
    model: str = ""


class DisarmKillSwitch(_Frozen, frozen=True):
    """Lift the kill switch (the global one, or the given symbol / model scope)."""

    actor: str = "operator"
    reason: str = ""
    symbol: str = ""
    model: str = ""


class SetReduceOnly(_Frozen, frozen=True):
    """Reduce-only mode: only orders that wholly reduce exposure pass (market data flows on)."""

    on: bool
    actor: str = "operator"
    reason: str = ""


class GoLive(_Frozen, frozen=True):
    """Open live trading: every lock must agree (see ``trading.golive``); ``phrase`` is what the
    operator typed for ``LIVE_CONFIRM``."""

    phrase: str
    actor: str = "operator"


class RecordPreflight(_Frozen, frozen=True):
    """Keep a preflight the engine itself ran (``engine.runtime.preflight``); a green one opens
    the preflight gate for ``live.preflight_ttl_s``. Never built from a request's fields."""

    preflight_id: str
    ok: bool
    checks: tuple[tuple[str, str, str], ...]  # (name, ok|warn|fail, reason)
    actor: str = "operator"


class Flatten(_Frozen, frozen=True):
    """Cancel every open order and close every position at market (reduce-only orders)."""

    actor: str = "operator"
    reason: str = ""


class SetSafeMode(_Frozen, frozen=True):
    on: bool
    actor: str = "operator"
    reason: str = ""


class PinModel(_Frozen, frozen=True):
    model_id: str | None  # None unpins
    actor: str = "operator"


class SetChallenger(_Frozen, frozen=True):
    """Make ``model_id`` the challenger (a registered model, or a trained bundle ``ml_*`` whose
    files are in ``<data-dir>/models``: registered on the way)."""

    model_id: str
    actor: str = "operator"
    reason: str = ""


class PromoteChallenger(_Frozen, frozen=True):
    actor: str = "operator"
    reason: str = ""


class RollbackModel(_Frozen, frozen=True):
    actor: str = "operator"
    reason: str = ""


class SetCanaryShare(_Frozen, frozen=True):
    share: float
    actor: str = "operator"


class AcknowledgeOrphans(_Frozen, frozen=True):
    """The operator has seen the foreign venue orders on ``symbol``: unblock it for trading."""

    symbol: str
    actor: str = "operator"
    reason: str = ""


class RecordIncident(_Frozen, frozen=True):
    """An operator's incident-journal note; the engine attaches the context itself."""

    note: str
    actor: str = "operator"


class RecordConfigChange(_Frozen, frozen=True):
    """A profile key was changed on disk (``cockpit config set``): audited as ``config_changed``
    and noted in the incident journal. ``old`` / ``new`` are TOML literals (``1.0``, ``"x"``,
    ``["A/B"]``; ``old`` may say the key was unset); ``profile`` the file written, ``backup``
    the copy of what it held. ``apply``: the running engine also takes ``new`` at once — only
    for a key declared ``hot``, of the profile it runs, that no env var or option overrides
    (checked again by the engine; ``engine.trading.config_change``)."""

    key: str
    old: str
    new: str
    reason: str
    profile: str
    backup: str = ""
    actor: str = "operator"
    apply: bool = False


class ResetRisk(_Frozen, frozen=True):
    """Re-baseline the daily drawdown and restart today's order budgets (runbook "Reset budget")."""

    actor: str = "operator"
    reason: str = ""


class ResetBreaker(_Frozen, frozen=True):
    """Clear a tripped breaker (``error_rate``, ``slippage`` or ``all``); a fresh window starts."""

    name: str
    actor: str = "operator"
    reason: str = ""


Command = (
    SubmitOrder
    | CancelOrder
    | CancelAll
    | ArmKillSwitch
    | DisarmKillSwitch
    | SetReduceOnly
    | Flatten
    | GoLive
    | RecordPreflight
    | SetSafeMode
    | PinModel
    | SetChallenger
    | PromoteChallenger
    | RollbackModel
    | SetCanaryShare
    | ResetRisk
    | ResetBreaker
    | AcknowledgeOrphans
    | RecordIncident
    | RecordConfigChange
)


class CommandResult(_Frozen, frozen=True):
    """What the engine answers to a command: accepted or denied, with a one-line reason."""

    ok: bool
    message: str
    ref: str = ""


# --- venue reports (venue port -> engine) ----------------------------------------------------


class VenueOrderUpdate(_Frozen, frozen=True, gc=False):
    """Latest known state of one order at the venue (a snapshot, not a delta)."""

    client_order_id: str
    venue_order_id: str
    status: str  # see engine.oms.OrderStatus values
    filled_qty_e8: int
    ts_us: int
    reason: str = ""


class VenueFill(_Frozen, frozen=True, gc=False):
    client_order_id: str
    venue_order_id: str
    trade_id: str
    symbol: str
    side: Side
    qty_e8: int
    price_e8: int
    fee_e8: int
    liquidity: Literal["maker", "taker"]
    ts_us: int
    fee_base_e8: int = 0  # commission taken in the base asset (spot buys), already in fee_e8


# --- results ------------------------------------------------------------------------------


class ReconDetail(_Frozen, frozen=True):
    """One finding and what the reconciler did about it."""

    type: str  # missing_in_db, missing_in_broker, status_mismatch, missing_fill, orphan, ...
    symbol: str
    client_order_id: str
    action: str
    detail: str = ""


class ReconReport(_Frozen, frozen=True):
    """One reconciliation run: what was compared, what differed, what was done, what alerts."""

    ts_us: int
    source: str  # startup | periodic | manual
    venue: str
    duration_ms: float
    ok: bool  # no alert and no standing finding
    mismatches: dict[str, int]  # count per class (every class present)
    resolved: int
    alerts: list[str]
    standing: list[str]
    details: list[ReconDetail]
