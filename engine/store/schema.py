"""DuckDB schema: versioned migrations and the column lists the writer relies on.

Invariants:
- Migrations are append-only: a released version is never edited; a change is a new version.
- Each table's column order here is the order of the row tuples the engine produces
  (``COLUMNS``); the writer inserts frames built from those tuples by position.
- Amounts are BIGINT e8 units (exact); ``*_us`` columns are UTC microseconds.
- Memory must not grow with trading history: the only indexed tables are the small bounded ones
  (``UPSERT_TABLES``); history is append-only and unindexed, per-order state is versioned (below).
"""

from __future__ import annotations

from engine.security.audit import AUDIT_TABLE_DDL

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "decisions": (
        ("decision_id", "VARCHAR NOT NULL"),
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
        ("client_order_id", "VARCHAR NOT NULL"),
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
        ("acked_us", "BIGINT"),  # migration 6: first venue acknowledgement (accept or fill)
    ),
    "fills": (
        ("trade_id", "VARCHAR NOT NULL"),
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
        ("client_order_id", "VARCHAR NOT NULL"),
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
        ("client_order_id", "VARCHAR NOT NULL"),
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
    "preflight_runs": (
        ("preflight_id", "VARCHAR NOT NULL"),
        ("ts_us", "BIGINT NOT NULL"),
        ("actor", "VARCHAR NOT NULL"),
        ("ok", "BOOLEAN NOT NULL"),
        ("valid_until_us", "BIGINT NOT NULL"),  # 0 when not green
        ("checks", "VARCHAR NOT NULL"),  # JSON [[name, status, reason], ...]
    ),
    "incidents": (
        ("ts_us", "BIGINT NOT NULL"),
        ("actor", "VARCHAR NOT NULL"),
        ("note", "VARCHAR NOT NULL"),
        ("context", "VARCHAR NOT NULL"),
    ),
}

# Tables whose rows are replaced by primary key (latest state wins). Only small tables whose key set
# is bounded by configuration (symbols, models, a few state keys): a PK index grows with its keys,
# so a table that grows with trading history has none (scripts/bench_store.py measures the heap).
UPSERT_TABLES = frozenset({"positions", "models", "engine_state"})

# Tables with a state per order that changes (pending -> submitted -> filled): stored append-only
# as versions in ``<table>_log`` with the batch's ``rev``; the view ``<table>`` shows the latest
# version of each ``client_order_id`` (the first column), so readers see one row per order.
VERSIONED_TABLES = frozenset({"orders", "order_outbox", "paper_orders"})

# Every other table is append-only history with no index at all (memory must not grow with it).
# Uniqueness of their ids (decision, trade, audit seq) is the engine's job: ids are minted per
# session, fills are de-duplicated per order (``Order.apply_fill``) and ``verify_db`` checks that the
# audit seq is contiguous.

REV = ("rev", "BIGINT NOT NULL")


def log_table(table: str) -> str:
    return f"{table}_log"


def _create(table: str) -> str:
    cols = ", ".join(f"{name} {ddl}" for name, ddl in COLUMNS[table])
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


# Columns that arrived after version 1 (added by ALTER in their migration, appended at the end),
# with that migration's version: a table re-created by a migration gets the columns of its time.
_LATER_COLUMNS = {("fills", "fee_base_e8"): 3, ("orders", "acked_us"): 6}


def _columns_at(table: str, version: int, cols: tuple[tuple[str, str], ...] = ()) -> str:
    return ", ".join(
        f"{n} {d}"
        for n, d in (*COLUMNS[table], *cols)
        if _LATER_COLUMNS.get((table, n), 0) <= version
    )


# Version 1 gave these tables a primary key (dropped by version 4).
_V1_KEYS = {
    ("decisions", "decision_id"),
    ("orders", "client_order_id"),
    ("fills", "trade_id"),
    ("order_outbox", "client_order_id"),
    ("paper_orders", "client_order_id"),
}


def _create_v1(table: str) -> str:
    cols = ", ".join(
        f"{n} {'VARCHAR PRIMARY KEY' if (table, n) in _V1_KEYS else d}"
        for n, d in COLUMNS[table]
        if (table, n) not in _LATER_COLUMNS
    )
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


# Version 1's tables, frozen: later tables arrive in later versions (migrations are append-only).
_V1_TABLES = (
    "decisions",
    "orders",
    "fills",
    "order_outbox",
    "positions",
    "gate_events",
    "models",
    "engine_state",
    "paper_orders",
    "incidents",
)


def _latest_view(table: str) -> str:
    # arg_max_null, not arg_max: a NULL in the latest version (reason cleared) must win over an
    # older non-NULL value. Point lookups by client_order_id are pushed below the GROUP BY.
    return (
        f"CREATE VIEW {table} AS SELECT client_order_id, arg_max_null(COLUMNS(* EXCLUDE "  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
        f"(client_order_id, rev)), rev) AS '\\0' FROM {log_table(table)} GROUP BY client_order_id"
    )


def _v4() -> tuple[str, ...]:
    out = ["DROP INDEX IF EXISTS fills_order", "DROP INDEX IF EXISTS orders_status"]
    # Table names spelled out, not VERSIONED_TABLES: a released migration never changes.
    for t in ("orders", "order_outbox", "paper_orders"):  # existing rows become version 0
        out += [
            f"CREATE TABLE {log_table(t)} ({_columns_at(t, 4, (REV,))})",
            f"INSERT INTO {log_table(t)} SELECT *, 0 FROM {t}",  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
            f"DROP TABLE {t}",
            _latest_view(t),
        ]
    for t in ("decisions", "fills"):
        out += [
            f"CREATE TABLE {t}_v4 ({_columns_at(t, 4)})",
            f"INSERT INTO {t}_v4 SELECT * FROM {t}",  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
            f"DROP TABLE {t}",
            f"ALTER TABLE {t}_v4 RENAME TO {t}",
        ]
    out += [
        AUDIT_TABLE_DDL.replace(
            "audit_log (seq BIGINT PRIMARY KEY", "audit_v4 (seq BIGINT NOT NULL"
        ),
        "INSERT INTO audit_v4 SELECT * FROM audit_log",
        "DROP TABLE audit_log",
        "ALTER TABLE audit_v4 RENAME TO audit_log",
    ]
    return tuple(out)


MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "initial schema",
        (
            *tuple(_create_v1(t) for t in _V1_TABLES),
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
    (4, "history without indexes; per-order state as versions", _v4()),
    (5, "go-live preflight runs", (_create("preflight_runs"),)),
    (
        6,
        "venue acknowledgement time per order",
        (
            # appended after rev: the writer inserts by name, and the view lists it last
            "ALTER TABLE orders_log ADD COLUMN IF NOT EXISTS acked_us BIGINT",
            "DROP VIEW IF EXISTS orders",
            _latest_view("orders"),
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1][0]
