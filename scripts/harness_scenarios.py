"""Issue 12 item 1's scenarios for the crash harness, each in its own data dir and function:
a 429 then a 418 ban while trading on "testnet" (``rate_limit_scenario``), and slow fills on paper
(``slow_fill_scenario``). ``max_order_notional_over_cap`` / ``max_position_over_cap`` (USD, from
``engine.trading.cap_audit``) must be 0; ``stale_sends`` must be 0.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import duckdb
from harness_proc import Run, admin, kill, running, scan, spawn, tail, venue_state


def _ttl_us(profile: Path) -> int:
    from engine.config.loader import load_config

    return int(load_config(str(profile), env={}).oms.decision_ttl_ms * 1000)


def cap_audit(data: Path, profile: Path) -> dict[str, Any]:
    """``engine.trading.cap_audit`` over a stopped engine's DB, against the profile's caps: the worst
    order notional over MAX_ORDER_NOTIONAL_USD and the worst exposure (filled + open orders on one
    side) over MAX_POSITION_NOTIONAL_USD, both valued at the arrival mid the gates saw (exact, no
    tolerance needed), in USD."""
    from engine.config.loader import load_config
    from engine.trading.cap_audit import audit_caps

    r = load_config(str(profile), env={}).risk
    con = duckdb.connect(str(data / "cockpit.duckdb"), read_only=True)
    try:
        return audit_caps(con, r.max_order_notional_usd, r.max_position_notional_usd)
    finally:
        con.close()


def rate_limit_scenario(run: Run, port: int, duration: float) -> dict[str, Any]:
    """Caps and decision TTL on "testnet": while the strategy trades, the venue answers one order
    with HTTP 429 (Retry-After 1 s), then bans the IP (HTTP 418, every request, 4 s).

    Its own data dir (the crash trials' books stay apart). ``stale_sends``: venue orders whose
    decision was older than the TTL when the venue received them (must be 0); ``expired_unsent``:
    orders closed "decision expired before send"; ``ban_shown``: the adapter reported the 418 as
    a ban (the venue_throttle gate's reason says so); ``max_order_notional_over_cap`` /
    ``max_position_over_cap``: USD above the caps (``cap_audit``)."""
    profile = run.work / "rate-limit.toml"  # its own client id prefix: the venue is shared
    # a steady order flow (the benchmark workload), whatever regime the market is in: the model
    # strategy may hold its target for a minute, and then no order meets the injected 429/418
    text = run.profile.read_text().replace(
        "[models]\n", '[models]\nstrategy = "alternating"\nalternating_every_ticks = 25\n', 1
    )
    profile.write_text(text + '\n[oms]\nclient_id_prefix = "rl"\n')
    rl = Run(run.work, run.work / "rate-limit-data", profile, run.env, run.rng, run.deadline)
    proc, out = spawn(rl, "rate-limit", duration, "")
    try:
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end and proc.poll() is None:
            if running(out) and scan(out)["submitted"] >= 2:
                break
            time.sleep(0.05)
        admin(
            port,
            "inject",
            {
                "kind": "binance_error",
                "method": "POST",
                "count": 1,
                "path": "/api/v3/order",
                "status": 429,
                "code": -1003,
                "msg": "Too many requests.",
                "retry_after_s": 1,
            },
        )
        # the next REST request of any kind (an order, a catch-up, a clock sample) earns a ban
        admin(port, "inject", {"kind": "ban", "retry_after_s": 4})
        rc = proc.wait(timeout=duration + 90)
    finally:
        kill(proc)
    ttl_us = _ttl_us(profile)
    con = duckdb.connect(str(rl.data / "cockpit.duckdb"), read_only=True)
    try:
        decided = dict(con.execute("SELECT decision_id || '.0', ts_us FROM decisions").fetchall())
        expired = con.execute(
            "SELECT count(*) FROM orders WHERE reason LIKE 'decision expired before send%'"
        ).fetchone()[0]
    finally:
        con.close()
    caps = cap_audit(rl.data, profile)
    truth = venue_state(port)
    ages = [
        int(o["time"]) * 1000 - decided[o["clientOrderId"]]
        for o in truth["orders"]
        if o.get("clientOrderId") in decided
    ]
    text = out.read_text(errors="replace")
    return {
        "exit": rc,
        "stale_sends": sum(a > ttl_us for a in ages),
        "worst_send_age_ms": round(max(ages, default=0) / 1000, 1),
        "venue_orders": len(ages),
        "expired_unsent": int(expired),
        # reported as what it is (the gate's reason follows: see the gates panel / denials)
        "ban_shown": "venue BANNED this IP (HTTP 418)" in text,
        "rate_limit_shown": "venue rate limit: backing off" in text,
        "max_order_notional_over_cap": caps["max_order_notional_over_cap"],
        "max_position_over_cap": caps["max_position_over_cap"],
        "max_order_notional": caps["max_order_notional_usd"],
        "max_position_notional": caps["max_exposure_usd"],
    }


SLOW_FILL_PROFILE = """
kind = "paper"
venue = "paper"
feed = "sim"
offline = true
[risk]
safe_mode = false
risk_per_trade_pct = 2.0
dupe_intent_window_ms = 0.0
max_order_notional_usd = 1000.0
max_position_notional_usd = 1500.0
max_gross_exposure_usd = 3000.0
# a 3 s venue trips the SLO gate (p95 > 300 ms) first; this scenario is about the caps
max_p95_place_ms = 600000.0
[models]
prob_min = 0.5
min_expected_return = 0.0
decision_interval_ms = 200.0
risk_max = 5.0
[paper]
latency_ms_mean = 3000.0
latency_ms_jitter = 1000.0
[storage]
flush_interval_ms = 50.0
"""


def slow_fill_scenario(work: Path, env: dict[str, str], duration: float) -> dict[str, Any]:
    """Caps under slow fills on paper: the venue answers after ~3 s while the strategy decides
    every 200 ms at 2 % risk (before the fix every order was sized against the stale filled
    position: orders above MAX_ORDER_NOTIONAL_USD, positions far above any cap). The caps sit
    below the strategy's 2 % target, so each of them binds. Its own data dir; no venue process.
    ``max_order_notional_over_cap`` / ``max_position_over_cap`` (``cap_audit``) must be 0."""
    (work / "runs").mkdir(exist_ok=True)
    profile = work / "slow-fill.toml"
    profile.write_text(SLOW_FILL_PROFILE)
    run = Run(work, work / "slow-fill-data", profile, env, random.Random(0), time.monotonic())
    proc, out = spawn(run, "slow-fill", duration, "")
    try:
        rc = proc.wait(timeout=duration + 90)
    finally:
        kill(proc)
    if rc != 0:
        return {"exit": rc, "error": tail(out)}
    caps = cap_audit(run.data, profile)
    con = duckdb.connect(str(run.data / "cockpit.duckdb"), read_only=True)
    try:
        acted = dict(
            con.execute(
                "SELECT gate, count(*) FROM gate_events WHERE action IN "
                "('deny', 'scale') GROUP BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    return {"exit": rc, **caps, "gate_actions": acted}


def slow_fill_failed(sf: dict[str, Any]) -> bool:
    """The scenario ran and the engine failed, traded nothing, or something exceeded a cap."""
    if not sf:
        return False
    return bool(
        sf["exit"] != 0
        or not sf.get("fills")
        or sf["max_order_notional_over_cap"]
        or sf["max_position_over_cap"]
    )


def rate_limit_failed(rl: dict[str, Any]) -> bool:
    """The scenario ran and something went out stale, over a cap, or the engine did not exit 0."""
    if not rl:
        return False
    over = (rl["max_order_notional_over_cap"], rl["max_position_over_cap"] or 0)
    return bool(rl["exit"] != 0 or rl["stale_sends"] or any(over) or not rl["ban_shown"])
