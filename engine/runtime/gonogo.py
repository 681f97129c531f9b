"""Go/No-Go (seed 002, T+48h): each criterion with its value and threshold, and the verdict.

Criteria: error_rate < 1 %; p95_place_ms < 300; slippage p95 ≤ MAX_SLIPPAGE_BPS globally and
for every symbol; rolling 20-day Sharpe ≥ 1.0 from the history in the DB (daily net PnL of the
paper / testnet / live fills); today's drawdown ≤ 1 %; rehydrate ≤ 5 s (measured at the last
start); orphans = 0; no fill of the last 5 minutes without its TCA figures; BudgetDepleted not
fired in the last hour.

Invariants: read-only (it changes nothing, any role may ask); GO only when every criterion passes;
a criterion that cannot be measured (no history yet, no start measured) is NO-GO with the reason,
never a silent pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.runtime.booted import Booted
from engine.trading.kpis import ALL
from engine.trading.positions import Position

DAY_US = 86_400_000_000
SHARPE_DAYS = 20
MAX_ERROR_RATE = 0.01
MAX_P95_MS = 300.0
MIN_SHARPE = 1.0
MAX_DD_PCT = 1.0
MAX_REHYDRATE_S = 5.0

_FILLS_SQL = (
    "SELECT symbol, side, qty_e8, price_e8, fee_e8, ts_us FROM fills "
    "WHERE ts_us >= ? ORDER BY ts_us"
)


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    value: str
    threshold: str
    ok: bool


def daily_pnl(rows: list[tuple[Any, ...]], since_us: int) -> dict[int, float]:
    """Net realised PnL per UTC day (quote units) of the fills since ``since_us``."""
    positions: dict[str, Position] = {}
    days: dict[int, float] = {}
    for symbol, side, qty, price, fee, ts in rows:
        pos = positions.setdefault(str(symbol), Position(str(symbol)))
        realized = pos.apply_fill(str(side), int(qty), int(price), int(fee), int(ts))
        day = int(ts) // DAY_US
        days[day] = days.get(day, 0.0) + (realized - int(fee)) / 1e8
    return {d: v for d, v in days.items() if d * DAY_US >= since_us}


def sharpe(daily: list[float]) -> float | None:
    """Annualised (365 days) Sharpe of daily PnL relative to its scale; None under 2 days."""
    if len(daily) < 2:
        return None
    mean = sum(daily) / len(daily)
    var = sum((x - mean) ** 2 for x in daily) / (len(daily) - 1)
    if var <= 0:
        return math.inf if mean > 0 else 0.0
    return mean / math.sqrt(var) * math.sqrt(365)


async def go_no_go(booted: Booted) -> dict[str, Any]:
    e = booted.engine
    k, cfg = e.kpis, e.cfg
    now = e.clock.now_us()
    rate, n = k.error_rate()
    p95_ms, acks = k.place_p95_ms(ALL)
    crit = [
        Criterion("error_rate", f"{rate:.2%} of {n}", f"< {MAX_ERROR_RATE:.0%}", rate < 0.01),
        Criterion("p95_place_ms", f"{p95_ms:.0f} ms of {acks}", f"< {MAX_P95_MS:g}", p95_ms < 300),
    ]
    slo = cfg.risk.max_slippage_bps
    for scope in (ALL, *e.symbols):
        slip, fills = k.slippage_p95(scope)
        name = f"slippage_p95{'[' + scope + ']' if scope else ''}"
        crit.append(Criterion(name, f"{slip:.1f} bps of {fills}", f"<= {slo:g}", slip <= slo))
    since = (now // DAY_US - SHARPE_DAYS + 1) * DAY_US
    rows = await booted.query(_FILLS_SQL, [0])
    days = daily_pnl(rows, since)
    # from the first traded day in the window: days before any history are not flat days
    first = min(days, default=now // DAY_US)
    sr = sharpe([days.get(d, 0.0) for d in range(first, now // DAY_US + 1)]) if days else None
    crit.append(
        Criterion(
            "sharpe_20d",
            f"{sr:.2f} over {len(days)} trading day(s)"
            if sr is not None
            else f"not enough history ({len(days)} trading day(s), need 2)",
            f">= {MIN_SHARPE:g}",
            sr is not None and sr >= MIN_SHARPE,
        )
    )
    dd = e.risk.drawdown_pct()
    crit.append(Criterion("drawdown_today", f"{dd:.2f}%", f"<= {MAX_DD_PCT:g}%", dd <= MAX_DD_PCT))
    rs = booted.rehydrate_s
    crit.append(
        Criterion(
            "rehydrate_s",
            f"{rs:.2f} s" if rs >= 0 else "not measured",
            f"<= {MAX_REHYDRATE_S:g}",
            0 <= rs <= MAX_REHYDRATE_S,
        )
    )
    last = booted.reconciler.last
    orphans = last.mismatches.get("orphan", 0) if last is not None else -1
    crit.append(
        Criterion("orphans", str(orphans) if last else "no reconciliation", "= 0", orphans == 0)
    )
    no_tca = await booted.query(
        "SELECT count(*) FROM fills WHERE ts_us >= ? AND (slippage_bps IS NULL OR "
        "place_latency_ms IS NULL OR isnan(slippage_bps))",
        [now - 300_000_000],
    )
    missing = int(no_tca[0][0])
    crit.append(Criterion("tca_missing_5m", str(missing), "= 0", missing == 0))
    fired = await booted.query(
        "SELECT count(*) FROM audit_log WHERE kind = 'alert_firing' AND ts_us >= ? "
        'AND payload LIKE \'%"alert":"BudgetDepleted"%\'',
        [now - 3_600_000_000],
    )
    budget = int(fired[0][0]) + ("BudgetDepleted" in booted.alerts.names_firing())
    crit.append(Criterion("budget_depleted_1h", str(budget), "= 0", budget == 0))
    go = all(c.ok for c in crit)
    return {
        "verdict": "GO" if go else "NO-GO",
        "go": go,
        "criteria": [
            {"name": c.name, "value": c.value, "threshold": c.threshold, "ok": c.ok} for c in crit
        ],
    }
