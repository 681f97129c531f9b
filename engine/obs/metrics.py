"""The engine's Prometheus registry (names documented in docs/METRICS.md).

Invariants:
- One private ``CollectorRegistry`` per engine (never the global one), so tests and a second engine
  in the same process never collide.
- Names follow Prometheus conventions (``promtool check metrics`` clean): counters end in
  ``_total``, times are exported in seconds (the runbooks' ``*_ms`` figures are shown in ms on
  screen only), no client-side timestamps.
- Hot-path children (per symbol, per status) are bound once here, not looked up per event.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# `_created` series are client-side timestamps in disguise; node_exporter textfiles want none.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

ORDER_STATUSES = (
    "submitted",
    "accepted",
    "partially_filled",
    "filled",
    "canceled",
    "rejected",
    "expired",
    "unknown",
    "never_sent",
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class EngineMetrics:
    """The engine's Prometheus series, in one private registry: counters, gauges and histograms
    named in docs/METRICS.md. The engine updates them in place; `obs.textfile` writes the registry
    to the textfile. Labels are bounded (symbols, gate names, model ids), never free text."""

    def __init__(self, symbols: tuple[str, ...], gate_names: list[str]) -> None:
        reg = self.registry = CollectorRegistry(auto_describe=True)
        self.ticks = Counter("engine_ticks_total", "Market data ticks processed", registry=reg)
        self.decisions = Counter(
            "decisions_total", "Model decisions", ["model_id", "action"], registry=reg
        )
        self.orders_submitted = Counter(
            "orders_submitted_total", "Orders sent to the venue", ["symbol"], registry=reg
        )
        self.order_status = Counter(
            "orders_status_total", "Order state transitions by new status", ["status"], registry=reg
        )
        self.orders_error = Counter(
            "orders_error_total", "Order errors by reason class", ["reason"], registry=reg
        )
        self.orders_denied = Counter(
            "orders_denied_total", "Orders denied by a risk gate", ["gate"], registry=reg
        )
        self.fills = Counter(
            "fills_total", "Fills recorded (deduplicated)", ["symbol"], registry=reg
        )
        self.trades = Counter("trades_total", "Orders placed (all routes)", registry=reg)
        self.canary_trades = Counter(
            "canary_trades_total", "Orders placed on the challenger (canary) route", registry=reg
        )
        self.canary_share = Gauge("canary_share", "Configured canary share (0..1)", registry=reg)
        self.gate_active = {
            name: Gauge(f"gate_{name}_active", f"1 while gate {name} blocks", registry=reg)
            for name in gate_names
        }
        self.budget_left = Gauge(
            "daily_budget_left", "Orders left today in the budget", ["scope", "key"], registry=reg
        )
        self.psi = Gauge("model_drift_psi", "PSI vs training reference", ["model_id"], registry=reg)
        self.skew = Gauge("time_skew_seconds", "Local clock minus reference", registry=reg)
        self.stale = Gauge("data_stale_seconds", "Age of the last quote", ["symbol"], registry=reg)
        self.stale_worst = Gauge(
            "data_stale_worst_seconds",
            "Longest gap between quotes since start",
            ["symbol"],
            registry=reg,
        )
        self.place_latency = Histogram(
            "order_place_latency_seconds",
            "Submit to venue acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.router_latency = Histogram(
            "router_latency_seconds",
            "Decision to venue submit (wall clock, engine side)",
            buckets=(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01),
            registry=reg,
        )
        self.slippage_p95 = Gauge(
            "slippage_bps_p95", "p95 fill slippage vs arrival mid (recent fills)", registry=reg
        )
        self.place_p95 = Gauge(
            "place_latency_p95_seconds", "p95 place latency (recent orders)", registry=reg
        )
        self.error_rate = Gauge(
            "slo_error_rate_recent", "Share of recent orders that errored", registry=reg
        )
        self.fill_ratio = Gauge("fill_ratio", "Filled / ordered quantity (recent)", registry=reg)
        sym = ["symbol"]
        self.error_rate_by = Gauge(
            "symbol_error_rate_recent",
            "Share of a symbol's recent orders rejected",
            sym,
            registry=reg,
        )
        self.slippage_p95_by = Gauge(
            "symbol_slippage_bps_p95", "p95 slippage of a symbol's recent fills", sym, registry=reg
        )
        self.place_p95_by = Gauge(
            "symbol_place_latency_p95_seconds",
            "p95 place latency of a symbol's recent orders",
            sym,
            registry=reg,
        )
        self.readiness = Gauge(
            "readiness_ok",
            "1 while a readiness signal is green and fresh",
            ["signal"],
            registry=reg,
        )
        self.recon_open = Gauge(
            "reconciliation_open_mismatches",
            "Mismatches the last reconciliation left open (critical ones block trading)",
            registry=reg,
        )
        self.outbox_pending = Gauge(
            "idempotency_outbox_pending", "Outbox intents not yet resolved", registry=reg
        )
        self.recon_mismatches = Counter(
            "reconciliation_mismatches_total",
            "Reconciliation findings by class",
            ["type", "symbol"],
            registry=reg,
        )
        self.outbox_recovered = Counter(
            "idempotency_outbox_recovered_total",
            "Intents resolved after a restart or an unknown outcome (adopted or never_sent)",
            registry=reg,
        )
        self.outbox_dupes = Counter(
            "idempotency_outbox_duplicates_prevented_total",
            "Sends refused or adopted because the client id was already used",
            registry=reg,
        )
        self.positions_open = Gauge("positions_open", "Symbols with a position", registry=reg)
        self.position_qty = Gauge(
            "position_quantity", "Signed position in base units", ["symbol"], registry=reg
        )
        self.exposure_worst = Gauge(
            "exposure_worst_quote",
            "Worst-case position at mid (filled + every open order on one side), quote units",
            ["symbol"],
            registry=reg,
        )
        self.exposure_gross = Gauge(
            "exposure_gross_quote",
            "Sum over symbols of the worst-case position at mid",
            registry=reg,
        )
        self.pnl_realized = Gauge("pnl_realized_quote", "Realised PnL, quote units", registry=reg)
        self.pnl_unrealized = Gauge(
            "pnl_unrealized_quote", "Unrealised PnL at mid, quote units", registry=reg
        )
        self.equity = Gauge("equity_quote", "Account equity, quote units", registry=reg)
        self.kill_switch = Gauge(
            "kill_switch_armed", "1 while the kill switch is armed", registry=reg
        )
        self.safe_mode = Gauge("safe_mode", "1 while SAFE_MODE blocks new orders", registry=reg)
        self.features_missing = Gauge(
            "features_missing_ratio",
            "Share of decisions taken without ready features",
            registry=reg,
        )
        self.audit_seq = Gauge("audit_chain_seq", "Last audit sequence number", registry=reg)
        self.db_batches = Counter("db_write_batches_total", "DB batches committed", registry=reg)
        self.db_errors = Counter("db_write_errors_total", "DB batch failures", registry=reg)

        # bound children for the hot path
        self.orders_submitted_by = {s: self.orders_submitted.labels(s) for s in symbols}
        self.fills_by = {s: self.fills.labels(s) for s in symbols}
        self.status_by = {s: self.order_status.labels(s) for s in ORDER_STATUSES}
        self.stale_by = {s: self.stale.labels(s) for s in symbols}
        self.position_by = {s: self.position_qty.labels(s) for s in symbols}
