"""DuckDB schema: versioned migrations and the column lists the writer relies on.

Invariants:
- Migrations are append-only: a released version is never edited; a change is a new version.
- Each table's column order here is the order of the row tuples the engine produces
  (``COLUMNS``); the writer inserts frames built from those tuples by position.
- Amounts are BIGINT e8 units (exact); ``*_us`` columns are UTC microseconds.
"""

from __future__ import annotations

from engine.audit import AUDIT_TABLE_DDL

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "decisions": (
        ("decision_id", "VARCHAR PRIMARY KEY"),
        ("ts_us", "BIGINT NOT NULL"),
        ("symbol", "VARCHAR NOT NULL"),
        ("model_id", "VARCHAR NOT NULL"),
        ("action", "VARCHAR NOT NULL"),
        ("prob", "DOUBLE"),
        ("expected_return", "DOUBLE"),
        ("regime", "VARCHAR"),
        ("regime_reason", "VARCHAR"),
        ("risk_allowed", "BOOLEAN"),
        ("position_size", "DOUBLE"),
        ("routed", "VARCHAR"),
        ("psi", "DOUBLE"),
    ),
    "orders": (
        ("client_order_id", "VARCHAR PRIMARY KEY"),
        ("decision_id", "VARCHAR NOT NULL"),
        ("venue_order_id", "VARCHAR"),
        ("symbol", "VARCHAR NOT NULL"),
        ("side", "VARCHAR NOT NULL"),
        ("order_type", "VARCHAR NOT NULL"),
        ("qty_e8", "BIGINT NOT NULL"),
        ("limit_price_e8", "BIGINT NOT NULL"),
        ("filled_qty_e8", "BIGINT NOT NULL"),
        ("avg_price_e8", "BIGINT NOT NULL"),
        ("status", "VARCHAR NOT NULL"),
        ("reason", "VARCHAR"),
        ("strategy", "VARCHAR"),
        ("model_id", "VARCHAR"),
        ("routed", "VARCHAR"),
        ("arrival_mid_e8", "BIGINT"),
        ("created_us", "BIGINT NOT NULL"),
        ("submitted_us", "BIGINT"),
        ("updated_us", "BIGINT NOT NULL"),
    ),
    "fills": (
        ("trade_id", "VARCHAR PRIMARY KEY"),
        ("client_order_id", "VARCHAR NOT NULL"),
        ("venue_order_id", "VARCHAR"),
        ("symbol", "VARCHAR NOT NULL"),
        ("side", "VARCHAR NOT NULL"),
        ("qty_e8", "BIGINT NOT NULL"),
        ("price_e8", "BIGINT NOT NULL"),
        ("fee_e8", "BIGINT NOT NULL"),
        ("liquidity", "VARCHAR"),
        ("ts_us", "BIGINT NOT NULL"),
        ("slippage_bps", "DOUBLE"),
        ("place_latency_ms", "DOUBLE"),
        ("fee_base_e8", "BIGINT DEFAULT 0"),  # migration 3
    ),
    "order_outbox": (
        ("client_order_id", "VARCHAR PRIMARY KEY"),
        ("decision_id", "VARCHAR NOT NULL"),
        ("symbol", "VARCHAR NOT NULL"),
        ("side", "VARCHAR NOT NULL"),
        ("order_type", "VARCHAR NOT NULL"),
        ("qty_e8", "BIGINT NOT NULL"),
        ("limit_price_e8", "BIGINT NOT NULL"),
        ("status", "VARCHAR NOT NULL"),
        ("created_us", "BIGINT NOT NULL"),
        ("sent_us", "BIGINT"),
        ("resolved_us", "BIGINT"),
        ("attempts", "INTEGER NOT NULL"),
    ),
    "positions": (
        ("symbol", "VARCHAR PRIMARY KEY"),
        ("qty_e8", "BIGINT NOT NULL"),
        ("avg_price_e8", "BIGINT NOT NULL"),
        ("realized_pnl_e8", "BIGINT NOT NULL"),
        ("fees_e8", "BIGINT NOT NULL"),
        ("updated_us", "BIGINT NOT NULL"),
    ),
    "gate_events": (
        ("ts_us", "BIGINT NOT NULL"),
        ("gate", "VARCHAR NOT NULL"),
        ("action", "VARCHAR NOT NULL"),  # deny | scale | active | clear
        ("symbol", "VARCHAR"),
        ("decision_id", "VARCHAR"),
        ("reason", "VARCHAR NOT NULL"),
    ),
    "models": (
        ("model_id", "VARCHAR PRIMARY KEY"),
        ("name", "VARCHAR NOT NULL"),
        ("version", "INTEGER NOT NULL"),
        ("role", "VARCHAR NOT NULL"),
        ("reference", "VARCHAR NOT NULL"),
        ("created_us", "BIGINT NOT NULL"),
        ("updated_us", "BIGINT NOT NULL"),
    ),
    "engine_state": (
        ("key", "VARCHAR PRIMARY KEY"),
        ("value", "VARCHAR NOT NULL"),
        ("updated_us", "BIGINT NOT NULL"),
    ),
    "paper_orders": (
        ("client_order_id", "VARCHAR PRIMARY KEY"),
        ("venue_order_id", "BIGINT NOT NULL"),
        ("symbol", "VARCHAR NOT NULL"),
        ("side", "VARCHAR NOT NULL"),
        ("order_type", "VARCHAR NOT NULL"),
        ("qty_e8", "BIGINT NOT NULL"),
        ("limit_price_e8", "BIGINT NOT NULL"),
        ("filled_qty_e8", "BIGINT NOT NULL"),
        ("status", "VARCHAR NOT NULL"),
        ("created_us", "BIGINT NOT NULL"),
        ("updated_us", "BIGINT NOT NULL"),
    ),
    "reconciliation_runs": (
        ("ts_us", "BIGINT NOT NULL"),
        ("source", "VARCHAR NOT NULL"),
        ("venue", "VARCHAR NOT NULL"),
        ("duration_ms", "DOUBLE NOT NULL"),
        ("ok", "BOOLEAN NOT NULL"),
        ("mismatches", "VARCHAR NOT NULL"),  # JSON {class: count}
        ("alerts", "VARCHAR NOT NULL"),  # JSON [text]
    ),
    "incidents": (
        ("ts_us", "BIGINT NOT NULL"),
        ("actor", "VARCHAR NOT NULL"),
        ("note", "VARCHAR NOT NULL"),
        ("context", "VARCHAR NOT NULL"),
    ),
}

# Tables whose rows are upserted by primary key (latest state wins); the rest are append-only.
UPSERT_TABLES = frozenset(
    {"orders", "order_outbox", "positions", "models", "engine_state", "paper_orders"}
)


def _create(table: str) -> str:
    cols = ", ".join(f"{name} {ddl}" for name, ddl in COLUMNS[table])
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


# Version 1's tables, frozen: later tables arrive in later versions (migrations are append-only).
# Columns that arrived after version 1 (added by ALTER in their migration, appended at the end).
_LATER_COLUMNS = {("fills", "fee_base_e8")}


def _create_v1(table: str) -> str:
    cols = ", ".join(f"{n} {d}" for n, d in COLUMNS[table] if (table, n) not in _LATER_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


_V1_TABLES = ("decisions", "orders", "fills", "order_outbox", "positions", "gate_events", "models",
              "engine_state", "paper_orders", "incidents")  # fmt: skip

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "initial schema",
        tuple(_create_v1(t) for t in _V1_TABLES)
        + (
            AUDIT_TABLE_DDL,
            "CREATE INDEX IF NOT EXISTS fills_order ON fills (client_order_id)",
            "CREATE INDEX IF NOT EXISTS orders_status ON orders (status)",
        ),
    ),
    (2, "reconciliation runs", (_create("reconciliation_runs"),)),
    (
        3,
        "base-asset commission per fill",
        ("ALTER TABLE fills ADD COLUMN IF NOT EXISTS fee_base_e8 BIGINT DEFAULT 0",),
    ),
)

LATEST_VERSION = MIGRATIONS[-1][0]
