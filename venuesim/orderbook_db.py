"""Durable truth of the venue simulator: orders, trades, balances and id counters in sqlite.

Role: the venue outlives the engine (and its own restarts), like a real exchange. Everything a
client can learn about (an order id, a trade, a balance) is committed here first.

Invariants:
- One file ``state_dir/venue.sqlite`` in WAL mode, written only from the event-loop thread.
  ``synchronous=NORMAL`` in WAL survives a kill -9 of the process (only an OS crash can lose the
  last commits), which is the failure the tests model.
- ``commit`` writes a whole state change (orders, trades, balances) in one transaction, before
  the HTTP response or WS event that reveals it is sent.
- Ids come from hi-lo blocks: a block is reserved (committed) before any id in it is handed out,
  so ids keep increasing across restarts even after a crash (gaps are allowed, reuse is not).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from venuesim.protocol import Order, Trade

_ID_BLOCK = 1000
_ORDER_COLS = [f.name for f in dataclasses.fields(Order)]
_TRADE_COLS = [f.name for f in dataclasses.fields(Trade)]


def _ddl(table: str, cls: Any, key: str) -> str:
    cols = []
    for f in dataclasses.fields(cls):
        sql_type = "TEXT" if f.type in ("str", str) else "INTEGER"
        cols.append(f"{f.name} {sql_type}{' PRIMARY KEY' if f.name == key else ''}")
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(cols)})"


class VenueStore:
    """sqlite-backed persistence; cheap enough to call synchronously on the event loop."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "venue.sqlite"
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_ddl("orders", Order, "order_id"))
        self._db.execute(_ddl("trades", Trade, "trade_id"))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS balances (asset TEXT PRIMARY KEY, free_e8 INTEGER, "
            "locked_e8 INTEGER)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
        self._next: dict[str, int] = {}
        self._limit: dict[str, int] = {}

    # --- loading -----------------------------------------------------------------------------

    def load_orders(self) -> list[Order]:
        rows = self._db.execute(f"SELECT {', '.join(_ORDER_COLS)} FROM orders ORDER BY order_id")  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
        return [Order(*row) for row in rows]

    def load_trades(self) -> list[Trade]:
        rows = self._db.execute(f"SELECT {', '.join(_TRADE_COLS)} FROM trades ORDER BY trade_id")  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
        return [Trade(*((*row[:-1], bool(row[-1])))) for row in rows]

    def load_balances(self) -> dict[str, list[int]]:
        rows = self._db.execute("SELECT asset, free_e8, locked_e8 FROM balances")
        return {a: [f, lk] for a, f, lk in rows}

    # --- ids ---------------------------------------------------------------------------------

    def next_id(self, kind: str) -> int:
        """Next id of ``kind`` ("order" or "trade"); reserves a new block durably when needed."""
        nxt = self._next.get(kind)
        if nxt is None or nxt >= self._limit[kind]:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (kind,)).fetchone()
            start = row[0] if row else 1
            if nxt is not None:
                start = max(start, nxt)
            limit = start + _ID_BLOCK
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (kind, limit)
            )
            nxt, self._limit[kind] = start, limit
        self._next[kind] = nxt + 1
        return nxt

    # --- writing -----------------------------------------------------------------------------

    def commit(
        self,
        orders: Iterable[Order],
        trades: Iterable[Trade],
        balances: dict[str, list[int]],
    ) -> None:
        """Write one state change atomically (an empty change costs nothing)."""
        order_rows = [dataclasses.astuple(o) for o in orders]
        trade_rows = [dataclasses.astuple(t) for t in trades]
        bal_rows = [(a, v[0], v[1]) for a, v in balances.items()]
        if not (order_rows or trade_rows or bal_rows):
            return
        db = self._db
        db.execute("BEGIN")
        try:
            if order_rows:
                marks = ", ".join("?" * len(_ORDER_COLS))
                db.executemany(f"INSERT OR REPLACE INTO orders VALUES ({marks})", order_rows)  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
            if trade_rows:
                marks = ", ".join("?" * len(_TRADE_COLS))
                db.executemany(f"INSERT OR REPLACE INTO trades VALUES ({marks})", trade_rows)  # noqa: S608 - identifiers from our own schema constants; values are bound parameters
            if bal_rows:
                db.executemany("INSERT OR REPLACE INTO balances VALUES (?, ?, ?)", bal_rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
