"""Hot configuration: a running engine's gates take new limits without a restart.

Role: :func:`apply` makes the engine's gates and breakers enforce ``cfg`` — a Config that differs
from ``engine.cfg`` only in keys declared ``hot=True`` in ``engine.config.structs`` — and makes it
``engine.cfg``. The model strategy's thresholds follow through ``ModelStrategy.apply_config``
(``STRATEGY_KEYS``); the caller is ``engine.trading.config_change`` (the ``RecordConfigChange``
command), on the engine loop.

Invariants:
- The gates copy their limits when ``standard_gates`` builds them; for every hot key,
  ``GATE_LIMITS`` names the gate, the attribute and the conversion its constructor uses.
  ``tests/engine/trading/test_hot_config.py`` builds the gates from a changed Config and checks
  the patched gates hold exactly the same values, and that every key marked hot is applied here
  or by the strategy (a key marked hot with no applier would be "applied" and not enforced).
- Keys that something else also keeps from the start (the alert rules' skew and PSI thresholds,
  the runtime's staleness readiness) are not hot: a restart applies them everywhere at once.
- Standing gates are probed again at once (``gates.refresh``): a lowered limit blocks before the
  next order, and the gates panel and gauges show it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.core.units import SCALE

if TYPE_CHECKING:
    from engine.trading.engine import Engine


def _same(v: Any) -> Any:
    return v


def _us_from_ms(ms: float) -> int:
    return int(ms * 1000)


def _us_from_s(s: float) -> int:
    return int(s * 1e6)


def _e8(usd: float) -> int:
    return int(usd * SCALE)


# dotted key -> (gate name, gate attribute, conversion from the config value), as built by
# engine.trading.risk.standard_gates (the breakers are gates of the pipeline too)
GATE_LIMITS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    "risk.max_error_rate": ("error_rate", "limit", float),
    "risk.max_slippage_bps": ("slippage", "limit", float),
    "risk.max_p95_place_ms": ("slo", "max_p95_ms", _same),
    "risk.slo_window_s": ("slo", "window_us", _us_from_s),
    "risk.slo_stale_ms": ("slo", "stale_us", _us_from_ms),
    "risk.dupe_intent_window_ms": ("dupe_intent", "window_us", _us_from_ms),
    "risk.cooldown_ms": ("cooldown", "cooldown_us", _us_from_ms),
    "risk.budget_orders_per_day_strategy": ("budget", "per_strategy", _same),
    "risk.budget_orders_per_day_symbol": ("budget", "per_symbol", _same),
    "risk.budget_orders_per_day_account": ("budget", "account", _same),
    "risk.max_trades_per_day": ("max_trades_per_day", "max_trades", _same),
    "risk.max_open_positions": ("max_open_positions", "max_open", _same),
    "risk.max_daily_drawdown_pct": ("daily_drawdown", "max_pct", _same),
    "risk.risk_per_trade_pct": ("risk_per_trade", "pct", _same),
    "risk.max_order_notional_usd": ("risk_per_trade", "max_notional_e8", _e8),
    "risk.max_position_notional_usd": ("max_position_notional", "cap_e8", _e8),
    "risk.max_gross_exposure_usd": ("max_gross_exposure", "cap_e8", _e8),
    "risk.canary_notional_cap_pct": ("canary_cap", "cap_pct", _same),
    "models.psi_block": ("drift", "block", _same),
}

# Hot keys the model strategy reads per decision (ModelStrategy.apply_config takes them).
STRATEGY_KEYS = frozenset(
    {
        "models.prob_min",
        "models.min_expected_return",
        "models.risk_max",
        "models.psi_block",
        "risk.risk_per_trade_pct",
    }
)


def config_value(cfg: Any, key: str) -> Any:
    section, _, name = key.rpartition(".")
    return getattr(getattr(cfg, section) if section else cfg, name)


def patch_gates(gates: list[Any], cfg: Any) -> None:
    """Set every hot limit of ``gates`` (a ``standard_gates`` pipeline) from ``cfg``."""
    by_name = {g.name: g for g in gates}
    for key, (gate_name, attr, convert) in GATE_LIMITS.items():
        gate = by_name.get(gate_name)
        if gate is not None:  # a test rig may run a pipeline without it
            setattr(gate, attr, convert(config_value(cfg, key)))


def apply(e: Engine, cfg: Any) -> None:
    """Make ``cfg`` the engine's configuration and every gate limit follow it (loop thread)."""
    patch_gates(e.gates.gates, cfg)
    e.cfg = cfg
    e.gates.refresh(e.clock.now_us())
