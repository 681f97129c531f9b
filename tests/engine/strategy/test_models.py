"""Features, built-in models, canary routing, the model registry and the PSI drift monitor."""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_right
from pathlib import Path

import msgspec
import pytest

from engine.strategy.drift import PsiMonitor
from engine.strategy.features import FEATURE_NAMES, FeatureState
from engine.strategy.registry import (
    BUILTIN_REFERENCE,
    ModelRegistry,
    Reference,
    build_reference,
    builtin_reference,
    reference_from_samples,
    simulate_features,
)
from engine.strategy.signal_models import (
    CanaryRouter,
    MeanReversionModel,
    ModelParams,
    TrendModel,
    build_model,
    classify_regime,
)
from engine.strategy.strategies import REFERENCE_TICKS

OPEN = ModelParams(prob_min=0.55, min_expected_return=0.0001, risk_max=1.0)


def _with(p: ModelParams, **changes: float) -> ModelParams:
    return dataclasses.replace(p, **changes)


def _feed(f: FeatureState, mids: list[float]) -> FeatureState:
    for i, m in enumerate(mids):
        f.update(m, 1_000_000 * i)
    return f


def _rising(n: int = 300, drift_bps: float = 0.1) -> list[float]:
    # Steady drift plus a small alternating wiggle so the volatility is not degenerate.
    return [100.0 * math.exp(i * drift_bps * 1e-4) * (1 + 0.03e-4 * (-1) ** i) for i in range(n)]


def _flat_then_drop(n: int = 300, drop_bps: float = 2.0) -> list[float]:
    flat = [100.0 * (1 + 0.1e-4 * (-1) ** i) for i in range(n)]
    return [*flat, 100.0 * (1 - drop_bps * 1e-4)]


# --- features --------------------------------------------------------------------------------


def test_update_when_rising_series_then_positive_trend_and_trend_up() -> None:
    f = _feed(FeatureState(), _rising())
    assert f.ready
    values = dict(zip(FEATURE_NAMES, f.values(), strict=True))
    assert values["trend_bps"] > 1.5
    assert values["zscore"] > 0
    assert values["vol_bps"] == pytest.approx(f.vol_bps)
    regime, reason = classify_regime(f)
    assert regime == "TREND_UP"
    assert reason.startswith("trend +")
    assert "bps >" in reason


def test_update_when_few_ticks_then_not_ready_and_bad_mids_ignored() -> None:
    f = _feed(FeatureState(min_ticks=50), [100.0] * 49)
    f.update(float("nan"), 0)
    f.update(-1.0, 0)
    assert not f.ready
    assert f.n == 49
    assert classify_regime(f)[1] == "warming up 49/50 ticks"
    f.update(100.0, 0)
    assert f.ready


def test_classify_when_volatile_series_then_high_vol_with_reason() -> None:
    f = _feed(FeatureState(), [100.0 * (1 + 2e-4 * (-1) ** i) for i in range(200)])
    regime, reason = classify_regime(f)
    assert regime == "HIGH_VOL"
    assert reason.startswith("vol ")
    assert "bps > 0.45bps" in reason


# --- models ----------------------------------------------------------------------------------


def test_decide_when_rising_series_then_trend_model_long() -> None:
    f = _feed(FeatureState(), _rising())
    d = TrendModel().decide("BTC/USDT", f, 123, "dec-1", OPEN)
    assert (d.action, d.regime, d.model_id, d.decision_id, d.ts_us) == (
        "LONG",
        "TREND_UP",
        "trend_v1",
        "dec-1",
        123,
    )
    assert 0.55 <= d.prob <= 0.99
    assert d.expected_return >= 0.0001
    assert d.risk_allowed
    assert 0 < d.position_size <= 1
    assert d.routed == "champion"
    falling = _feed(FeatureState(), [100.0 * 100.0 / m for m in _rising()])
    assert TrendModel().decide("BTC/USDT", falling, 1, "dec-2", OPEN).action == "SHORT"


def test_decide_when_prob_min_099_then_no_trade_with_zero_size() -> None:
    f = _feed(FeatureState(), _rising())
    d = TrendModel().decide("BTC/USDT", f, 1, "d", _with(OPEN, prob_min=0.99))
    assert d.action == "NO_TRADE"
    assert d.position_size == 0.0
    assert d.regime == "TREND_UP"
    assert d.prob < 0.99


def test_decide_when_risk_max_zero_then_risk_not_allowed_and_no_trade() -> None:
    f = _feed(FeatureState(), _rising())
    d = TrendModel().decide("BTC/USDT", f, 1, "d", _with(OPEN, risk_max=0.0))
    assert d.risk_allowed is False
    assert d.action == "NO_TRADE"
    assert d.position_size == 0.0


def test_decide_when_expected_return_below_min_then_no_trade() -> None:
    f = _feed(FeatureState(), _rising())
    d = TrendModel().decide("BTC/USDT", f, 1, "d", _with(OPEN, min_expected_return=0.1))
    assert d.action == "NO_TRADE"
    assert d.expected_return < 0.1


def test_decide_when_features_not_ready_then_no_trade() -> None:
    f = _feed(FeatureState(), _rising(20))
    for model in (TrendModel(), MeanReversionModel()):
        assert model.decide("BTC/USDT", f, 1, "d", OPEN).action == "NO_TRADE"


def test_decide_when_drop_below_mean_in_range_then_meanrev_long() -> None:
    f = _feed(FeatureState(), _flat_then_drop())
    params = _with(OPEN, prob_min=0.5, min_expected_return=0.0)
    d = MeanReversionModel().decide("SOL/USDT", f, 1, "d", params)
    assert d.regime == "RANGE"
    assert f.zscore <= -4
    assert d.action == "LONG"
    assert d.model_id == "meanrev_v1"
    assert d.prob > 0.5
    spike = _feed(FeatureState(), _flat_then_drop(drop_bps=-2.0))
    assert MeanReversionModel().decide("SOL/USDT", spike, 1, "d", params).action == "SHORT"
    # The trend follower stays out of a range.
    assert TrendModel().decide("SOL/USDT", f, 1, "d", OPEN).action == "NO_TRADE"


def test_decision_when_routed_replaced_then_struct_copy() -> None:
    d = TrendModel().decide("BTC/USDT", _feed(FeatureState(), _rising()), 1, "d", OPEN)
    assert msgspec.structs.replace(d, routed="challenger").routed == "challenger"


def test_build_model_when_unknown_id_then_one_line_value_error() -> None:
    assert build_model("trend_v1").model_id == "trend_v1"
    assert build_model("meanrev_v1").model_id == "meanrev_v1"
    with pytest.raises(ValueError, match=r"'nope'.*trend_v1, meanrev_v1") as err:
        build_model("nope")
    assert "\n" not in str(err.value)


# --- canary router ---------------------------------------------------------------------------


def _trades(router: CanaryRouter, n: int, signal_every: int = 1) -> int:
    """Trades placed one by one; the challenger takes one when it is due and has a signal."""
    canary = 0
    for total in range(n):
        if total % signal_every == 0 and router.challenger_due(canary, total):
            canary += 1
    return canary


def test_challenger_due_when_trading_then_its_share_of_trades_never_above() -> None:
    r = CanaryRouter(0.05)
    canary = _trades(r, 2_000)
    assert canary == 100  # exactly 5 % of the trades
    assert not CanaryRouter(0.05).challenger_due(0, 0)  # its first trade would be 100 %
    assert CanaryRouter(0.05).challenger_due(0, 19)  # the 20th trade: 1/20
    assert _trades(CanaryRouter(0.2), 1_000, signal_every=3) <= 200  # rare signals: below


def test_challenger_due_when_share_zero_or_one_then_never_or_always() -> None:
    r = CanaryRouter(0.0)
    assert _trades(r, 2_000) == 0
    r.share = 1.0
    assert _trades(r, 2_000) == 2_000
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"0..1"):
            r.share = bad
    assert r.share == 1.0


# --- registry --------------------------------------------------------------------------------


def _registry() -> ModelRegistry:
    ref = build_reference(seed=3, n_ticks=1_000)
    reg = ModelRegistry()
    reg.register(TrendModel(), "champion", ref, 10)
    reg.register(MeanReversionModel(), "challenger", ref, 11)
    return reg


def test_promote_when_rolled_back_then_original_pair_restored() -> None:
    reg = _registry()
    reg.promote(20)
    assert (reg.champion_id, reg.challenger_id) == ("meanrev_v1", "trend_v1")
    assert reg.entry("meanrev_v1").updated_us == 20
    reg.rollback(30)
    assert (reg.champion_id, reg.challenger_id) == ("trend_v1", "meanrev_v1")
    with pytest.raises(ValueError, match="nothing to roll back"):
        reg.rollback(40)


def test_pin_when_unknown_then_value_error_and_known_pin_overrides_router() -> None:
    reg = _registry()
    with pytest.raises(ValueError, match="unknown model 'x'"):
        reg.pin("x")
    assert reg.resolve("challenger") == ("meanrev_v1", "challenger")
    reg.pin("trend_v1")
    assert reg.pinned == "trend_v1"
    assert reg.resolve("challenger") == ("trend_v1", "pinned")
    reg.pin(None)
    assert reg.resolve("champion") == ("trend_v1", "champion")


def test_to_rows_when_reloaded_then_same_registry_state() -> None:
    reg = _registry()
    reg.promote(20)
    reg.pin("meanrev_v1")
    reg.set_canary_share(0.2)
    rows = reg.to_rows()
    assert all(isinstance(r[4], str) for r in rows)  # reference as JSON text
    back = ModelRegistry.from_rows(rows)
    back.load_state(reg.state_dict())
    assert back.entries() == reg.entries()
    assert (back.champion_id, back.challenger_id, back.pinned, back.canary_share) == (
        "meanrev_v1",
        "trend_v1",
        "meanrev_v1",
        0.2,
    )
    back.rollback(30)  # the history survived the round trip
    assert back.champion_id == "trend_v1"
    with pytest.raises(ValueError, match=r"0..1"):
        back.set_canary_share(2.0)


def test_register_when_new_champion_then_previous_champion_retired() -> None:
    reg = _registry()
    ref = reg.entry("trend_v1").reference
    reg.register(MeanReversionModel(), "champion", ref, 50)
    assert reg.champion_id == "meanrev_v1"
    assert reg.challenger_id == ""
    assert reg.entry("trend_v1").role == "retired"
    with pytest.raises(ValueError, match="no challenger"):
        reg.promote(60)


# --- reference and drift ---------------------------------------------------------------------


def test_build_reference_when_same_seed_then_deterministic_and_json_round_trip() -> None:
    ref = build_reference()
    assert build_reference() is ref  # cached: built once per process
    fresh = reference_from_samples(simulate_features(7, 20_000), source=ref.source)
    assert fresh == ref
    assert ref.feature_names == FEATURE_NAMES
    for edges, expected in zip(ref.edges, ref.expected, strict=True):
        assert len(edges) + 1 == len(expected)
        assert 8 <= len(edges) <= 9
        assert sum(expected) == pytest.approx(1.0)
    assert Reference.from_json(ref.to_json()) == ref


def test_builtin_reference_when_shipped_file_then_equals_the_computed_one() -> None:
    shipped = Reference.from_json(BUILTIN_REFERENCE.read_text(encoding="utf-8"))
    assert shipped == build_reference(n_ticks=REFERENCE_TICKS), (
        "engine/builtin_reference.json is stale; regenerate: .venv/bin/python -c 'from "
        "engine.strategy.registry import write_builtin_reference as w; w(80_000)'"
    )
    assert builtin_reference(REFERENCE_TICKS) == shipped


def test_builtin_reference_when_file_stale_or_damaged_then_computed(tmp_path: Path) -> None:
    other = tmp_path / "ref.json"
    other.write_text(build_reference(n_ticks=1_000).to_json(), encoding="utf-8")  # other params
    assert builtin_reference(2_000, other) == build_reference(n_ticks=2_000)
    other.write_text("{not json", encoding="utf-8")
    assert builtin_reference(2_000, other) == build_reference(n_ticks=2_000)
    assert builtin_reference(2_000, tmp_path / "missing.json") == build_reference(n_ticks=2_000)


def test_psi_when_fewer_than_min_samples_then_zero() -> None:
    mon = PsiMonitor(build_reference(), window=500, min_samples=200)
    shifted = simulate_features(1, 400, ticks_per_second=0.8)
    for row in shifted[:199]:
        mon.observe(row)
    assert mon.psi() == 0.0
    assert set(mon.per_feature().values()) == {0.0}
    mon.observe(shifted[199])
    assert mon.psi() > 0.3


def test_psi_when_same_process_then_small_and_when_vol_x5_then_large() -> None:
    # A long reference and sample: regimes last tens of seconds, so short windows see a
    # regime mix that differs from the reference even with no drift (see the module notes).
    ref = build_reference(seed=7, n_ticks=100_000)
    same = simulate_features(1, 100_000)
    mon = PsiMonitor(ref, window=len(same))
    for row in same:
        mon.observe(row)
    assert mon.psi() < 0.05
    # Sampling the same market 25x less often multiplies the per-tick volatility by 5.
    shifted = simulate_features(2, 5_000, ticks_per_second=0.8)
    mon = PsiMonitor(ref, window=4_000)
    for row in shifted:
        mon.observe(row)
    assert mon.psi() > 0.3
    assert max(mon.per_feature(), key=mon.per_feature().__getitem__) == "vol_bps"


def test_observe_when_window_full_then_old_samples_evicted() -> None:
    ref = build_reference()
    mon = PsiMonitor(ref, window=2_000, min_samples=200)
    shifted = simulate_features(2, 2_100, ticks_per_second=0.8)
    for row in shifted:
        mon.observe(row)
    assert mon.psi() > 1.0
    shifted_psi = mon.per_feature()["vol_bps"]
    # Once a window of same-process rows went in, the shifted rows no longer count at all.
    same = simulate_features(3, 2_100)[-2_000:]
    for row in same:
        mon.observe(row)
    assert mon.n == 2_000
    assert mon.seen == len(shifted) + 2_000
    for i, name in enumerate(FEATURE_NAMES):
        assert mon.per_feature()[name] == pytest.approx(_psi_direct(ref, i, [r[i] for r in same]))
    assert mon.per_feature()["vol_bps"] < shifted_psi / 2


def _psi_direct(ref: Reference, i: int, values: list[float]) -> float:
    counts = [0] * len(ref.expected[i])
    for v in values:
        counts[bisect_right(ref.edges[i], v)] += 1
    total = 0.0
    for c, e in zip(counts, ref.expected[i], strict=True):
        a, e = max(c / len(values), 1e-4), max(e, 1e-4)
        total += (a - e) * math.log(a / e)
    return total
