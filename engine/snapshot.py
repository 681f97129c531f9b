"""Immutable engine snapshots for screens: built on the engine thread, read by the UI thread.

Invariants:
- A snapshot is frozen (msgspec Structs, tuples): the engine publishes it by reference swap and
  never touches it again, so the UI reads it without locks.
- Built at most a few times a second (default 4 Hz), never per tick; bounded sizes (last N orders,
  fills, alerts, audit rows) so building one costs well under a millisecond.
- Money and quantities are pre-formatted here as floats for display only; reports use e8 ints.
- Text that comes from outside (venue errors, symbols) is carried as plain str; widgets must
  render it literally (``rich.text.Text``), never as markup.
"""

from __future__ import annotations

import msgspec


class _S(msgspec.Struct, frozen=True, kw_only=True):
    pass


class GateView(_S, frozen=True):
    name: str
    active: bool
    reason: str
    since_us: int
    denials: int


class BudgetView(_S, frozen=True):
    scope: str  # account | symbol | strategy
    key: str
    used: int
    limit: int


class FeedView(_S, frozen=True):
    name: str
    connected: bool
    uptime_s: float
    reconnects: int
    staleness_ms: float


class SymbolView(_S, frozen=True):
    symbol: str
    bid: float
    ask: float
    position: float
    avg_price: float
    realized: float
    unrealized: float
    staleness_ms: float
    error_rate: float
    p95_place_ms: float
    slippage_p95_bps: float
    fill_ratio: float


class OrderView(_S, frozen=True):
    client_order_id: str
    symbol: str
    side: str
    qty: float
    filled: float
    status: str
    reason: str
    updated_us: int


class FillView(_S, frozen=True):
    trade_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    slippage_bps: float
    ts_us: int


class ModelView(_S, frozen=True):
    champion: str
    challenger: str
    pinned: str | None
    canary_share: float
    psi: tuple[tuple[str, float], ...]
    canary_trades: int
    total_trades: int


class ReconView(_S, frozen=True):
    ts_us: int
    source: str
    duration_ms: float
    ok: bool
    mismatches: tuple[tuple[str, int], ...]
    standing: tuple[str, ...] = ()  # unresolved findings (orphans) listed by every run


class AuditView(_S, frozen=True):
    seq: int
    ts_us: int
    actor: str
    kind: str


class IncidentView(_S, frozen=True):
    ts_us: int
    actor: str
    note: str
    gates: str  # active gates when written, comma-separated, "-" when none
    flags: str  # kill_switch / safe_mode / halted when written, "-" when none


class StopsView(_S, frozen=True):
    """Kill-switch scopes, reduce-only, tripped breakers, the live guard's state."""

    kill_scopes: tuple[tuple[str, str], ...] = ()  # (scope, reason)
    reduce_only: str = ""
    breakers: tuple[tuple[str, str], ...] = ()  # tripped: (name, reason)
    live_required: bool = False  # a live profile: go-live needed
    live_since_us: int = 0
    preflight_id: str = ""  # the latest green one
    preflight_valid_until_us: int = 0
    preflight_checks: tuple[tuple[str, str, str], ...] = ()  # the latest run's (name, status, why)


class AlertView(_S, frozen=True):
    rule: str
    severity: str
    labels: str
    state: str  # firing | resolved
    since_us: int
    value: float


class DecisionView(_S, frozen=True):
    """The latest decision on one symbol, and why it did not trade when it did not."""

    symbol: str
    model_id: str
    routed: str
    action: str
    prob: float
    expected_return: float
    regime: str
    regime_reason: str
    risk_allowed: bool
    psi: float
    why: str  # "" when it traded; else PROB_MIN / MIN_EXPECTED_RETURN / RISK_MAX / regime / drift


class EngineSnapshot(_S, frozen=True):
    """Everything a screen shows, frozen at one instant (built on the engine thread, read by the UI)."""

    seq: int
    ts_us: int
    profile: str
    venue: str
    role: str
    safe_mode: bool
    kill_switch: bool
    kill_reason: str
    halted: str
    armed: bool  # trading armed: neither kill switch nor safe mode nor halt
    model_id_used: str
    budget_left: int
    skew_ms: float
    skew_history: tuple[float, ...]
    equity: float
    pnl: float
    pnl_history: tuple[float, ...]
    latency_history_ms: tuple[float, ...]
    gates: tuple[GateView, ...]
    budgets: tuple[BudgetView, ...]
    feeds: tuple[FeedView, ...]
    symbols: tuple[SymbolView, ...]
    price_history: tuple[tuple[str, tuple[float, ...]], ...]
    orders: tuple[OrderView, ...]
    fills: tuple[FillView, ...]
    model: ModelView
    recon: ReconView | None
    alerts: tuple[str, ...]
    audit: tuple[AuditView, ...]
    ticks: int
    open_orders: int
    incidents: tuple[IncidentView, ...] = ()  # the journal's newest entries, oldest first
    stops: StopsView = StopsView()
    alert_states: tuple[AlertView, ...] = ()  # firing first, then recently resolved
    decisions: tuple[DecisionView, ...] = ()  # one per symbol, latest
