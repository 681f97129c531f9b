"""Profiles -> frozen, validated Config: loading, precedence, errors, rendering."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from engine.config.loader import (
    Config,
    ConfigError,
    iter_fields,
    load_config,
    metrics_path,
    render_config,
    render_env_sample,
    resolve_data_dir,
)

SHIPPED = Path(__file__).resolve().parents[3] / "profiles"

ENV_VARS = [
    "SAFE_MODE",
    "MAX_TIME_SKEW_MS",
    "MAX_ERROR_RATE",
    "MAX_SLIPPAGE_BPS",
    "MAX_P95_PLACE_MS",
    "FLATTEN_ON_DAILY_LOSS",
    "RISK_PER_TRADE_PCT",
    "MAX_OPEN_POSITIONS",
    "MAX_TRADES_PER_DAY",
    "MAX_DAILY_DRAWDOWN_PCT",
    "MAX_DATA_STALENESS_MS",
    "DUPE_INTENT_WINDOW_MS",
    "BUDGET_ORDERS_PER_DAY_STRATEGY",
    "BUDGET_ORDERS_PER_DAY_SYMBOL",
    "BUDGET_ORDERS_PER_DAY_ACCOUNT",
    "COOLDOWN_MS",
    "CANARY_NOTIONAL_CAP_PCT",
    "MAX_ORDER_NOTIONAL_USD",
    "MAX_POSITION_NOTIONAL_USD",
    "MAX_GROSS_EXPOSURE_USD",
    "CANARY_SHARE",
    "PROB_MIN",
    "MIN_EXPECTED_RETURN",
    "RISK_MAX",
    "PSI_HALVE",
    "PSI_BLOCK",
    "ENABLE_IDEMPOTENCY",
    "CONFIRM_TIMEOUT_MS",
    "SIM_SEED",
    "SIM_TICKS_PER_SECOND",
    "API_KEY",
    "API_SECRET",
    "NTP_SERVER",
    "METRICS_PATH",
    "METRICS_INTERVAL_S",
    "LIVE_MODE",
    "ENABLE_LIVE_TRADING",
    "LIVE_CONFIRM",
    "READINESS_REQUIRED",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "REGULATORY_DEA",
    "BACKUP_INTERVAL_MIN",
    "NET_SIM_LATENCY_MS",
    "NET_SIM_JITTER_MS",
    "NET_SIM_DROP_RATE",
    "NET_SIM_DISCONNECT_INTERVAL_S",
    "NET_SIM_REORDER_RATE",
    "RECONCILE_INTERVAL_S",
    "CANCEL_ON_DISCONNECT",
    "DECISION_TTL_MS",
]


def _profile(tmp_path: Path, body: str, name: str = "custom") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(body, encoding="utf-8")
    return path


def _load(path: Path, env: dict[str, str] | None = None, **kw: object) -> Config:
    return load_config(str(path), env=env or {}, **kw)  # type: ignore[arg-type]


def _error(path: Path, env: dict[str, str] | None = None, **kw: object) -> str:
    with pytest.raises(ConfigError) as info:
        _load(path, env, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------- shipped profiles


@pytest.mark.parametrize("name", ["paper", "testnet", "live", "staging"])
def test_load_when_shipped_profile_then_valid_and_named(name: str) -> None:
    cfg = load_config(name, env={}, profiles_dir=SHIPPED)
    assert cfg.name == name
    assert cfg.kind == name
    assert cfg.sources["kind"] == f"profile:{cfg.sources['name'].removeprefix('profile:')}"


def test_load_when_shipped_profiles_then_modes_match_spec() -> None:
    paper, testnet, live, staging = (
        load_config(n, env={}, profiles_dir=SHIPPED)
        for n in ("paper", "testnet", "live", "staging")
    )
    assert (paper.venue, paper.feed, paper.offline) == ("paper", "sim", True)
    assert (testnet.venue, testnet.feed, testnet.offline) == ("ccxt", "exchange", True)
    assert testnet.risk.safe_mode
    assert testnet.exchange.rest_url == ""
    assert (live.venue, live.offline, live.risk.safe_mode, live.live.live_mode) == (
        "ccxt",
        False,
        True,
        False,
    )
    assert staging.observer_start
    assert staging.risk.kill_switch_armed_at_start
    assert staging.risk.safe_mode
    assert staging.offline


def test_load_when_shipped_profiles_then_no_secret_is_set() -> None:
    for name in ("paper", "testnet", "live", "staging"):
        cfg = load_config(name, env={}, profiles_dir=SHIPPED)
        for spec in iter_fields():
            if spec.secret:
                assert spec.get(cfg) == "", (name, spec.key)


def test_load_when_profile_empty_then_defaults_everywhere(tmp_path: Path) -> None:
    cfg = _load(_profile(tmp_path, ""))
    assert cfg.symbols == ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    assert cfg.risk.max_trades_per_day == 500
    assert cfg.models.min_expected_return == 0.0002
    assert cfg.live.readiness_required == ("market_data", "recon", "venue", "ntp")
    assert cfg.sources["risk.max_trades_per_day"] == "default"
    assert set(cfg.sources) == {spec.key for spec in iter_fields()}


# ------------------------------------------------------------------------------- error messages


def test_load_when_unknown_key_then_did_you_mean_with_file_and_key(tmp_path: Path) -> None:
    path = _profile(tmp_path, "[risk]\nmax_trade_per_day = 3\n")
    assert _error(path) == (
        f"{path}: risk.max_trade_per_day: unknown key, did you mean 'max_trades_per_day'?"
    )


def test_load_when_unknown_section_then_did_you_mean(tmp_path: Path) -> None:
    path = _profile(tmp_path, "[rsik]\nsafe_mode = true\n")
    assert _error(path) == f"{path}: rsik: unknown section, did you mean 'risk'?"


def test_load_when_unknown_top_level_key_then_did_you_mean(tmp_path: Path) -> None:
    path = _profile(tmp_path, "ofline = true\n")
    assert _error(path) == f"{path}: ofline: unknown key, did you mean 'offline'?"


def test_load_when_unknown_key_without_close_match_then_lists_valid_keys(tmp_path: Path) -> None:
    message = _error(_profile(tmp_path, "[storage]\nzzz = 1\n"))
    assert "storage.zzz: unknown key (valid: flush_interval_ms, memory_limit_mb)" in message


def test_load_when_string_for_int_then_type_error(tmp_path: Path) -> None:
    path = _profile(tmp_path, '[risk]\nmax_open_positions = "3"\n')
    assert _error(path) == f"{path}: risk.max_open_positions: must be an integer (got '3')"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("max_open_positions = true", "risk.max_open_positions: must be an integer (got true)"),
        ("max_open_positions = 2.5", "risk.max_open_positions: must be an integer (got 2.5)"),
        ("max_error_rate = false", "risk.max_error_rate: must be a number (got false)"),
        ("safe_mode = 1", "risk.safe_mode: must be a boolean (true/false) (got 1)"),
    ],
)
def test_load_when_wrong_scalar_type_then_rejected(
    tmp_path: Path, line: str, expected: str
) -> None:
    assert _error(_profile(tmp_path, f"[risk]\n{line}\n")).endswith(expected)


def test_load_when_int_given_for_float_then_accepted_as_float(tmp_path: Path) -> None:
    cfg = _load(_profile(tmp_path, "[risk]\nmax_time_skew_ms = 100\n"))
    assert cfg.risk.max_time_skew_ms == 100.0
    assert isinstance(cfg.risk.max_time_skew_ms, float)


@pytest.mark.parametrize("literal", ["nan", "inf", "-inf"])
def test_load_when_toml_non_finite_then_rejected(tmp_path: Path, literal: str) -> None:
    path = _profile(tmp_path, f"[risk]\nmax_time_skew_ms = {literal}\n")
    assert _error(path) == f"{path}: risk.max_time_skew_ms: must be a finite number (got {literal})"


@pytest.mark.parametrize("raw", ["nan", "inf", "NaN", "-Infinity"])
def test_load_when_env_non_finite_then_rejected(tmp_path: Path, raw: str) -> None:
    message = _error(_profile(tmp_path, ""), env={"MAX_ERROR_RATE": raw})
    assert (
        message == f"env MAX_ERROR_RATE: risk.max_error_rate: must be a finite number (got {raw!r})"
    )


def test_load_when_env_not_a_number_then_names_var_key_and_value(tmp_path: Path) -> None:
    message = _error(_profile(tmp_path, ""), env={"MAX_ERROR_RATE": "abc"})
    assert message == "env MAX_ERROR_RATE: risk.max_error_rate: must be a number (got 'abc')"


def test_load_when_negative_count_then_range_error(tmp_path: Path) -> None:
    path = _profile(tmp_path, "[risk]\nmax_open_positions = -1\n")
    assert _error(path) == f"{path}: risk.max_open_positions: must be >= 0 (got -1)"


@pytest.mark.parametrize(
    ("section", "line", "expected"),
    [
        ("risk", "max_error_rate = 1.5", "risk.max_error_rate: must be <= 1 (got 1.5)"),
        ("risk", "risk_per_trade_pct = 0", "risk.risk_per_trade_pct: must be > 0 (got 0)"),
        ("risk", "risk_per_trade_pct = 100.5", "must be <= 100 (got 100.5)"),
        ("paper", "depth_levels = 0", "paper.depth_levels: must be >= 1 (got 0)"),
        ("sim", "ticks_per_second = 100001", "sim.ticks_per_second: must be <= 100000"),
        ("exchange", "recv_window_ms = 60001", "exchange.recv_window_ms: must be <= 60000"),
        ("oms", 'client_id_prefix = "toolong1"', "oms.client_id_prefix: must match"),
    ],
)
def test_load_when_out_of_range_then_rejected(
    tmp_path: Path, section: str, line: str, expected: str
) -> None:
    assert expected in _error(_profile(tmp_path, f"[{section}]\n{line}\n"))


def test_load_when_bad_choice_then_lists_choices(tmp_path: Path) -> None:
    path = _profile(tmp_path, 'kind = "prod"\n')
    assert _error(path) == (
        f"{path}: kind: must be one of 'paper', 'testnet', 'live', 'staging' (got 'prod')"
    )
    assert "oms.order_type: must be one of 'market', 'limit' (got 'stop')" in _error(
        _profile(tmp_path, '[oms]\norder_type = "stop"\n')
    )


def test_load_when_symbol_not_base_quote_uppercase_then_rejected(tmp_path: Path) -> None:
    message = _error(_profile(tmp_path, 'symbols = ["btc/usdt"]\n'))
    assert "symbols: item 'btc/usdt' must match" in message
    assert "symbols: must have at least 1" in _error(_profile(tmp_path, "symbols = []\n"))


def test_load_when_malformed_toml_then_one_line_with_file_and_position(tmp_path: Path) -> None:
    path = _profile(tmp_path, "[risk]\nsafe_mode = true\nmax_open_positions 3\n[sim\n")
    message = _error(path)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert re.search(r"line 3, column \d+", message)


def test_load_when_profile_missing_then_lists_available(tmp_path: Path) -> None:
    for name in ("alpha", "beta"):
        _profile(tmp_path, "", name)
    with pytest.raises(ConfigError) as info:
        load_config("gamma", env={}, profiles_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "gamma.toml") in message
    assert "not found" in message
    assert "alpha, beta" in message


def test_load_when_profile_sets_derived_name_then_rejected(tmp_path: Path) -> None:
    assert "name: is derived from the profile file name" in _error(
        _profile(tmp_path, 'name = "x"\n')
    )


def test_load_when_section_is_not_a_table_then_rejected(tmp_path: Path) -> None:
    path = _profile(tmp_path, "risk = 3\n")
    assert _error(path) == f"{path}: risk: must be a table [risk] (got 3)"


# ------------------------------------------------------------------------------- cross-field


def test_load_when_psi_halve_not_below_psi_block_then_rejected(tmp_path: Path) -> None:
    path = _profile(tmp_path, "[models]\npsi_halve = 0.4\npsi_block = 0.3\n")
    assert _error(path) == f"{path}: models.psi_halve: must be < models.psi_block (got 0.4 >= 0.3)"


def test_load_when_env_breaks_psi_order_then_env_is_blamed(tmp_path: Path) -> None:
    message = _error(_profile(tmp_path, ""), env={"PSI_BLOCK": "0.1"})
    assert message.startswith("env PSI_BLOCK: models.psi_halve: must be < models.psi_block")


def test_load_when_live_and_offline_then_rejected(tmp_path: Path) -> None:
    path = _profile(tmp_path, 'kind = "live"\nvenue = "ccxt"\noffline = true\n')
    assert _error(path) == f"{path}: offline: kind 'live' cannot be offline (got offline = true)"


def test_load_when_paper_venue_with_non_paper_kind_then_rejected(tmp_path: Path) -> None:
    path = _profile(tmp_path, 'kind = "testnet"\nvenue = "paper"\n')
    assert "venue: venue 'paper' is only allowed with kind 'paper' (got kind 'testnet')" in _error(
        path
    )


# ------------------------------------------------------------------------------- precedence


def test_load_when_env_sets_key_then_value_and_source_change(tmp_path: Path) -> None:
    path = _profile(tmp_path, "[risk]\nmax_trades_per_day = 100\n")
    assert _load(path).sources["risk.max_trades_per_day"] == f"profile:{path}"
    cfg = _load(path, env={"MAX_TRADES_PER_DAY": "42"})
    assert cfg.risk.max_trades_per_day == 42
    assert cfg.sources["risk.max_trades_per_day"] == "env:MAX_TRADES_PER_DAY"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("no", False), ("false", False)],
)
def test_load_when_env_bool_spelled_variously_then_parsed(
    tmp_path: Path, raw: str, expected: bool
) -> None:
    path = _profile(tmp_path, f"[risk]\nsafe_mode = {str(not expected).lower()}\n")
    assert _load(path, env={"SAFE_MODE": raw}).risk.safe_mode is expected


def test_load_when_env_bool_invalid_then_rejected(tmp_path: Path) -> None:
    message = _error(_profile(tmp_path, ""), env={"SAFE_MODE": "maybe"})
    assert message.startswith("env SAFE_MODE: risk.safe_mode: must be a boolean")


def test_load_when_env_list_then_comma_separated(tmp_path: Path) -> None:
    cfg = _load(_profile(tmp_path, ""), env={"READINESS_REQUIRED": " venue , recon ,"})
    assert cfg.live.readiness_required == ("venue", "recon")


def test_load_when_env_empty_then_treated_as_unset(tmp_path: Path) -> None:
    path = _profile(tmp_path, "[risk]\nmax_trades_per_day = 100\n")
    cfg = _load(path, env={"MAX_TRADES_PER_DAY": "", "API_KEY": ""})
    assert cfg.risk.max_trades_per_day == 100
    assert cfg.sources["risk.max_trades_per_day"] == f"profile:{path}"


def test_load_when_overrides_given_then_beat_env_and_are_validated(tmp_path: Path) -> None:
    path = _profile(tmp_path, "[risk]\nmax_trades_per_day = 100\n")
    cfg = _load(
        path,
        env={"MAX_TRADES_PER_DAY": "42"},
        overrides={"risk.max_trades_per_day": 7, "sim.seed": "9", "offline": False},
    )
    assert (cfg.risk.max_trades_per_day, cfg.sim.seed, cfg.offline) == (7, 9, False)
    assert cfg.sources["risk.max_trades_per_day"] == "override"
    assert cfg.sources["sim.seed"] == "override"
    bad = _error(path, overrides={"risk.max_trades_per_day": -5})
    assert bad == "override: risk.max_trades_per_day: must be >= 0 (got -5)"
    typo = _error(path, overrides={"risk.max_trade_per_day": 1})
    assert typo.endswith("unknown key, did you mean 'risk.max_trades_per_day'?")


def test_load_when_exec_profile_set_then_picks_that_profile(tmp_path: Path) -> None:
    _profile(tmp_path, 'kind = "staging"\nvenue = "ccxt"\n', "mirror")
    _profile(tmp_path, "", "paper")
    cfg = load_config(env={"EXEC_PROFILE": "mirror"}, profiles_dir=tmp_path)
    assert (cfg.name, cfg.kind) == ("mirror", "staging")
    assert load_config(env={}, profiles_dir=tmp_path).name == "paper"
    explicit = load_config("paper", env={"EXEC_PROFILE": "mirror"}, profiles_dir=tmp_path)
    assert explicit.name == "paper"


def test_load_when_profiles_dir_from_env_then_used(tmp_path: Path) -> None:
    _profile(tmp_path, "[sim]\nseed = 5\n", "paper")
    cfg = load_config(env={"COCKPIT_PROFILES_DIR": str(tmp_path)})
    assert cfg.sim.seed == 5


def test_load_when_profile_is_a_path_then_loaded_and_named_by_stem(tmp_path: Path) -> None:
    path = _profile(tmp_path, "[sim]\nseed = 11\n", "my-run")
    cfg = load_config(str(path), env={}, profiles_dir=tmp_path / "nowhere")
    assert (cfg.name, cfg.sim.seed) == ("my-run", 11)
    assert cfg.sources["sim.seed"] == f"profile:{path}"


# ------------------------------------------------------------------------------- rendering


def test_render_config_when_secret_set_via_env_then_redacted_and_sources_shown(
    tmp_path: Path,
) -> None:
    path = _profile(tmp_path, "[risk]\nmax_open_positions = 2\n")
    env = {"API_SECRET": "supersecret123", "TELEGRAM_BOT_TOKEN": "tok-999", "SIM_SEED": "3"}
    cfg = _load(path, env=env)
    text = render_config(cfg)
    assert "supersecret123" not in text
    assert "tok-999" not in text
    assert "supersecret123" not in repr(cfg)
    lines = {line.split(" = ")[0]: line for line in text.splitlines() if " = " in line}
    assert lines["exchange.api_secret"].split("#")[0].strip().endswith('"***"')
    assert "# env:API_SECRET" in lines["exchange.api_secret"]
    assert lines["exchange.api_key"].split("#")[0].strip().endswith('""')
    assert lines["risk.max_open_positions"].endswith(f"# profile:{path}; range [0, 10000]")
    assert lines["sim.seed"].endswith("# env:SIM_SEED; range [0, 4294967295]")
    assert lines["risk.cooldown_ms"].endswith("# default; range [0, 86400000]")
    assert lines["kind"].endswith("# default")  # not a number: no range
    assert len(lines) == len(iter_fields())


def test_render_config_when_secret_invalid_then_error_does_not_echo_it(tmp_path: Path) -> None:
    message = _error(_profile(tmp_path, "[exchange]\napi_key = 123456789\n"))
    assert "123456789" not in message
    assert "exchange.api_key: secrets do not belong" in message


def test_render_env_sample_when_generated_then_every_env_var_once_commented_with_doc() -> None:
    sample = render_env_sample()
    assert sample.endswith("\n")
    lines = sample.splitlines()
    # Nothing is assigned as generated: a copied sample must never override a profile.
    assert not [line for line in lines if re.match(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=", line)]
    assignments = [line for line in lines if re.match(r"^# [A-Z][A-Z0-9_]*=", line)]
    env_fields = [spec for spec in iter_fields() if spec.env]
    assert len(assignments) == len(env_fields)
    for var in ENV_VARS:
        assert sum(line.startswith(f"# {var}=") for line in lines) == 1, var
    assert {a[2:].split("=", 1)[0] for a in assignments} == set(ENV_VARS)
    for i, line in enumerate(lines):
        if line in assignments:
            doc = lines[i - 1]  # the doc line sits right above
            assert doc.startswith("# ")
            assert doc not in assignments
    assert "# SAFE_MODE=false" in lines
    assert "# MAX_ERROR_RATE=0.01" in lines
    assert "# READINESS_REQUIRED=market_data,recon,venue,ntp" in lines
    assert "# API_SECRET=" in lines
    assert "# TELEGRAM_BOT_TOKEN=" in lines
    assert any("(risk.max_error_rate, float, in [0, 1], default 0.01)" in line for line in lines)
    assert any("uncommenting a line overrides the profile" in line.lower() for line in lines)


# ------------------------------------------------------------------------------- paths, immutability


def test_resolve_data_dir_when_sources_vary_then_cli_beats_env_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"COCKPIT_DATA_DIR": str(tmp_path / "from-env")}
    assert resolve_data_dir(str(tmp_path / "cli"), env) == tmp_path / "cli"
    assert resolve_data_dir(None, env) == tmp_path / "from-env"
    assert resolve_data_dir(None, {}) == tmp_path / "data"
    assert resolve_data_dir("rel", {}).is_absolute()


def test_metrics_path_when_unset_then_under_data_dir_else_configured(tmp_path: Path) -> None:
    path = _profile(tmp_path, "")
    assert metrics_path(_load(path), tmp_path) == tmp_path / "metrics" / "metrics.prom"
    custom = tmp_path / "m.prom"
    assert metrics_path(_load(path, env={"METRICS_PATH": str(custom)}), tmp_path) == custom


def test_config_when_assigned_then_frozen(tmp_path: Path) -> None:
    cfg = _load(_profile(tmp_path, ""))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.risk.safe_mode = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.kind = "live"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.sources["kind"] = "override"  # type: ignore[index]
    assert hash(cfg) == hash(_load(_profile(tmp_path, "")))
