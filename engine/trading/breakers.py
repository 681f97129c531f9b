"""Execution-quality gates: the error-rate and slippage breakers, the SLO gate, the canary
notional cap and the preflight gate.

- ``ErrorRateBreaker`` (``error_rate``): trips when the share of rejected orders over the recent
  window — engine-wide or for any one symbol — exceeds ``MAX_ERROR_RATE``.
- ``SlippageBreaker`` (``slippage``): trips when the p95 fill slippage — engine-wide or for any
  one symbol — exceeds ``MAX_SLIPPAGE_BPS``.
- ``SloGate`` (``slo``): blocks while the p95 place latency of the last ``SLO_WINDOW_S`` is above
  ``MAX_P95_PLACE_MS``, or while the latency figures are stale: an order went out more than
  ``SLO_STALE_MS`` ago and nothing came back since ("stale-p95").
- ``CanaryCapGate`` (``canary_cap``): the challenger's notional today, this order included, stays
  within ``CANARY_NOTIONAL_CAP_PCT`` of the day's notional on every route; champion and manual
  orders are never held by it.
- ``PreflightGate`` (``preflight``): where a preflight is required (the live profile, and testnet
  with ``live.preflight_on_testnet``), no new order unless a green preflight is younger than
  ``live.preflight_ttl_s``.

Invariants:
- A breaker, once tripped, stays tripped — across restarts too (its reason is persisted) — until
  an operator resets it (``Breakers.reset``, a critical action); it never resets itself. A reset
  starts a fresh measurement window, so the same old samples cannot trip it again, and new bad
  ones trip it after ``BREAKER_MIN_SAMPLE`` of them.
- A tripped breaker does **not** arm the kill switch: it blocks new risk on its own, with its own
  gauge, reason and reset; the part of an order that reduces exposure still passes, so getting
  flat never waits for a reset. (The kill switch stays the operator's.)
- Breakers and the SLO gate evaluate once a second (``probe``, from ``Engine.refresh``), never per
  order: a p95 over 500 samples per order would cost the hot path; ``check`` reads the standing
  result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.core.units import SCALE
from engine.trading.gates import GateContext
from engine.trading.kpis import ALL, Kpis


class Breaker:
    """Latching trip state: ``reason`` is empty until tripped; only ``reset`` clears it."""

    name = ""

    def __init__(self, kpis: Kpis, limit: float, min_sample: int) -> None:
        self.kpis = kpis
        self.limit = limit
        self.min_sample = max(1, min_sample)
        self.reason = ""
        self.tripped_us = 0
        self.on_trip: Callable[[Breaker], None] | None = None

    def cause(self) -> str | None:  # overridden
        raise NotImplementedError

    def probe(self, now_us: int) -> str | None:
        if not self.reason:
            why = self.cause()
            if why is not None:
                self.reason, self.tripped_us = f"tripped: {why}", now_us
                if self.on_trip is not None:
                    self.on_trip(self)
        return self.reason or None

    def check(self, ctx: GateContext) -> str | None:
        if self.reason and not ctx.reduces:
            return f"{self.name} breaker {self.reason} (operator reset needed)"
        return None

    def reset(self) -> str:
        """Clear the trip and start a fresh window; returns what was cleared."""
        was, self.reason, self.tripped_us = self.reason, "", 0
        self.restart()
        return was

    def restart(self) -> None:  # overridden
        raise NotImplementedError

    def _worst(self, figure: Callable[[str], tuple[float, int]]) -> tuple[str, float, int] | None:
        """The scope (global first, then each symbol) whose figure is worst above the limit."""
        worst: tuple[str, float, int] | None = None
        for scope in (ALL, *self.kpis.symbols()):
            value, n = figure(scope)
            if n >= self.min_sample and value > self.limit and (worst is None or value > worst[1]):
                worst = (scope, value, n)
        return worst


class ErrorRateBreaker(Breaker):
    name = "error_rate"

    def cause(self) -> str | None:
        w = self._worst(self.kpis.error_rate)
        if w is None:
            return None
        scope, rate, n = w
        return (
            f"error rate {rate:.1%} over the last {n} orders{_on(scope)} > "
            f"MAX_ERROR_RATE={self.limit:.1%}"
        )

    def restart(self) -> None:
        self.kpis.restart_errors()


class SlippageBreaker(Breaker):
    name = "slippage"

    def cause(self) -> str | None:
        w = self._worst(self.kpis.slippage_p95)
        if w is None:
            return None
        scope, bps, n = w
        return (
            f"slippage p95 {bps:.1f} bps over the last {n} fills{_on(scope)} > "
            f"MAX_SLIPPAGE_BPS={self.limit:g}"
        )

    def restart(self) -> None:
        self.kpis.restart_slippage()


def _on(scope: str) -> str:
    return f" on {scope}" if scope else ""


class Breakers:
    """The two breakers of one engine, by name: trip callbacks, restore at start, reset."""

    def __init__(self, kpis: Kpis, r: Any) -> None:
        n = int(r.breaker_min_sample)
        self.by_name: dict[str, Breaker] = {
            "error_rate": ErrorRateBreaker(kpis, float(r.max_error_rate), n),
            "slippage": SlippageBreaker(kpis, float(r.max_slippage_bps), n),
        }

    def tripped(self) -> dict[str, str]:
        return {n: b.reason for n, b in self.by_name.items() if b.reason}

    def restore(self, state: dict[str, str], now_us: int) -> None:
        """A trip persisted by an earlier run stays tripped (fail closed)."""
        for name, b in self.by_name.items():
            why = state.get(f"breaker_{name}", "")
            if why:
                b.reason, b.tripped_us = why, now_us


class SloGate:
    name = "slo"

    def __init__(self, kpis: Kpis, max_p95_ms: float, window_s: float, stale_ms: float) -> None:
        self.kpis = kpis
        self.max_p95_ms = max_p95_ms
        self.window_us = int(window_s * 1e6)
        self.stale_us = int(stale_ms * 1000)
        self.reason: str | None = None

    def probe(self, now_us: int) -> str | None:
        k = self.kpis
        waiting = k.first_unacked_us
        if waiting and now_us - waiting > self.stale_us:
            self.reason = (
                f"stale p95: orders sent {(now_us - waiting) / 1e6:.0f} s ago, no venue answer "
                f"since (> {self.stale_us / 1000:g} ms)"
            )
            return self.reason
        p95_ms, n = k.place_p95_ms(ALL, now_us - self.window_us)
        if n and p95_ms > self.max_p95_ms:
            self.reason = (
                f"p95 place latency {p95_ms:.0f} ms over the last {n} acks > "
                f"MAX_P95_PLACE_MS={self.max_p95_ms:g}"
            )
        else:
            self.reason = None
        return self.reason

    def check(self, ctx: GateContext) -> str | None:
        return None if ctx.reduces else self.reason


class CanaryCapGate:
    name = "canary_cap"

    def __init__(self, notional_by_router_e8: dict[str, int], cap_pct: float) -> None:
        self.by_router = notional_by_router_e8  # today's sent notional per route (RiskState)
        self.cap_pct = cap_pct

    def check(self, ctx: GateContext) -> str | None:
        if ctx.routed != "challenger" or ctx.reduces:
            return None
        this = ctx.notional_e8
        canary = self.by_router.get("challenger", 0) + this
        total = sum(self.by_router.values()) + this
        if canary * 100 > self.cap_pct * total:
            return (
                f"canary notional {canary / SCALE:,.2f} would be {canary * 100 / total:.0f}% of "
                f"today's {total / SCALE:,.2f} > CANARY_NOTIONAL_CAP_PCT={self.cap_pct:g}%"
            )
        return None


def preflight_required(cfg: Any) -> bool:
    """Live always needs a green preflight for new orders; testnet when the profile asks."""
    return cfg.kind == "live" or (cfg.kind == "testnet" and bool(cfg.live.preflight_on_testnet))


class PreflightState:
    """The latest green preflight (its id and until when it counts; 0: none) and when this
    process went live (``trading.golive``; 0: not yet)."""

    __slots__ = ("green_id", "last_checks", "live_since_us", "valid_until_us")

    def __init__(self) -> None:
        self.green_id = ""
        self.valid_until_us = 0
        self.live_since_us = 0
        self.last_checks: tuple[tuple[str, str, str], ...] = ()  # the latest run, for screens


def restore_preflight(st: PreflightState, saved: str) -> None:
    """Read back ``engine_state['preflight_green']`` ("<id> <valid_until_us>"); junk = none."""
    parts = saved.split()
    if len(parts) == 2 and parts[1].isdigit():
        st.green_id, st.valid_until_us = parts[0], int(parts[1])


class PreflightGate:
    name = "preflight"

    def __init__(self, state: PreflightState, required: bool, go_live: bool = False) -> None:
        self.state = state
        self.required = required
        self.go_live = go_live  # live: a go-live of this process is needed too

    def probe(self, now_us: int) -> str | None:
        if not self.required:
            return None
        st = self.state
        if not st.green_id:
            return "no green preflight yet: run `cockpit preflight`"
        if now_us > st.valid_until_us:
            return f"preflight {st.green_id} expired: run `cockpit preflight` again"
        if self.go_live and not st.live_since_us:
            return "live trading not opened yet: `cockpit go-live` (typed phrase + TOTP)"
        return None

    def check(self, ctx: GateContext) -> str | None:
        return None if ctx.reduces else self.probe(ctx.now_us)
