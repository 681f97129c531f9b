"""Tests for engine.store / engine.schema on real DuckDB files: migrations (fresh and from an older
version with data), versioned per-order state, and the no-index-on-history invariant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine.store.schema import COLUMNS, LATEST_VERSION, MIGRATIONS, UPSERT_TABLES, VERSIONED_TABLES
from engine.store.writer import (
    Batch,
    Writer,
    last_rev,
    latest_ids,
    latest_rows,
    migrate,
    open_db,
    write_batch,
)


def _order(cid: str, status: str, reason: str | None = None, filled: int = 0) -> tuple[Any, ...]:
    return (
        cid,
        "d-" + cid,
        None,
        "BTC/USDT",
        "buy",
        "limit",
        100,
        5_000,
        filled,
        0,
        status,
        reason,
        "s",
        "m1",
        "champion",
        5_000,
        1,
        2,
        3,
        2,
    )


def _batch(*orders: tuple[Any, ...]) -> Batch:
    b = Batch()
    for o in orders:
        b.upsert["orders"][o[0]] = o
    return b


def _status(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str | None, int]]:
    rows = con.execute("SELECT client_order_id, status, reason, filled_qty_e8 FROM orders")
    return {r[0]: (r[1], r[2], r[3]) for r in rows.fetchall()}


def test_migrate_when_fresh_then_only_bounded_tables_keep_a_primary_key(tmp_path: Path) -> None:
    con = open_db(tmp_path / "c.duckdb")
    assert migrate(con, 1) == LATEST_VERSION
    keyed = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    }
    assert keyed == set(UPSERT_TABLES) | {"schema_migrations"}
    assert con.execute("SELECT count(*) FROM duckdb_indexes()").fetchone() == (0,)
    views = {
        r[0]
        for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    assert views == set(VERSIONED_TABLES)
    for t in VERSIONED_TABLES:  # the view has the table's logical columns, in order
        cols = [d[0] for d in con.execute(f"SELECT * FROM {t} LIMIT 0").description]
        assert cols == [c for c, _ in COLUMNS[t]], t


def test_migrate_when_v3_db_has_rows_then_they_survive_as_version_zero(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = open_db(path)
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_us BIGINT "
        "NOT NULL, description VARCHAR NOT NULL)"
    )
    for version, desc, stmts in MIGRATIONS[:3]:
        for s in stmts:
            con.execute(s)
        con.execute("INSERT INTO schema_migrations VALUES (?, 0, ?)", [version, desc])
    n = len(COLUMNS["orders"]) - 1  # a v3 orders table has no acked_us (migration 6)
    marks = ", ".join("?" * n)
    con.executemany(
        f"INSERT INTO orders VALUES ({marks})",
        [list(_order("a", "filled", "ok", 100))[:n], list(_order("b", "accepted"))[:n]],
    )
    con.execute(
        "INSERT INTO fills VALUES ('t1', 'a', NULL, 'BTC/USDT', 'buy', 100, 5000, 1, "
        "'maker', 7, 0.5, 3.0, 2)"
    )
    con.execute("INSERT INTO audit_log VALUES (1, 1, 'engine', 'x', '{}', 'g', 'h')")
    con.close()

    con = open_db(path)
    assert migrate(con, 2) == LATEST_VERSION
    assert _status(con) == {"a": ("filled", "ok", 100), "b": ("accepted", None, 0)}
    assert con.execute("SELECT count(*), max(rev) FROM orders_log").fetchone() == (2, 0)
    assert con.execute("SELECT trade_id, fee_base_e8 FROM fills").fetchall() == [("t1", 2)]
    assert con.execute("SELECT seq, hash FROM audit_log").fetchall() == [(1, "h")]
    assert con.execute("SELECT count(*) FROM duckdb_indexes()").fetchone() == (0,)
    # and the next batch is a newer version than the migrated rows
    write_batch(con, _batch(_order("b", "filled", None, 100)), last_rev(con) + 1)
    assert _status(con)["b"] == ("filled", None, 100)


def test_write_batch_when_order_changes_then_view_shows_latest_version_even_null(
    tmp_path: Path,
) -> None:
    con = open_db(tmp_path / "c.duckdb")
    migrate(con, 1)
    write_batch(con, _batch(_order("a", "submitted", "slow venue"), _order("b", "pending")), 1)
    write_batch(con, _batch(_order("a", "filled", None, 100)), 2)  # reason cleared -> NULL wins
    assert _status(con) == {"a": ("filled", None, 100), "b": ("pending", None, 0)}
    assert con.execute("SELECT count(*) FROM orders_log").fetchone() == (3,)
    assert con.execute("SELECT status FROM orders WHERE client_order_id = 'a'").fetchall() == [
        ("filled",)
    ]
    assert last_rev(con) == 2


def test_writer_when_reopened_then_versions_continue_above_the_last(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    for statuses in (("pending", "submitted"), ("cancelled",)):
        con = open_db(path)
        migrate(con, 1)
        w = Writer(con)
        for st in statuses:
            w.submit(_batch(_order("a", st)))
        assert w.wait_idle(10)
        assert w.error is None
        w.close()
        con.close()
    con = open_db(path)
    # without the carried-over rev, the second session's "cancelled" (rev 1) would tie or lose
    assert _status(con)["a"] == ("cancelled", None, 0)
    assert con.execute("SELECT list(rev ORDER BY rev) FROM orders_log").fetchone() == ([1, 2, 3],)


@pytest.mark.parametrize("table", sorted(UPSERT_TABLES))
def test_write_batch_when_bounded_table_upserted_then_one_row_per_key(
    tmp_path: Path, table: str
) -> None:
    con = open_db(tmp_path / "c.duckdb")
    migrate(con, 1)
    ncols = len(COLUMNS[table])
    for v in (1, 2):
        b = Batch()
        b.upsert[table]["k"] = (
            "k",
            *[v if "BIGINT" in d or "INTEGER" in d else str(v) for _, d in COLUMNS[table][1:]],
        )
        write_batch(con, b, v)
    rows = con.execute(f"SELECT * FROM {table}").fetchall()
    assert len(rows) == 1
    assert len(rows[0]) == ncols
    assert rows[0][-1] == 2


def test_latest_ids_when_order_closed_later_then_only_still_open_orders_listed(
    tmp_path: Path,
) -> None:
    con = open_db(tmp_path / "c.duckdb")
    migrate(con, 1)
    write_batch(
        con, _batch(_order("a", "submitted"), _order("b", "accepted"), _order("c", "new")), 1
    )
    write_batch(con, _batch(_order("a", "filled", None, 100)), 2)
    ids = latest_ids(con, "orders", ("submitted", "accepted"))
    assert ids == ["b"]  # "a" was submitted once, but its latest version is filled
    rows = latest_rows(con, "orders", ["a", "b"])
    assert sorted((r[0], r[10]) for r in rows) == [("a", "filled"), ("b", "accepted")]
    assert latest_rows(con, "orders", []) == []


def test_open_db_when_memory_limit_given_then_duckdb_holds_to_it(tmp_path: Path) -> None:
    con = open_db(tmp_path / "m.duckdb", memory_limit_mb=32)
    try:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone() == ("30.5 MiB",)
    finally:
        con.close()


def test_boot_when_storage_memory_limit_configured_then_the_writer_uses_it(
    make_booted: Any,
) -> None:
    b = make_booted({"storage.memory_limit_mb": 48})
    fut = b.writer.call(
        lambda con: con.execute("SELECT current_setting('memory_limit')").fetchone()
    )
    assert fut.result(5) == ("45.7 MiB",)  # 48 MB = 48e6 bytes
