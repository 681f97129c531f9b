"""DuckDB persistence: one file per data dir, one writer thread, batched transactions.

Invariants:
- Exactly one connection writes (the ``Writer`` thread); the engine loop never waits on DuckDB on
  its hot path. The engine hands over whole ``Batch`` objects (reference swap, no copying).
- A batch is committed in ONE transaction: for the in-process paper venue that makes the outbox,
  the venue's own order book and the engine's orders/fills/positions consistent with each other after
  any crash (both sides lose the same tail).
- The external audit head is advanced only after the rows it names are committed, so a DB that is
  behind the head was truncated or replaced, never merely interrupted.
- The DB file and its WAL are mode 0600 (the process umask is 0077: ``fsutil.private_umask``).
- A failed transaction is rolled back without hiding its cause: a ROLLBACK that fails too (e.g.
  DuckDB already aborted it on a full disk) never replaces the original error.
- A write failure is never swallowed: ``Writer.error`` is set and ``on_error`` is called so the
  engine can halt trading (fail closed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from engine.core import crashpoints
from engine.store.schema import (
    COLUMNS,
    LATEST_VERSION,
    MIGRATIONS,
    REV,
    UPSERT_TABLES,
    VERSIONED_TABLES,
    log_table,
)

log = logging.getLogger("engine.store.writer")

_PA_TYPES = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "INTEGER": pa.int64(),
}


def _schema(table: str) -> pa.Schema:
    return pa.schema([(name, _PA_TYPES[ddl.split()[0]]) for name, ddl in COLUMNS[table]])


_SCHEMAS = {t: _schema(t) for t in COLUMNS}
_LOG_SCHEMAS = {t: _SCHEMAS[t].append(pa.field(REV[0], pa.int64())) for t in VERSIONED_TABLES}


# One writer doing small OLTP-style batches: one DuckDB thread is as fast and keeps RSS lower;
# the memory limit (storage.memory_limit_mb) bounds DuckDB's buffer cache and query memory.
DEFAULT_MEMORY_LIMIT_MB = 64


class StoreError(Exception):
    """A one-line, operator-facing storage failure (names the file)."""


def open_db(
    path: Path, *, read_only: bool = False, memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB
) -> duckdb.DuckDBPyConnection:
    """Open the DB file, naming the file in any failure (corrupt, locked, unreadable)."""
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:  # IOException (lock), SerializationException (corrupt), ...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(
            f"{path}: cannot open database: {first}; not trading. If it is damaged, restore a "
            f"backup: `cockpit restore --data-dir {path.parent} BACKUP`"
        ) from exc
    if not read_only:
        os.chmod(path, 0o600)
        wal = path.with_name(path.name + ".wal")
        if wal.exists():  # a WAL left by an older build under a wider umask
            os.chmod(wal, 0o600)
    con.execute("SET threads=1")
    con.execute(f"SET memory_limit='{int(memory_limit_mb)}MB'")
    return con


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back; if that fails too (the transaction is already gone, the disk is full) the caller
    re-raises the original error, which says what went wrong ("cannot rollback" does not)."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as exc:
        log.warning(
            "rollback failed after an error: %s", str(exc).splitlines()[0] if str(exc) else exc
        )


def migrate(con: duckdb.DuckDBPyConnection, now_us: int) -> int:
    """Apply pending migrations in order, each in its own transaction; returns the version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_us BIGINT NOT NULL, description VARCHAR NOT NULL)"
    )
    row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    current = int(row[0]) if row and row[0] is not None else 0
    if current > LATEST_VERSION:
        raise StoreError(
            f"schema version {current} is newer than this build supports ({LATEST_VERSION})"
        )
    for version, description, statements in MIGRATIONS:
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for stmt in statements:
                con.execute(stmt)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, now_us, description]
            )
            con.execute("COMMIT")
        except Exception:
            _rollback(con)
            raise
        current = version
    return current


class Batch:
    """Rows accumulated on the engine loop between two flushes.

    Append-only tables are lists of row tuples; upsert and versioned tables are dicts keyed by
    their first column, so several transitions of one order inside a flush window become one row
    (the latest): one version per order per batch.
    """

    __slots__ = ("append", "audit_head", "rows", "upsert")

    def __init__(self) -> None:
        self.append: dict[str, list[tuple[Any, ...]]] = {
            t: [] for t in COLUMNS if t not in UPSERT_TABLES | VERSIONED_TABLES
        }
        self.append["audit_log"] = []
        self.upsert: dict[str, dict[Any, tuple[Any, ...]]] = {
            t: {} for t in UPSERT_TABLES | VERSIONED_TABLES
        }
        self.audit_head: tuple[int, str] | None = None
        self.rows = 0

    def empty(self) -> bool:
        return not any(self.append.values()) and not any(self.upsert.values())


_AUDIT_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("ts_us", pa.int64()),
        ("actor", pa.string()),
        ("kind", pa.string()),
        ("payload", pa.string()),
        ("prev_hash", pa.string()),
        ("hash", pa.string()),
    ]
)


def _insert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: list[Any],
    schema: pa.Schema,
    replace: bool = False,
) -> None:
    # rows -> Arrow columns -> DuckDB: ~200k rows/s, vs ~1.4k rows/s for executemany. Built as
    # Arrow directly: a polars frame's conversion to Arrow held the GIL longer (the engine thread
    # waits for it), for no gain at a flush's few rows.
    cols = list(zip(*rows, strict=True))  # callers never pass an empty batch
    frame = pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)], schema=schema
    )
    con.register("_batch_frame", frame)
    try:
        if replace:  # latest state wins, as DELETE of the keys + INSERT. Measured with
            # scripts/bench_store.py, each alternative grew DuckDB's C heap for good with every
            # statement: INSERT OR REPLACE ~0.8 KB, UPDATE .. FROM the frame more, and a DELETE
            # whose keys come from a subquery on the frame ~0.3 KB. Literal keys stay flat.
            keys = [r[0] for r in rows]
            con.execute(
                f"DELETE FROM {table} WHERE {schema.names[0]} IN ({', '.join('?' * len(keys))})",  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
                keys,
            )
        # BY NAME: a column added by a later migration sits after ``rev`` in a log table
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _batch_frame")  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
    finally:
        # the transaction may already have failed: keep the original error, not this one
        with contextlib.suppress(duckdb.Error):
            con.unregister("_batch_frame")


def last_rev(con: duckdb.DuckDBPyConnection) -> int:
    """The highest version number written so far (0 for a new DB)."""
    parts = " UNION ALL ".join(
        f"SELECT max(rev) FROM {log_table(t)}"  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
        for t in sorted(VERSIONED_TABLES)
    )
    row = con.execute(f"SELECT coalesce(max(m), 0) FROM ({parts}) t(m)").fetchone()  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
    return int(row[0]) if row else 0


def latest_ids(con: duckdb.DuckDBPyConnection, table: str, statuses: Iterable[str]) -> list[str]:
    """Orders of a versioned ``table`` whose latest status is one of ``statuses`` (start-up).

    Grouping two columns, then fetching only those orders' rows, is ~5x faster than filtering
    the latest-version view on status (which aggregates every column of every order first)."""
    allowed = ", ".join(f"'{s}'" for s in sorted(statuses))  # our own constants, never input
    rows = con.execute(
        f"SELECT client_order_id FROM {log_table(table)} GROUP BY client_order_id "  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
        f"HAVING arg_max(status, rev) IN ({allowed})"
    ).fetchall()
    return [str(r[0]) for r in rows]


def latest_rows(
    con: duckdb.DuckDBPyConnection, table: str, ids: list[str]
) -> list[tuple[Any, ...]]:
    """The latest version of each listed order (the view's columns); a constant list is pushed
    below the view's GROUP BY, a subquery is not."""
    if not ids:
        return []
    return con.execute(
        f"SELECT * FROM {table} WHERE list_contains(?::VARCHAR[], client_order_id)",  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
        [ids],
    ).fetchall()


def write_batch(con: duckdb.DuckDBPyConnection, batch: Batch, rev: int) -> None:
    """Commit one batch atomically (all tables or none); its order states are version ``rev``,
    which must be above every earlier batch's."""
    con.execute("BEGIN TRANSACTION")
    try:
        for table, rows in batch.append.items():
            if rows:
                schema = _AUDIT_SCHEMA if table == "audit_log" else _SCHEMAS[table]
                _insert(con, table, rows, schema)
        for table, keyed in batch.upsert.items():
            if not keyed:
                continue
            if table in VERSIONED_TABLES:
                rows = [(*r, rev) for r in keyed.values()]
                _insert(con, log_table(table), rows, _LOG_SCHEMAS[table])
            else:
                _insert(con, table, list(keyed.values()), _SCHEMAS[table], replace=True)
        if crashpoints.ENABLED:
            crashpoints.hit("before_commit")
        con.execute("COMMIT")
    except Exception:
        _rollback(con)
        raise


class Writer:
    """The single DB writer: a thread draining batches in order, one transaction each."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        on_committed: Callable[[Batch], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._con = con
        self._q: queue.SimpleQueue[Batch | Callable[[], Any] | None] = queue.SimpleQueue()
        self._on_committed = on_committed
        self._on_error = on_error
        self.error: BaseException | None = None
        self.committed_batches = 0
        self.committed_rows = 0
        self.commit_seconds = 0.0
        self._pending = 0
        self._rev = last_rev(con)  # read before the thread starts: nothing else uses con yet
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        if batch.empty():
            return
        with self._idle:
            self._pending += 1
        self._q.put(batch)

    @property
    def pending(self) -> int:
        return self._pending

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted batch is committed (or failed)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def call(self, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Future[Any]:
        """Run ``fn(con)`` on the writer thread between two batches (backups, checkpoints):
        nothing else writes while it runs."""
        fut: Future[Any] = Future()

        def job() -> None:
            try:
                fut.set_result(fn(self._con))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)

        self._q.put(job)
        return fut

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = self._q.get()
            if batch is None:
                return
            if not isinstance(batch, Batch):
                batch()  # an exclusive job (see ``call``)
                continue
            try:
                if self.error is None:  # after a failure nothing more is written: fail closed
                    t0 = time.perf_counter()
                    write_batch(self._con, batch, self._rev + 1)
                    self._rev += 1
                    self.commit_seconds += time.perf_counter() - t0
                    self.committed_batches += 1
                    self.committed_rows += batch.rows
                    if crashpoints.ENABLED:
                        crashpoints.hit("after_commit")
                    if self._on_committed is not None:
                        self._on_committed(batch)
            except BaseException as exc:  # noqa: BLE001 - reported to the engine, never lost
                self.error = exc
                log.error("db write failed: %s", exc)
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
