"""Per-UTC-day risk counters: rebuilt from the DB at start, persisted when they re-baseline.

"Today" is the UTC day of the engine clock. What a restart must not reset:
- orders sent today per account / strategy / symbol (``BudgetGate``, ``MaxTradesGate``): rebuilt
  from the orders created today (one aggregate over ``orders_log`` filtered on ``created_us``; no
  index needed: the log is appended in time order, so DuckDB's zone maps skip older row groups),
  plus intents recovered from the journal that the DB never saw;
- notional sent today per router (the canary cap reads the challenger's): rebuilt at each order's
  reference price (its limit price, or the mid when it was created; live counting uses the touch
  price, so the two agree to within half a spread);
- an operator's budget reset (``ResetRisk``): the counts it cleared are kept under
  ``budget_reset`` with their day (added up over several resets) and subtracted from the day's
  counts at start, so only orders sent after the reset count against the budgets and
  MAX_TRADES_PER_DAY (the canary notional still counts the whole day). Counts, not a timestamp: a
  simulated clock stamps many orders with the same microsecond;
- the daily drawdown baseline (equity at the day's start, or when an operator reset risk): kept in
  ``engine_state`` under ``day_start_equity`` with its day, restored on the same UTC day. On the
  first start of a day it is the equity at start (realized PnL and fees; no quotes yet).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from engine.store.schema import log_table
from engine.trading.risk import US_PER_DAY

if TYPE_CHECKING:
    from engine.trading.engine import Engine

log = logging.getLogger("engine.trading.day_counters")

STATE_KEY = "day_start_equity"
RESET_KEY = "budget_reset"

# log_table() returns a fixed table name of this schema, never input: S608 does not apply.
_TODAY_SQL = (
    "SELECT client_order_id, any_value(strategy), any_value(symbol), any_value(routed), "  # noqa: S608
    "any_value(qty_e8), any_value(CASE WHEN limit_price_e8 > 0 THEN limit_price_e8 "
    f"ELSE arrival_mid_e8 END) FROM {log_table('orders')} "
    "WHERE created_us >= ? AND created_us < ? GROUP BY client_order_id"
)


def rebuild(e: Engine, con: Any) -> None:
    """At start, before any tick: today's counters from the DB, the baseline from engine_state."""
    t0 = time.perf_counter()  # for the log line only
    r = e.risk
    today = e.clock.now_us() // US_PER_DAY
    start_us = today * US_PER_DAY
    r.roll(start_us)  # an empty day, then today's orders are counted into it
    rows = con.execute(_TODAY_SQL, [start_us, start_us + US_PER_DAY]).fetchall()
    seen = {str(row[0]) for row in rows}
    recovered = [
        (
            o.client_order_id,
            o.strategy,
            o.symbol,
            o.routed,
            o.qty_e8,
            o.limit_price_e8 or o.arrival_mid_e8,
        )
        for o in e.order_cache.orders.values()
        if o.client_order_id not in seen and start_us <= o.created_us < start_us + US_PER_DAY
    ]
    for _, strategy, symbol, routed, qty, px in [*rows, *recovered]:
        strategy, symbol, routed = str(strategy or ""), str(symbol), str(routed or "")
        r.orders_today += 1
        r.orders_by_strategy[strategy] = r.orders_by_strategy.get(strategy, 0) + 1
        r.orders_by_symbol[symbol] = r.orders_by_symbol.get(symbol, 0) + 1
        notional = int(qty) * int(px or 0) // 100_000_000
        r.notional_by_router_e8[routed] = r.notional_by_router_e8.get(routed, 0) + notional
    _subtract(r, _reset_offsets(_state(con, RESET_KEY), today))
    e.mark_to_market()
    baseline = _saved_day_value(con, STATE_KEY, "equity_e8", today)
    if baseline is not None:
        r.equity_day_start_e8 = baseline
    else:
        r.equity_day_start_e8 = r.equity_e8
        persist(e)
    log.info(
        "day counters rebuilt in %.1f ms: %d order(s) today, drawdown baseline %.2f (%s)",
        (time.perf_counter() - t0) * 1000,
        r.orders_today,
        r.equity_day_start_e8 / 1e8,
        "restored" if baseline is not None else "equity at start",
    )


def persist(e: Engine) -> None:
    """Keep the drawdown baseline with its day (committed with the next batch)."""
    r = e.risk
    value = msgspec.json.encode({"day": r.day, "equity_e8": r.equity_day_start_e8}).decode()
    e.recorder.set_state(STATE_KEY, value)


def reset_budgets(e: Engine, now_us: int) -> dict[str, int]:
    """An operator's budget reset: today's order counts restart from zero (kept across a restart
    the same UTC day). Returns the counts it cleared, by budget."""
    r = e.risk
    cleared = {"account": r.orders_today}
    cleared.update({f"symbol {k}": v for k, v in sorted(r.orders_by_symbol.items())})
    cleared.update({f"strategy {k}": v for k, v in sorted(r.orders_by_strategy.items())})
    off = _reset_offsets(e.recorder.state(RESET_KEY), r.day)
    off["account"] = off.get("account", 0) + r.orders_today
    for scope, counts in (("symbol", r.orders_by_symbol), ("strategy", r.orders_by_strategy)):
        mine = off.setdefault(scope, {})
        for k, v in counts.items():
            mine[k] = mine.get(k, 0) + v
    r.orders_today = 0
    r.orders_by_symbol.clear()
    r.orders_by_strategy.clear()
    e.recorder.set_state(RESET_KEY, msgspec.json.encode({"day": r.day, **off}).decode())
    return cleared


def _reset_offsets(saved: str, today: int) -> dict[str, Any]:
    """The counts earlier resets cleared today ({} for another day or an unreadable value)."""
    try:
        v = msgspec.json.decode(saved) if saved else {}
        if not isinstance(v, dict) or v.get("day") != today:
            return {}
        return {
            "account": int(v.get("account", 0)),
            "symbol": {str(k): int(n) for k, n in dict(v.get("symbol", {})).items()},
            "strategy": {str(k): int(n) for k, n in dict(v.get("strategy", {})).items()},
        }
    except (msgspec.DecodeError, TypeError, ValueError, AttributeError):
        log.warning("engine_state %s unreadable (%r): ignored", RESET_KEY, saved)
        return {}


def _subtract(r: Any, off: dict[str, Any]) -> None:
    r.orders_today = max(0, r.orders_today - off.get("account", 0))
    for scope, counts in (("symbol", r.orders_by_symbol), ("strategy", r.orders_by_strategy)):
        for k, n in off.get(scope, {}).items():
            if k in counts:
                counts[k] = max(0, counts[k] - n)


def rolled(e: Engine) -> None:
    """A UTC day boundary passed while running: audit it and keep the new baseline."""
    e.recorder.audit("engine", "day_rolled", {"day": e.risk.day})
    persist(e)


def _state(con: Any, key: str) -> str:
    row = con.execute("SELECT value FROM engine_state WHERE key = ?", [key]).fetchone()
    return "" if row is None else str(row[0])


def _saved_day_value(con: Any, key: str, field: str, today: int) -> int | None:
    """``engine_state[key]`` = {"day": D, field: V}: V when D is today, else None."""
    saved = _state(con, key)
    if not saved:
        return None
    try:
        v = msgspec.json.decode(saved)
        return int(v[field]) if int(v["day"]) == today else None
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        log.warning("engine_state %s unreadable (%r): ignored at start", key, saved)
        return None
