"""Profiles parsed into frozen, validated configuration structs.

Role: turn a profile TOML file (``profiles/<name>.toml``), environment variables and explicit
overrides into one immutable :class:`Config`. Precedence, lowest first:
defaults < profile file < environment < overrides.

Invariants:
- Every key is declared exactly once, as a dataclass field whose ``metadata`` carries its doc,
  env var, secret flag and validation rules. The loader, ``config show`` (:func:`render_config`)
  and the env sample (:func:`render_env_sample`) are generated from those declarations; there is
  no second list of keys anywhere.
- A ``Config`` that exists is valid. Unknown keys/sections, wrong types, NaN/inf, out-of-range
  values, bad choices and cross-field contradictions raise :class:`ConfigError`, whose ``str()``
  is one line naming the origin (file, env var or override), the dotted key and the value.
- Structs are frozen; ``Config.sources`` records, for every dotted key, where its value came from:
  ``default``, ``profile:<path>``, ``env:<VAR>`` or ``override``.
- Secret values never appear in ``repr()``, error messages or rendered output.
- Stdlib only: the engine never imports UI packages.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin, get_type_hints

KINDS = ("paper", "testnet", "live", "staging")
VENUES = ("paper", "ccxt")
FEEDS = ("sim", "exchange")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(Exception):
    """Invalid configuration. ``str(err)`` is one line: ``<origin>: <dotted.key>: <problem>``."""

    def __init__(self, problem: str, *, origin: str | None = None, key: str | None = None) -> None:
        self.origin = origin
        self.key = key
        self.problem = problem
        # One line even when the problem quotes a multi-line parser message.
        text = ": ".join(p for p in (origin, key, problem) if p)
        super().__init__(" ".join(text.split()))


_RANGE = re.compile(r"([\[(])\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*([\])])|(>=?|<=?)\s*(-?[\d.]+)")


def _f(
    default: Any, doc: str, env: str | None = None, *, secret: bool = False, **rules: Any
) -> Any:
    """Declare a config field once: default, doc, env var, secret flag and validation rules.

    Rules: ``rng`` (``"[0, 1]"``, ``"(0, 100]"``, ``">= 0"``, ``"> 0"``; stored as ``min``/``max``/
    ``min_exclusive``/``max_exclusive``), ``choices``, ``pattern`` (full match), ``nonempty``,
    ``item_pattern``, ``unique``, ``min_items``. Secrets get ``repr=False`` so a logged Config
    cannot leak them.
    """
    meta: dict[str, Any] = {"doc": doc, "env": env, "secret": secret, **rules}
    if "rng" in rules:
        m = _RANGE.fullmatch(rules["rng"])
        if m is None:
            raise ValueError(f"bad range {rules['rng']!r}")
        if m[1]:
            meta.update(min=float(m[2]), min_exclusive=m[1] == "(")
            meta.update(max=float(m[3]), max_exclusive=m[4] == ")")
        else:
            side = "min" if m[5].startswith(">") else "max"
            meta.update({side: float(m[6]), f"{side}_exclusive": "=" not in m[5]})
    return field(default=default, repr=not secret, metadata=meta)


# --------------------------------------------------------------------------------------- sections
# One dataclass per TOML section. Each field is the single declaration of its key.


@dataclass(frozen=True, slots=True)
class RiskConfig:
    safe_mode: bool = _f(False, "Block every new order (cancels still allowed)", "SAFE_MODE")
    kill_switch_armed_at_start: bool = _f(False, "Start with the kill switch armed")
    max_time_skew_ms: float = _f(
        500.0, "Max host/venue clock skew before halting, ms", "MAX_TIME_SKEW_MS", rng=">= 0"
    )
    max_error_rate: float = _f(
        0.01, "Max venue error rate, fraction", "MAX_ERROR_RATE", rng="[0, 1]"
    )
    max_slippage_bps: float = _f(25.0, "Max expected slippage, bps", "MAX_SLIPPAGE_BPS", rng=">= 0")
    risk_per_trade_pct: float = _f(
        0.5, "Equity risked per trade, percent", "RISK_PER_TRADE_PCT", rng="(0, 100]"
    )
    max_open_positions: int = _f(3, "Max open positions", "MAX_OPEN_POSITIONS", rng=">= 0")
    max_trades_per_day: int = _f(500, "Max trades per UTC day", "MAX_TRADES_PER_DAY", rng=">= 0")
    max_daily_drawdown_pct: float = _f(
        1.0, "Daily drawdown that halts trading, percent", "MAX_DAILY_DRAWDOWN_PCT", rng="(0, 100]"
    )
    max_data_staleness_ms: float = _f(
        1000.0, "Older market data blocks orders, ms", "MAX_DATA_STALENESS_MS", rng="> 0"
    )
    dupe_intent_window_ms: float = _f(
        500.0,
        "Identical intents in this window are dropped, ms",
        "DUPE_INTENT_WINDOW_MS",
        rng=">= 0",
    )
    budget_orders_per_day_strategy: int = _f(
        300, "Orders per strategy per day", "BUDGET_ORDERS_PER_DAY_STRATEGY", rng=">= 0"
    )
    budget_orders_per_day_symbol: int = _f(
        200, "Orders per symbol per day", "BUDGET_ORDERS_PER_DAY_SYMBOL", rng=">= 0"
    )
    budget_orders_per_day_account: int = _f(
        500, "Orders per account per day", "BUDGET_ORDERS_PER_DAY_ACCOUNT", rng=">= 0"
    )
    cooldown_ms: float = _f(
        0.0, "Pause after a fill before the next order, ms", "COOLDOWN_MS", rng=">= 0"
    )
    canary_notional_cap_pct: float = _f(
        25.0,
        "Canary notional cap, percent of champion's",
        "CANARY_NOTIONAL_CAP_PCT",
        rng="[0, 100]",
    )
    max_order_notional_usd: float = _f(
        5000.0, "Max notional of one order, USD", "MAX_ORDER_NOTIONAL_USD", rng="> 0"
    )


_MODEL_ID = r"[A-Za-z0-9_.-]+"


@dataclass(frozen=True, slots=True)
class ModelsConfig:
    champion: str = _f("trend_v1", "Champion model id", pattern=_MODEL_ID)
    challenger: str = _f("meanrev_v1", "Challenger (canary) model id", pattern=_MODEL_ID)
    canary_share: float = _f(
        0.05, "Share of decisions to the challenger", "CANARY_SHARE", rng="[0, 1]"
    )
    prob_min: float = _f(0.55, "Min model probability to act", "PROB_MIN", rng="[0, 1]")
    min_expected_return: float = _f(
        0.0002, "Min expected return, fraction (0.0002 = 2 bps)", "MIN_EXPECTED_RETURN", rng=">= 0"
    )
    risk_max: float = _f(
        0.6, "Max per-tick volatility (EW std of log returns) to trade, bps", "RISK_MAX", rng=">= 0"
    )
    decision_interval_ms: float = _f(1000.0, "Interval between model decisions, ms", rng="> 0")
    psi_halve: float = _f(0.2, "Feature drift (PSI) that halves size", "PSI_HALVE", rng=">= 0")
    psi_block: float = _f(0.3, "Feature drift (PSI) that blocks entries", "PSI_BLOCK", rng=">= 0")


@dataclass(frozen=True, slots=True)
class OmsConfig:
    enable_idempotency: bool = _f(True, "Dedupe orders by client id", "ENABLE_IDEMPOTENCY")
    order_type: str = _f("market", "Order type sent to the venue", choices=("market", "limit"))
    confirm_timeout_ms: float = _f(
        5000.0, "Unconfirmed orders are reconciled after, ms", "CONFIRM_TIMEOUT_MS", rng="> 0"
    )
    client_id_prefix: str = _f("ck", "Client order id prefix", pattern=r"[A-Za-z0-9]{1,6}")


@dataclass(frozen=True, slots=True)
class PaperConfig:
    starting_balance_usd: float = _f(100000.0, "Paper starting balance, USD", rng="> 0")
    maker_fee_bps: float = _f(1.0, "Paper maker fee, bps", rng=">= 0")
    taker_fee_bps: float = _f(7.5, "Paper taker fee, bps", rng=">= 0")
    latency_ms_mean: float = _f(15.0, "Paper mean order latency, ms", rng=">= 0")
    latency_ms_jitter: float = _f(5.0, "Paper latency jitter, ms", rng=">= 0")
    depth_levels: int = _f(10, "Order book levels matched against", rng="[1, 100]")


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int = _f(42, "Market simulator seed (same seed, same ticks)", "SIM_SEED", rng=">= 0")
    ticks_per_second: float = _f(
        20.0, "Simulated ticks per second, per symbol", "SIM_TICKS_PER_SECOND", rng="(0, 100000]"
    )
    trade_prob: float = _f(0.3, "Probability that a tick is a trade", rng="[0, 1]")


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    id: str = _f("binance", "ccxt exchange id", pattern=r"[a-z0-9_]+")
    rest_url: str = _f("", "REST endpoint (empty = exchange default)", pattern=r"(https?://\S+)?")
    ws_url: str = _f("", "Websocket endpoint (empty = exchange default)", pattern=r"(wss?://\S+)?")
    api_key: str = _f("", "Venue API key", "API_KEY", secret=True)
    api_secret: str = _f("", "Venue API secret", "API_SECRET", secret=True)
    recv_window_ms: int = _f(5000, "Venue receive window, ms", rng="[1, 60000]")
    timeout_ms: int = _f(3000, "Venue request timeout, ms", rng="> 0")


@dataclass(frozen=True, slots=True)
class ClockConfig:
    ntp_server: str = _f("", "SNTP server for skew checks (empty = venue time)", "NTP_SERVER")
    skew_check_interval_s: float = _f(30.0, "Interval between skew checks, s", rng="> 0")


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    path: str = _f(
        "", "Prometheus textfile (empty = <data-dir>/metrics/metrics.prom)", "METRICS_PATH"
    )
    interval_s: float = _f(5.0, "Metrics write interval, s", "METRICS_INTERVAL_S", rng="> 0")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    flush_interval_ms: float = _f(100.0, "Journal flush interval, ms", rng="> 0")


@dataclass(frozen=True, slots=True)
class LiveConfig:
    live_mode: bool = _f(False, "Live gate 1: live mode requested", "LIVE_MODE")
    enable_live_trading: bool = _f(False, "Live gate 2: live orders enabled", "ENABLE_LIVE_TRADING")
    live_confirm: str = _f(
        "I_UNDERSTAND_LIVE_TRADING", "Phrase typed to go live", "LIVE_CONFIRM", nonempty=True
    )
    readiness_required: tuple[str, ...] = _f(
        ("market_data", "recon", "venue"),
        "Readiness checks that must be green before live orders",
        "READINESS_REQUIRED",
        item_pattern=r"[a-z0-9_]+",
        unique=True,
    )


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    telegram_bot_token: str = _f("", "Telegram bot token", "TELEGRAM_BOT_TOKEN", secret=True)
    telegram_chat_id: str = _f("", "Telegram chat id for alerts", "TELEGRAM_CHAT_ID")


@dataclass(frozen=True, slots=True)
class Config:
    """The effective configuration. Frozen; build it with :func:`load_config`."""

    name: str = _f("paper", "Profile name (the profile file's stem)", derived=True)
    kind: str = _f("paper", "Profile kind", choices=KINDS)
    venue: str = _f("paper", "Execution venue", choices=VENUES)
    feed: str = _f("sim", "Market data feed", choices=FEEDS)
    offline: bool = _f(False, "No network: ccxt talks to the loopback venue simulator")
    symbols: tuple[str, ...] = _f(
        ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
        "Traded symbols, BASE/QUOTE uppercase",
        item_pattern=r"[A-Z0-9]+/[A-Z0-9]+",
        unique=True,
        min_items=1,
    )
    observer_start: bool = _f(False, "Start as observer (no strategy orders until promoted)")
    risk: RiskConfig = field(default_factory=RiskConfig, metadata={"doc": "Pre-trade risk limits"})
    models: ModelsConfig = field(default_factory=ModelsConfig, metadata={"doc": "Models, drift"})
    oms: OmsConfig = field(default_factory=OmsConfig, metadata={"doc": "Order management"})
    paper: PaperConfig = field(default_factory=PaperConfig, metadata={"doc": "Paper venue"})
    sim: SimConfig = field(default_factory=SimConfig, metadata={"doc": "Market simulator"})
    # Named [exchange], not [venue]: the top-level ``venue`` key holds the venue choice, and TOML
    # cannot have both ``venue = "ccxt"`` and a ``[venue]`` table in one file.
    exchange: ExchangeConfig = field(
        default_factory=ExchangeConfig, metadata={"doc": "Exchange connection (ccxt)"}
    )
    clock: ClockConfig = field(default_factory=ClockConfig, metadata={"doc": "Clock skew checks"})
    metrics: MetricsConfig = field(default_factory=MetricsConfig, metadata={"doc": "Metrics file"})
    storage: StorageConfig = field(default_factory=StorageConfig, metadata={"doc": "Journal"})
    live: LiveConfig = field(default_factory=LiveConfig, metadata={"doc": "Live trading gates"})
    alerts: AlertsConfig = field(default_factory=AlertsConfig, metadata={"doc": "Alert channels"})
    # Not a config key: provenance of every dotted key, excluded from equality and hashing.
    sources: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}),
        compare=False,
        repr=False,
        metadata={"internal": True},
    )


# ---------------------------------------------------------------------------------------- schema


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One configuration key, derived from the dataclass declarations (never written by hand)."""

    section: str | None  # None for top-level keys
    name: str
    type: Any  # bool, int, float, str or tuple[str, ...]
    default: object
    meta: Mapping[str, Any]

    @property
    def key(self) -> str:
        return self.name if self.section is None else f"{self.section}.{self.name}"

    @property
    def env(self) -> str | None:
        env: str | None = self.meta.get("env")
        return env

    @property
    def secret(self) -> bool:
        return bool(self.meta.get("secret", False))

    @property
    def is_list(self) -> bool:
        return get_origin(self.type) is tuple

    def get(self, cfg: Config) -> Any:
        holder = cfg if self.section is None else getattr(cfg, self.section)
        return getattr(holder, self.name)


def _specs_of(cls: type, section: str | None) -> list[FieldSpec]:
    hints = get_type_hints(cls)
    out = []
    for f in fields(cls):
        hint = hints[f.name]
        if f.metadata.get("internal") or is_dataclass(hint):
            continue
        if get_origin(hint) is tuple and get_args(hint) != (str, Ellipsis):
            raise TypeError(f"{cls.__name__}.{f.name}: only tuple[str, ...] lists are supported")
        default = f.default if f.default is not MISSING else None
        out.append(FieldSpec(section, f.name, hint, default, f.metadata))
    return out


@cache
def section_types() -> Mapping[str, type]:
    """Section name -> section dataclass, in declaration order."""
    hints = get_type_hints(Config)
    return MappingProxyType(
        {f.name: hints[f.name] for f in fields(Config) if is_dataclass(hints[f.name])}
    )


@cache
def iter_fields() -> tuple[FieldSpec, ...]:
    """Every configuration key: top-level keys first, then each section's, in declaration order."""
    specs = _specs_of(Config, None)
    for name, cls in section_types().items():
        specs.extend(_specs_of(cls, name))
    return tuple(specs)


@cache
def _by_key() -> Mapping[str, FieldSpec]:
    return MappingProxyType({s.key: s for s in iter_fields()})


# ------------------------------------------------------------------------------------ validation


def _shown(spec: FieldSpec, value: object) -> str:
    """The offending value as quoted in an error; secrets are never echoed."""
    if spec.secret:
        return "<redacted>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _coerce(spec: FieldSpec, value: object, origin: str) -> Any:
    """Check a typed value (from TOML or a Python override) and return it in canonical form."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{problem} (got {_shown(spec, value)})", origin=origin, key=spec.key)

    t = spec.type
    out: Any = value
    # bool is a subclass of int in Python; a config `true` where a number belongs is a mistake.
    if t is bool:
        if not isinstance(value, bool):
            raise fail("must be a boolean (true/false)")
    elif t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("must be an integer")
    elif t is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("must be a number")
        out = float(value)
        if not math.isfinite(out):
            raise fail("must be a finite number")
    elif t is str:
        if not isinstance(value, str):
            raise fail("must be a string")
    elif spec.is_list:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise fail("must be a list of strings")
        out = tuple(value)
    else:  # pragma: no cover - guarded by _specs_of
        raise TypeError(f"unsupported config type {t!r}")
    _check_rules(spec, out, fail)
    return out


def _check_rules(spec: FieldSpec, value: Any, fail: Any) -> None:
    m = spec.meta
    if isinstance(value, int | float) and not isinstance(value, bool):
        lo, hi = m.get("min"), m.get("max")
        if lo is not None:
            if m.get("min_exclusive") and not value > lo:
                raise fail(f"must be > {lo:g}")
            if not value >= lo:
                raise fail(f"must be >= {lo:g}")
        if hi is not None:
            if m.get("max_exclusive") and not value < hi:
                raise fail(f"must be < {hi:g}")
            if not value <= hi:
                raise fail(f"must be <= {hi:g}")
    if "choices" in m and value not in m["choices"]:
        raise fail("must be one of " + ", ".join(repr(c) for c in m["choices"]))
    if "pattern" in m and not re.fullmatch(m["pattern"], value):
        raise fail(f"must match ^{m['pattern']}$")
    if m.get("nonempty") and not value:
        raise fail("must not be empty")
    if spec.is_list:
        if len(value) < m.get("min_items", 0):
            raise fail(f"must have at least {m['min_items']} item(s)")
        for item in value:
            if "item_pattern" in m and not re.fullmatch(m["item_pattern"], item):
                raise fail(f"item {item!r} must match ^{m['item_pattern']}$")
        if m.get("unique") and len(set(value)) != len(value):
            raise fail("must not contain duplicates")


def _parse_text(spec: FieldSpec, raw: str, origin: str) -> Any:
    """Parse a string (env var or CLI override) into the key's type, then validate it."""
    text = raw.strip()
    t = spec.type

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{problem} (got {_shown(spec, raw)})", origin=origin, key=spec.key)

    value: Any
    if t is bool:
        low = text.lower()
        if low not in _TRUE | _FALSE:
            raise fail("must be a boolean (0/1/true/false/yes/no)")
        value = low in _TRUE
    elif t is int:
        try:
            value = int(text)
        except ValueError:
            raise fail("must be an integer") from None
    elif t is float:
        try:
            value = float(text)
        except ValueError:
            raise fail("must be a number") from None
        if not math.isfinite(value):
            raise fail("must be a finite number")
    elif spec.is_list:
        value = tuple(part.strip() for part in text.split(",") if part.strip())
    else:
        value = text
    return _coerce(spec, value, origin)


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    if close:
        return f", did you mean {close[0]!r}?"
    return f" (valid: {', '.join(candidates)})"


# ---------------------------------------------------------------------------------------- loading


def _display(path: Path) -> str:
    """Path as shown in messages and sources: relative to the cwd when under it."""
    full = path.expanduser().absolute()
    try:
        return str(full.relative_to(Path.cwd()))
    except ValueError:
        return str(full)


def _default_profiles_dir(env: Mapping[str, str]) -> Path:
    configured = env.get("COCKPIT_PROFILES_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[1] / "profiles"


def _resolve_profile(profile: str, profiles_dir: Path) -> Path:
    if profile.endswith(".toml") or "/" in profile or os.sep in profile:
        path = Path(profile).expanduser()
    elif _PROFILE_NAME.fullmatch(profile):
        path = profiles_dir / f"{profile}.toml"
    else:
        raise ConfigError(f"invalid profile name {profile!r}", origin="profile")
    if not path.is_file():
        found = sorted(p.stem for p in profiles_dir.glob("*.toml")) if profiles_dir.is_dir() else []
        listing = ", ".join(found) if found else "none"
        raise ConfigError(
            f"profile {profile!r} not found (available in {_display(profiles_dir)}: {listing})",
            origin=_display(path),
        )
    return path


def _read_toml(path: Path, shown: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", origin=shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read profile: {exc}", origin=shown) from None


def _apply_profile(
    data: Mapping[str, Any], shown: str, values: dict[str, Any], sources: dict[str, str]
) -> None:
    specs = _by_key()
    sections = list(section_types())
    top = [s.name for s in iter_fields() if s.section is None]
    for key, value in data.items():
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"must be a table [{key}] (got {value!r})", origin=shown, key=key)
            names = [s.name for s in iter_fields() if s.section == key]
            for sub, sub_value in value.items():
                spec = specs.get(f"{key}.{sub}")
                if spec is None:
                    hint = _suggest(sub, names)
                    raise ConfigError(f"unknown key{hint}", origin=shown, key=f"{key}.{sub}")
                values[spec.key] = _coerce(spec, sub_value, shown)
                sources[spec.key] = f"profile:{shown}"
        elif key in top:
            spec = specs[key]
            if spec.meta.get("derived"):
                raise ConfigError(
                    "is derived from the profile file name; remove it",
                    origin=shown,
                    key=key,
                )
            values[key] = _coerce(spec, value, shown)
            sources[key] = f"profile:{shown}"
        elif isinstance(value, dict):
            raise ConfigError(f"unknown section{_suggest(key, sections)}", origin=shown, key=key)
        else:
            raise ConfigError(f"unknown key{_suggest(key, top + sections)}", origin=shown, key=key)


def _apply_env(env: Mapping[str, str], values: dict[str, Any], sources: dict[str, str]) -> None:
    for spec in iter_fields():
        var = spec.env
        # An empty variable counts as unset, so a copied env sample with blank secrets is inert.
        if var is None or not env.get(var):
            continue
        values[spec.key] = _parse_text(spec, env[var], f"env {var}")
        sources[spec.key] = f"env:{var}"


def _apply_overrides(
    overrides: Mapping[str, object], values: dict[str, Any], sources: dict[str, str]
) -> None:
    specs = _by_key()
    for key, value in overrides.items():
        spec = specs.get(key)
        if spec is None or spec.meta.get("derived"):
            candidates = [k for k, s in specs.items() if not s.meta.get("derived")]
            raise ConfigError(f"unknown key{_suggest(key, candidates)}", origin="override", key=key)
        # Strings come from the CLI (e.g. --seed 7) and get the same parsing as env values.
        if isinstance(value, str) and spec.type is not str:
            values[key] = _parse_text(spec, value, "override")
        else:
            values[key] = _coerce(spec, value, "override")
        sources[key] = "override"


def _origin(source: str) -> str:
    if source.startswith("profile:"):
        return source.removeprefix("profile:")
    if source.startswith("env:"):
        return "env " + source.removeprefix("env:")
    return "defaults" if source == "default" else source


def _cross_check(cfg: Config) -> None:
    src = cfg.sources

    def origin_of(*keys: str) -> str:
        # Blame the highest-precedence layer that set one of the keys involved.
        rank = {"override": 3, "env": 2, "profile": 1}
        best = max(keys, key=lambda k: rank.get(src[k].split(":", 1)[0], 0))
        return _origin(src[best])

    m = cfg.models
    if not m.psi_halve < m.psi_block:
        raise ConfigError(
            f"must be < models.psi_block (got {m.psi_halve!r} >= {m.psi_block!r})",
            origin=origin_of("models.psi_halve", "models.psi_block"),
            key="models.psi_halve",
        )
    if cfg.kind == "live" and cfg.offline:
        raise ConfigError(
            "kind 'live' cannot be offline (got offline = true)",
            origin=origin_of("kind", "offline"),
            key="offline",
        )
    if cfg.venue == "paper" and cfg.kind != "paper":
        raise ConfigError(
            f"venue 'paper' is only allowed with kind 'paper' (got kind {cfg.kind!r})",
            origin=origin_of("venue", "kind"),
            key="venue",
        )


def _build(values: Mapping[str, Any], sources: Mapping[str, str]) -> Config:
    top = {s.name: values[s.key] for s in iter_fields() if s.section is None}
    sections = {
        name: cls(**{s.name: values[s.key] for s in iter_fields() if s.section == name})
        for name, cls in section_types().items()
    }
    return Config(**top, **sections, sources=MappingProxyType(dict(sources)))


def load_config(
    profile: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    profiles_dir: Path | None = None,
) -> Config:
    """Load ``profile`` (a name in ``profiles_dir`` or a ``.toml`` path) + env + overrides.

    ``profile`` None means env ``EXEC_PROFILE``, else ``paper``. ``env`` defaults to
    ``os.environ``; ``profiles_dir`` to env ``COCKPIT_PROFILES_DIR``, else ``<repo>/profiles``.
    Raises :class:`ConfigError` (one line) on any invalid input.
    """
    env_map: Mapping[str, str] = os.environ if env is None else env
    pdir = profiles_dir if profiles_dir is not None else _default_profiles_dir(env_map)
    path = _resolve_profile(profile or env_map.get("EXEC_PROFILE") or "paper", pdir)
    shown = _display(path)
    values: dict[str, Any] = {s.key: s.default for s in iter_fields()}
    sources: dict[str, str] = {s.key: "default" for s in iter_fields()}
    values["name"], sources["name"] = path.stem, f"profile:{shown}"
    _apply_profile(_read_toml(path, shown), shown, values, sources)
    _apply_env(env_map, values, sources)
    _apply_overrides(overrides or {}, values, sources)
    cfg = _build(values, sources)
    _cross_check(cfg)
    return cfg


def resolve_data_dir(cli_value: str | None, env: Mapping[str, str] | None = None) -> Path:
    """Data directory: CLI value, else env ``COCKPIT_DATA_DIR``, else ``./data``; absolute."""
    env_map: Mapping[str, str] = os.environ if env is None else env
    chosen = cli_value or env_map.get("COCKPIT_DATA_DIR") or "data"
    return Path(chosen).expanduser().absolute()


def metrics_path(cfg: Config, data_dir: Path) -> Path:
    """Prometheus textfile: ``metrics.path`` if set (relative = to the cwd), else in the data dir."""
    if cfg.metrics.path:
        return Path(cfg.metrics.path).expanduser().absolute()
    return data_dir / "metrics" / "metrics.prom"


def render_config(cfg: Config) -> str:
    """Effective configuration, one ``key = value  # source`` line per key, secrets redacted."""
    # Imported lazily: config_render imports this module, and most callers never render.
    from engine.config_render import render_config as render

    return render(cfg)


def render_env_sample() -> str:
    """Documented ``.env`` sample generated from the field declarations."""
    from engine.config_render import render_env_sample as render

    return render()
