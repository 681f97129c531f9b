"""The configuration schema: the one place every key is declared and documented.

Role: declare each TOML section as a frozen dataclass whose fields carry, in ``metadata``, the
key's doc, env var, secret flag and validation rules (via ``fields.config_field``), whose flat list of
keys :mod:`engine.config.schema` derives (``iter_fields``) for the loader and the renderers.

Invariants:
- Every key is declared exactly once, here; there is no second list of keys anywhere. Adding a
  field to a section dataclass is all it takes to make it loadable, validated, shown by
  ``config show`` and (when it has an env var) listed in the env sample.
- Structs are frozen and slotted. Secret fields are ``repr=False`` so a logged Config cannot
  leak them.
- Only ``bool``, ``int``, ``float``, ``str`` and ``tuple[str, ...]`` fields are supported;
  ``schema.iter_fields`` raises ``TypeError`` on anything else, and on a number declared without a
  two-sided range (``rng="[lo, hi]"``): every numeric key is refused outside a documented range.
- No parsing or validation logic lives here (see :mod:`engine.config.loader`). Stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.config.fields import config_field as _f

KINDS = ("paper", "testnet", "live", "staging")
VENUES = ("paper", "ccxt")
FEEDS = ("sim", "exchange")

# --------------------------------------------------------------------------------------- sections
# One dataclass per TOML section. Each field is the single declaration of its key.


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """[risk]: the kill switch and safe mode at start, and every limit the gates enforce."""

    safe_mode: bool = _f(False, "Block every new order (cancels still allowed)", "SAFE_MODE")
    kill_switch_armed_at_start: bool = _f(False, "Start with the kill switch armed")
    max_time_skew_ms: float = _f(
        500.0, "Max host/venue clock skew before halting, ms", "MAX_TIME_SKEW_MS", rng="[0, 60000]"
    )
    max_error_rate: float = _f(
        0.01,
        "Rejected-order share that trips the error-rate breaker",
        "MAX_ERROR_RATE",
        rng="[0, 1]",
        hot=True,
    )
    max_slippage_bps: float = _f(
        25.0,
        "Slippage p95 that trips the slippage breaker, bps",
        "MAX_SLIPPAGE_BPS",
        rng="[0, 10000]",
        hot=True,
    )
    breaker_min_sample: int = _f(
        20, "Orders (fills) a breaker needs before it judges a window", rng="[1, 100000]"
    )
    max_p95_place_ms: float = _f(
        300.0,
        "p95 place latency that blocks new orders (SLO gate), ms",
        "MAX_P95_PLACE_MS",
        rng="(0, 600000]",
        hot=True,
    )
    slo_window_s: float = _f(
        300.0, "SLO gate: acks counted in its p95, s", rng="(0, 86400]", hot=True
    )
    slo_stale_ms: float = _f(
        10000.0,
        "SLO gate: sent orders with no venue answer this long = stale p95, ms",
        rng="(0, 3600000]",
        hot=True,
    )
    risk_per_trade_pct: float = _f(
        0.5, "Equity risked per trade, percent", "RISK_PER_TRADE_PCT", rng="(0, 100]", hot=True
    )
    max_open_positions: int = _f(
        3, "Max open positions", "MAX_OPEN_POSITIONS", rng="[0, 10000]", hot=True
    )
    max_trades_per_day: int = _f(
        500, "Max trades per UTC day", "MAX_TRADES_PER_DAY", rng="[0, 100000000]", hot=True
    )
    max_daily_drawdown_pct: float = _f(
        1.0,
        "Daily drawdown that halts trading, percent",
        "MAX_DAILY_DRAWDOWN_PCT",
        rng="(0, 100]",
        hot=True,
    )
    flatten_on_daily_loss: bool = _f(
        False,
        "When MAX_DAILY_DRAWDOWN_PCT trips: reduce-only mode and close every position at market",
        "FLATTEN_ON_DAILY_LOSS",
    )
    max_data_staleness_ms: float = _f(
        1000.0, "Older market data blocks orders, ms", "MAX_DATA_STALENESS_MS", rng="(0, 3600000]"
    )
    dupe_intent_window_ms: float = _f(
        500.0,
        "Identical intents in this window are dropped, ms",
        "DUPE_INTENT_WINDOW_MS",
        rng="[0, 3600000]",
        hot=True,
    )
    budget_orders_per_day_strategy: int = _f(
        300,
        "Orders per strategy per day",
        "BUDGET_ORDERS_PER_DAY_STRATEGY",
        rng="[0, 100000000]",
        hot=True,
    )
    budget_orders_per_day_symbol: int = _f(
        200,
        "Orders per symbol per day",
        "BUDGET_ORDERS_PER_DAY_SYMBOL",
        rng="[0, 100000000]",
        hot=True,
    )
    budget_orders_per_day_account: int = _f(
        500,
        "Orders per account per day",
        "BUDGET_ORDERS_PER_DAY_ACCOUNT",
        rng="[0, 100000000]",
        hot=True,
    )
    cooldown_ms: float = _f(
        0.0,
        "Pause after a fill before the next order, ms",
        "COOLDOWN_MS",
        rng="[0, 86400000]",
        hot=True,
    )
    canary_notional_cap_pct: float = _f(
        25.0,
        "Challenger (canary) notional today, max percent of the day's notional",
        "CANARY_NOTIONAL_CAP_PCT",
        rng="[0, 100]",
        hot=True,
    )
    max_order_notional_usd: float = _f(
        5000.0,
        "Max notional of one order, USD",
        "MAX_ORDER_NOTIONAL_USD",
        rng="(0, 1000000000000]",
        hot=True,
    )
    max_position_notional_usd: float = _f(
        10000.0,
        "Max worst-case position per symbol, USD: filled + every open order on one side "
        "(pending, sent, unknown, unfilled remainder), valued at mid; larger orders are sized "
        "down, denied when less than one lot fits",
        "MAX_POSITION_NOTIONAL_USD",
        rng="(0, 1000000000000]",
        hot=True,
    )
    max_gross_exposure_usd: float = _f(
        25000.0,
        "Max account gross exposure, USD: the sum over symbols of each worst-case position "
        "(as for max_position_notional_usd); larger orders are sized down",
        "MAX_GROSS_EXPOSURE_USD",
        rng="(0, 1000000000000]",
        hot=True,
    )


_MODEL_ID = r"[A-Za-z0-9_.-]+"


# The built-in signal models, by id (engine.strategy.signal_models checks it builds exactly these):
# config validates model ids without importing the strategy layer above it.
BUILTIN_MODEL_IDS: tuple[str, ...] = ("trend_v1", "meanrev_v1", "trend_fast_v1")


@dataclass(frozen=True, slots=True)
class ModelsConfig:
    """[models]: the decision source, champion and challenger ids, the canary share and the
    thresholds a model's signal must pass to trade."""

    strategy: str = _f(
        "models",
        "Decision source: models (champion/challenger) or alternating "
        "(benchmark workload: an order every N ticks)",
        choices=("models", "alternating"),
    )
    alternating_every_ticks: int = _f(50, "alternating: ticks between orders", rng="[1, 1000000]")
    champion: str = _f("trend_v1", "Champion model id", pattern=_MODEL_ID)
    challenger: str = _f("trend_fast_v1", "Challenger (canary) model id", pattern=_MODEL_ID)
    canary_share: float = _f(
        0.05, "Share of trades given to the challenger", "CANARY_SHARE", rng="[0, 1]"
    )
    prob_min: float = _f(0.55, "Min model probability to act", "PROB_MIN", rng="[0, 1]", hot=True)
    min_expected_return: float = _f(
        0.0002,
        "Min expected return, fraction (0.0002 = 2 bps)",
        "MIN_EXPECTED_RETURN",
        rng="[0, 1]",
        hot=True,
    )
    risk_max: float = _f(
        0.6,
        "Max per-tick volatility (EW std of log returns) to trade, bps",
        "RISK_MAX",
        rng="[0, 100000]",
        hot=True,
    )
    decision_interval_ms: float = _f(
        1000.0, "Interval between model decisions, ms", rng="(0, 3600000]"
    )
    psi_halve: float = _f(
        0.2, "Feature drift (PSI) that halves size", "PSI_HALVE", rng="[0, 1000000]"
    )
    psi_block: float = _f(
        0.3, "Feature drift (PSI) that blocks entries", "PSI_BLOCK", rng="[0, 1000000]", hot=True
    )


@dataclass(frozen=True, slots=True)
class OmsConfig:
    enable_idempotency: bool = _f(True, "Dedupe orders by client id", "ENABLE_IDEMPOTENCY")
    order_type: str = _f("market", "Order type sent to the venue", choices=("market", "limit"))
    confirm_timeout_ms: float = _f(
        5000.0,
        "Unconfirmed orders are reconciled after, ms",
        "CONFIRM_TIMEOUT_MS",
        rng="(0, 3600000]",
    )
    client_id_prefix: str = _f("ck", "Client order id prefix", pattern=r"[A-Za-z0-9]{1,6}")
    reconcile_interval_s: float = _f(
        30.0,
        "Periodic reconciliation against the venue, s",
        "RECONCILE_INTERVAL_S",
        rng="(0, 86400]",
    )
    cancel_on_disconnect: bool = _f(
        False, "Cancel every open order when the venue's user stream drops", "CANCEL_ON_DISCONNECT"
    )
    decision_ttl_ms: float = _f(
        1500.0,
        "A decision older than this is never sent (checked at the gates and at the venue send), ms",
        "DECISION_TTL_MS",
        rng="(0, 60000]",
    )


@dataclass(frozen=True, slots=True)
class PaperConfig:
    starting_balance_usd: float = _f(
        100000.0, "Paper starting balance, USD", rng="(0, 1000000000000]"
    )
    maker_fee_bps: float = _f(1.0, "Paper maker fee, bps", rng="[0, 1000]")
    taker_fee_bps: float = _f(7.5, "Paper taker fee, bps", rng="[0, 1000]")
    latency_ms_mean: float = _f(15.0, "Paper mean order latency, ms", rng="[0, 60000]")
    latency_ms_jitter: float = _f(5.0, "Paper latency jitter, ms", rng="[0, 60000]")
    depth_levels: int = _f(10, "Order book levels matched against", rng="[1, 100]")


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int = _f(
        42, "Market simulator seed (same seed, same ticks)", "SIM_SEED", rng="[0, 4294967295]"
    )
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
    timeout_ms: int = _f(3000, "Venue request timeout, ms", rng="[1, 600000]")


@dataclass(frozen=True, slots=True)
class ClockConfig:
    ntp_server: str = _f("", "SNTP server for skew checks (empty = venue time)", "NTP_SERVER")
    skew_check_interval_s: float = _f(30.0, "Interval between skew checks, s", rng="(0, 86400]")


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    path: str = _f(
        "", "Prometheus textfile (empty = <data-dir>/metrics/metrics.prom)", "METRICS_PATH"
    )
    interval_s: float = _f(5.0, "Metrics write interval, s", "METRICS_INTERVAL_S", rng="(0, 3600]")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    flush_interval_ms: float = _f(100.0, "Journal flush interval, ms", rng="(0, 60000]")
    # DuckDB keeps table blocks it wrote or read cached up to this limit; at 256 MB a day's
    # history made the process grow ~2 MiB/min for hours. Queries beyond it spill to disk.
    memory_limit_mb: int = _f(
        64, "DuckDB memory limit (buffer cache + queries), MB", rng="[16, 1048576]"
    )


@dataclass(frozen=True, slots=True)
class LiveConfig:
    live_mode: bool = _f(False, "Live gate 1: live mode requested", "LIVE_MODE")
    enable_live_trading: bool = _f(False, "Live gate 2: live orders enabled", "ENABLE_LIVE_TRADING")
    live_confirm: str = _f(
        "I_UNDERSTAND_LIVE_TRADING", "Phrase typed to go live", "LIVE_CONFIRM", nonempty=True
    )
    preflight_ttl_s: float = _f(
        43200.0, "A green preflight lets live orders through this long, s", rng="(0, 604800]"
    )
    preflight_on_testnet: bool = _f(False, "Require a green preflight on testnet too")
    backup_max_age_h: float = _f(
        24.0, "Preflight: the newest tested backup must be younger, hours", rng="(0, 8760]"
    )
    min_free_disk_mb: float = _f(
        1024.0, "Preflight: free space needed on the data dir's disk, MB", rng="[0, 1000000000]"
    )
    readiness_required: tuple[str, ...] = _f(
        ("market_data", "recon", "venue", "ntp"),
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
class NetSimConfig:
    """Network faults injected into feed and venue connections: for reproducing incidents and for
    tests only. Applied by the loopback venue simulator on its side of the wire; refused in live."""

    latency_ms: float = _f(
        0.0, "Added latency per message/response, ms", "NET_SIM_LATENCY_MS", rng="[0, 60000]"
    )
    jitter_ms: float = _f(
        0.0, "Latency jitter (uniform ±), ms", "NET_SIM_JITTER_MS", rng="[0, 60000]"
    )
    drop_rate: float = _f(
        0.0, "Share of market-data frames dropped", "NET_SIM_DROP_RATE", rng="[0, 1]"
    )
    disconnect_interval_s: float = _f(
        0.0,
        "Close every websocket this often, s (0 = never)",
        "NET_SIM_DISCONNECT_INTERVAL_S",
        rng="[0, 86400]",
    )
    reorder_rate: float = _f(
        0.0, "Share of adjacent market frames swapped", "NET_SIM_REORDER_RATE", rng="[0, 1]"
    )


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    reconnect_base_ms: float = _f(
        100.0, "First reconnect delay, ms (doubles, with jitter)", rng="(0, 600000]"
    )
    reconnect_max_ms: float = _f(5000.0, "Reconnect delay cap, ms", rng="(0, 3600000]")
    catch_up_interval_s: float = _f(
        15.0, "Periodic REST catch-up of orders and trades, s", rng="(0, 86400]"
    )
    unknown_grace_s: float = _f(
        3.0, "Query an unknown-outcome order this long before never-sent", rng="(0, 3600]"
    )
    dislocation_alert_bps: float = _f(5.0, "feed_dislocation_bps alert threshold", rng="[0, 10000]")


@dataclass(frozen=True, slots=True)
class OpsConfig:
    dea: bool = _f(
        False,
        "Regulatory export: orders reach the venue under direct electronic access (dea column)",
        "REGULATORY_DEA",
    )
    backup_interval_min: float = _f(
        360.0,
        "Scheduled online backup while the engine runs, every N minutes (0 = off)",
        "BACKUP_INTERVAL_MIN",
        rng="[0, 10080]",
    )
    backup_keep: int = _f(
        8, "Scheduled backups kept in <data-dir>/backups (older ones pruned)", rng="[2, 10000]"
    )
    notify_min_interval_s: float = _f(
        1.0, "Telegram: at most one message per this many seconds", rng="[0, 3600]"
    )
    notify_queue: int = _f(
        100, "Telegram: messages held while Telegram is slow (oldest dropped)", rng="[1, 100000]"
    )


@dataclass(frozen=True, slots=True)
class ResearchConfig:
    dask: str = _f(
        "",
        "Dask scheduler for campaign folds, e.g. tcp://10.0.0.5:8786 (empty: local processes)",
        pattern=r"(tcp|tls|inproc)://[A-Za-z0-9_.:\[\]-]+|",
    )
    campaign_workers: int = _f(2, "Local worker processes for campaign folds", rng="[1, 256]")


@dataclass(frozen=True, slots=True)
class ControlConfig:
    diagnostics: bool = _f(
        False,
        "Answer the diagnostic socket commands bench_stats and mem_stats "
        "(benchmarks only: they hold the loop and inspect memory)",
    )


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
    observer_start: bool = _f(
        False, "Run as observer: every operator command (TUI, control socket) is refused"
    )
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
    netsim: NetSimConfig = field(
        default_factory=NetSimConfig, metadata={"doc": "Injected network faults (tests only)"}
    )
    feeds: FeedsConfig = field(default_factory=FeedsConfig, metadata={"doc": "Websocket feeds"})
    ops: OpsConfig = field(
        default_factory=OpsConfig,
        metadata={"doc": "Operations: reports, regulatory export, backups, notifications"},
    )
    research: ResearchConfig = field(
        default_factory=ResearchConfig, metadata={"doc": "Research: walk-forward campaigns"}
    )
    control: ControlConfig = field(
        default_factory=ControlConfig,
        metadata={"doc": "Control socket (engine/runtime/control.py)"},
    )
    # Not a config key: provenance of every dotted key, excluded from equality and hashing.
    sources: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}),
        compare=False,
        repr=False,
        metadata={"internal": True},
    )
