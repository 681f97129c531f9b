"""Hot configuration: what a running engine takes without a restart, and that it really does.

The gates copy their limits when they are built; ``engine.trading.hot_config`` sets them again.
These tests hold the three places together: the keys marked ``hot=True`` in
``engine/config/structs.py``, the appliers, and what ``standard_gates`` itself builds from a
changed Config (the patched gates must hold exactly the values a fresh build would).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from engine.api import EngineAPI, adds_risk, is_critical
from engine.config.loader import FieldSpec, iter_fields, load_config, with_value
from engine.config.profiles import profile_file
from engine.core.clock import SimClock
from engine.core.events import RecordConfigChange
from engine.trading.hot_config import GATE_LIMITS, STRATEGY_KEYS, patch_gates
from engine.trading.risk import RiskState, standard_gates

HOT = {s.key: s for s in iter_fields() if s.hot}


def _gates(cfg: Any) -> list[Any]:
    return standard_gates(
        risk=RiskState(10**13),
        clock=SimClock(),
        last_quote_us={},
        lot_e8=lambda _s: 1,
        r=cfg.risk,
        m=cfg.models,
        o=cfg.oms,
    )


def _limits(gate: Any) -> dict[str, Any]:
    """The plain numbers a gate holds (its limits; shared state objects are not numbers)."""
    names = getattr(gate, "__dict__", {})
    return {k: v for k, v in names.items() if type(v) in (int, float, bool, str)}


def _other_value(spec: FieldSpec) -> Any:
    """A valid value of ``spec`` different from its default."""
    lo, hi, d = spec.meta["min"], spec.meta["max"], spec.default
    assert isinstance(d, int | float)
    for v in (d * 2, d / 2, d + 1, (lo + hi) / 2, hi):
        v = int(v) if spec.type is int else float(v)
        if v != d and (lo < v < hi or (v == hi and not spec.meta.get("max_exclusive"))):
            return v
    raise AssertionError(spec.key)


def test_hot_keys_when_declared_then_each_has_an_applier_and_nothing_else_does() -> None:
    assert set(HOT) == set(GATE_LIMITS) | STRATEGY_KEYS
    assert "risk.max_daily_drawdown_pct" in HOT
    for not_hot in ("risk.safe_mode", "models.canary_share", "risk.max_time_skew_ms", "symbols"):
        assert not_hot not in HOT, not_hot  # each has its own command, or another holder


@pytest.mark.parametrize("key", sorted(GATE_LIMITS))
def test_patch_gates_when_a_hot_key_changes_then_gates_equal_a_fresh_build(key: str) -> None:
    base = load_config("paper", env={})
    changed = with_value(base, key, _other_value(HOT[key]), "override")
    gates = _gates(base)
    fresh = {g.name: _limits(g) for g in _gates(changed)}
    before = {g.name: _limits(g) for g in gates}
    patch_gates(gates, changed)
    after = {g.name: _limits(g) for g in gates}
    assert after == fresh
    assert after != before  # the key really moved a gate limit


def test_commands_when_applying_a_config_change_then_critical_and_totp_checked() -> None:
    cmd = RecordConfigChange(key="k", old="1", new="2", reason="r", profile="p", apply=True)
    assert adds_risk(cmd)
    assert is_critical(cmd)
    assert not adds_risk(RecordConfigChange(key="k", old="1", new="2", reason="r", profile="p"))


def _change(b: Any, key: str, new: str, *, apply: bool = True, **kw: Any) -> RecordConfigChange:
    fields = {"old": "x", "reason": "test", "profile": str(profile_file(b.engine.cfg.sources))}
    return RecordConfigChange(key=key, new=new, apply=apply, **(fields | kw))


def test_api_when_hot_change_applied_then_gates_strategy_runtime_and_records_follow(
    make_booted: Any, tmp_path: Any
) -> None:
    b = make_booted(strategy="models")
    seen: list[Any] = []
    api = EngineAPI(b.engine, b.strategy)
    api.config_hooks.append(seen.append)
    res = api.handle(_change(b, "risk.max_trades_per_day", "0", actor="alice"))
    assert res.ok, res.message
    assert "applied to the running engine" in res.message
    e = b.engine
    assert e.cfg.risk.max_trades_per_day == 0
    assert seen == [e.cfg]
    assert e.gates.states["max_trades_per_day"].active  # probed at once
    assert api.handle(_change(b, "models.prob_min", "0.9")).ok
    assert b.strategy.params.prob_min == 0.9
    assert api.handle(_change(b, "models.psi_block", "0.25")).ok
    assert b.strategy.psi_block == 0.25
    e.flush()
    b.close("test")
    con = duckdb.connect(str(tmp_path / "data" / "cockpit.duckdb"), read_only=True)
    kinds = con.execute("SELECT kind FROM audit_log WHERE actor = 'alice'").fetchall()
    notes = con.execute("SELECT note FROM incidents WHERE actor = 'alice'").fetchall()
    con.close()
    assert [k for (k,) in kinds] == ["config_changed", "incident"]
    assert notes[0][0].startswith("CONFIG risk.max_trades_per_day: x -> 0 (applied")


@pytest.mark.parametrize(
    ("key", "new", "why"),
    [
        ("models.decision_interval_ms", "500.0", "restart needed"),  # not hot
        ("risk.risk_per_trade_pct", "1.0", "a command-line option sets"),  # make_booted overrides
        ("models.psi_block", "0.1", "must be < models.psi_block"),  # cross-check: halve 0.2
        ("risk.max_open_positions", "-1", "must be >= 0"),
        ("exchange.api_key", '"k"', "secret"),
    ],
)
def test_api_when_change_cannot_be_applied_then_refused_and_nothing_changes(
    make_booted: Any, key: str, new: str, why: str
) -> None:
    b = make_booted(strategy="models")
    before = b.engine.cfg
    res = EngineAPI(b.engine, b.strategy).handle(_change(b, key, new))
    assert not res.ok
    assert why in res.message
    assert b.engine.cfg is before


def test_api_when_other_profile_or_observer_then_recorded_only_or_denied(
    make_booted: Any,
) -> None:
    b = make_booted(strategy="models")
    api = EngineAPI(b.engine, b.strategy)
    other = RecordConfigChange(
        key="risk.max_trades_per_day", old="1", new="0", reason="r", profile="/elsewhere.toml"
    )
    res = api.handle(other)
    assert res.ok
    assert "the running engine uses" in res.message
    assert b.engine.cfg.risk.max_trades_per_day != 0
    assert not api.handle(_change(b, "risk.max_trades_per_day", "0", reason=" ")).ok
    denied = EngineAPI(b.engine, b.strategy, role="observer").handle(
        _change(b, "risk.max_trades_per_day", "0")
    )
    assert not denied.ok
    assert "observers cannot act" in denied.message
    assert b.engine.cfg.risk.max_trades_per_day != 0
