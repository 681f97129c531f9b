"""Open a data directory and assemble a running engine (lock, key, DB, state, venue, strategy).

Start-up order matters and is fixed:
1. the data-dir lock (a second instance stops here, having touched nothing);
2. the audit key and external chain head (outside the DB);
3. the DB file (a corrupt or locked file is a one-line error naming it), migrations;
4. the DB must not be behind the external audit head (a lost tail is detected, not papered over);
5. a new session number is committed *before* any decision, so client ids are never reused;
6. open orders, positions, the paper venue's book and the model registry are loaded;
7. the writer thread starts; a ``startup`` audit row is the first thing it commits.
``Booted.close`` undoes it in reverse: final flush, ``shutdown`` audit row, textfile, DB, lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from engine import day_counters, oms, operator, rehydrate
from engine.audit import AuditChain, HeadFile, load_or_create_key, tail_state
from engine.clock import Clock
from engine.config import Config, metrics_path
from engine.engine import Engine
from engine.journal import IntentJournal, replay
from engine.lockfile import EngineLock, acquire
from engine.marketsim import symbol_spec
from engine.metrics import EngineMetrics
from engine.models import build_model
from engine.paper import PaperVenue
from engine.registry import ModelRegistry, builtin_reference
from engine.risk import GATE_NAMES
from engine.store import Batch, StoreError, Writer, latest_ids, latest_rows, migrate, open_db
from engine.strategy import REFERENCE_TICKS, AlternatingStrategy, ModelStrategy
from engine.textfile import clean_stale_temps, write_textfile

log = logging.getLogger("engine.boot")

DB_NAME = "cockpit.duckdb"


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


class Booted:
    """Everything a runner needs, and the one way to shut it down cleanly."""

    def __init__(self, **parts: Any) -> None:
        self.engine: Engine = parts["engine"]
        self.strategy: ModelStrategy | AlternatingStrategy | None = parts["strategy"]
        self.writer: Writer = parts["writer"]
        self.lock: EngineLock = parts["lock"]
        self.con: Any = parts["con"]
        self.metrics_path: Path = parts["metrics_path"]
        self.data_dir: Path = parts["data_dir"]
        self.journal: IntentJournal | None = parts["journal"]
        self.rehydrated: dict[str, int] = {}
        self.reconciler: Any = None
        self._journal_mark = -1
        self._closed = False

    async def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Read committed rows through the single writer (the engine owns the DB file)."""
        import asyncio

        self.flush()
        return await asyncio.wrap_future(
            self.writer.call(lambda con: con.execute(sql, params or []).fetchall())
        )

    def write_metrics(self) -> None:
        write_textfile(self.metrics_path, self.engine.metrics.registry)

    def flush(self) -> int:
        """Hand rows to the writer; a failed write halts trading (checked on the loop thread).

        The intent journal is truncated once the DB provably holds every intent in it: the
        previous batch is committed (writer idle) and no intent was appended since that flush.
        """
        err = self.writer.error
        if err is not None and not self.engine.halted_reason:
            self.engine.halt(f"DB write failed: {err}")
        j = self.journal
        if j is not None and j.appended and j.appended == self._journal_mark:
            if self.writer.pending == 0 and self.writer.error is None:
                j.checkpoint()
                j.appended = 0
        n = self.engine.flush()
        if j is not None:
            self._journal_mark = j.appended
        return n

    def close(self, reason: str = "shutdown") -> None:
        """Flush everything, audit the shutdown, write the final textfile, release the DB."""
        if self._closed:
            return
        self._closed = True
        e = self.engine
        try:
            e.refresh()
            e._audit("engine", "shutdown", {"reason": reason, "ticks": e.ticks,
                                            "orders": len(e.orders)})  # fmt: skip
            e.flush()
            self.writer.wait_idle()
            self.writer.close()
            if self.writer.error is None and self.journal is not None:
                self.journal.checkpoint()  # every intent is in the DB now
            self.write_metrics()
        finally:
            try:
                self.con.close()
            finally:
                if self.journal is not None:
                    self.journal.close()
                self.lock.release()
        log.info("engine stopped (%s)", reason)


def _state(con: Any) -> dict[str, str]:
    return {
        str(k): str(v) for k, v in con.execute("SELECT key, value FROM engine_state").fetchall()
    }


def _context(text: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:  # a hand-edited row must not stop the start-up
        return {}
    return value if isinstance(value, dict) else {}


def _load_registry(con: Any, cfg: Config, now_us: int) -> ModelRegistry:
    rows = con.execute("SELECT * FROM models").fetchall()
    if rows:
        return ModelRegistry.from_rows(rows)
    reg = ModelRegistry()
    ref = builtin_reference(REFERENCE_TICKS)  # then stored in `models`
    reg.register(build_model(cfg.models.champion), "champion", ref, now_us)
    if cfg.models.challenger and cfg.models.challenger != cfg.models.champion:
        reg.register(build_model(cfg.models.challenger), "challenger", ref, now_us)
    reg.set_canary_share(cfg.models.canary_share)
    return reg


def _journal_orders(con: Any, path: Path, known: set[str]) -> list[oms.Order]:
    """Intents that were made durable (and maybe sent) but never reached the DB: a crash between
    the journal append and the next commit. They come back as ``submitted`` so start-up asks the
    venue about each one; none is re-sent."""
    recs = [r for r in replay(path) if r[0] not in known]
    if not recs:
        return []
    in_db = {
        str(r[0])
        for r in con.execute(
            "SELECT client_order_id FROM orders WHERE client_order_id IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [[r[0] for r in recs]],
        ).fetchall()
    }
    out = []
    for cid, did, sym, side, otype, qty, lpx, ts in recs:
        if cid in in_db:
            continue
        o = oms.Order(cid, did, sym, side, qty, order_type=otype, limit_price_e8=lpx, created_us=ts)
        o.status, o.submitted_us = oms.SUBMITTED, ts
        out.append(o)
    log.warning("recovered %d intent(s) from the journal that the DB never saw", len(out))
    return out


def boot(
    cfg: Config,
    data_dir: Path,
    *,
    clock: Clock,
    strategy: str = "models",
    bench_every: int = 100,
    bench_qty_e8: int = 1_000_000,
    call_later: Callable[..., Any] | None = None,
    metrics_file: Path | None = None,
    lock: EngineLock | None = None,
    venue: Any = None,
) -> Booted:
    """Assemble the engine. ``venue``: an already-connected outside venue (ccxt); else paper."""
    if lock is None:
        lock = acquire(data_dir)  # raises AlreadyRunning before anything is touched
    con = None
    try:
        key = load_or_create_key(data_dir)
        head_file = HeadFile(data_dir / "audit" / "head.json")
        head = head_file.read()
        path = db_path(data_dir)
        con = open_db(path, memory_limit_mb=cfg.storage.memory_limit_mb)
        now = clock.now_us()
        migrate(con, now)
        seq, last_hash = tail_state(con)
        if head is not None and head[0] > seq:
            raise StoreError(
                f"{path}: database is behind the external audit head (head seq {head[0]}, DB ends "
                f"at seq {seq}): committed rows are missing; not trading. Restore a backup: "
                f"`cockpit restore --data-dir {data_dir} BACKUP` (see `ls {data_dir}/backups`)"
            )
        state = _state(con)
        session = int(state.get("session", "0")) + 1
        con.execute(
            "INSERT OR REPLACE INTO engine_state VALUES ('session', ?, ?)", [str(session), now]
        )  # committed now (autocommit): ids of this session can never collide with a past one

        symbols = tuple(cfg.symbols)
        specs = {s: symbol_spec(s) for s in symbols}
        lots = {s: sp.lot_size_e8 for s, sp in specs.items()}
        if venue is not None:
            lots.update(getattr(venue, "lots_e8", {}))
        elif cfg.venue != "paper":
            raise StoreError(f"venue {cfg.venue!r} needs a connected venue (see venue_setup)")
        else:
            venue = PaperVenue(
                now_us=clock.now_us,
                tick_size_e8={s: sp.tick_size_e8 for s, sp in specs.items()},
                maker_fee_bps=cfg.paper.maker_fee_bps,
                taker_fee_bps=cfg.paper.taker_fee_bps,
                latency_ms_mean=cfg.paper.latency_ms_mean,
                latency_ms_jitter=cfg.paper.latency_ms_jitter,
                depth_levels=cfg.paper.depth_levels,
                seed=cfg.sim.seed + session,
                call_later=call_later,
            )
        open_ids = latest_ids(con, "orders", oms.OPEN)
        open_rows = latest_rows(con, "orders", open_ids)
        if isinstance(venue, PaperVenue):
            resting = latest_ids(con, "paper_orders", ("accepted", "partially_filled"))
            venue.load(latest_rows(con, "paper_orders", sorted(set(resting) | set(open_ids))))
        trade_ids: dict[str, set[str]] = {cid: set() for cid in open_ids}
        if open_ids:
            for cid, tid in con.execute(
                "SELECT client_order_id, trade_id FROM fills "
                "WHERE client_order_id IN (SELECT unnest(?::VARCHAR[]))",
                [open_ids],
            ).fetchall():
                trade_ids[str(cid)].add(str(tid))
        orders = [oms.Order.from_row(r, trade_ids[str(r[0])]) for r in open_rows]
        journal = None if venue.in_process else IntentJournal(data_dir / "journal" / "intents.bin")
        if journal is not None:
            orders += _journal_orders(con, journal.path, {o.client_order_id for o in orders})
        positions = con.execute("SELECT * FROM positions").fetchall()
        last_fill_ms: dict[str, int] = {}
        base_fees: dict[str, int] = {}
        for sym, ts, fb in con.execute(
            "SELECT symbol, max(ts_us), sum(fee_base_e8) FROM fills GROUP BY symbol"
        ).fetchall():
            last_fill_ms[str(sym)] = int(ts) // 1000
            base_fees[str(sym)] = int(fb or 0)

        registry = None
        if strategy == "models":  # the reference is built once, then read from `models`
            registry = _load_registry(con, cfg, now)
            if "models" in state:
                registry.load_state(msgspec.json.decode(state["models"]))

        metrics = EngineMetrics(symbols, list(GATE_NAMES))
        mpath = metrics_file or metrics_path(cfg, data_dir)
        clean_stale_temps(mpath.parent, mpath.name) if mpath.parent.exists() else None

        def committed(batch: Batch) -> None:
            metrics.db_batches.inc()
            if batch.audit_head is not None:
                head_file.write(*batch.audit_head)

        def failed(exc: BaseException) -> None:
            metrics.db_errors.inc()

        writer = Writer(con, on_committed=committed, on_error=failed)
        engine = Engine(
            cfg=cfg,
            clock=clock,
            venue=venue,
            audit=AuditChain(key, seq, last_hash),
            metrics=metrics,
            session=session,
            lot_e8=lots,
            journal=journal,
            on_batch=writer.submit,
        )
        assert tuple(engine.gates.states) == GATE_NAMES, "gate gauges must match the pipeline"
        engine._state_cache = state
        if state.get("acked_orphans"):
            engine.acked_orphans = set(msgspec.json.decode(state["acked_orphans"]))
        engine.last_fill_ms = last_fill_ms
        engine.base_fees_e8 = base_fees
        if hasattr(venue, "last_trade_ms"):  # catch-up starts from our last recorded fill
            venue.last_trade_ms.update(last_fill_ms)
        # the journal's last entries stay on screen across restarts (incidents: small, unindexed)
        for ts, actor, note, ctx in con.execute(
            "SELECT ts_us, actor, note, context FROM incidents ORDER BY ts_us DESC LIMIT ?",
            [engine.incidents.maxlen],
        ).fetchall()[::-1]:
            engine.incidents.append(
                operator.journal_entry(int(ts), str(actor), str(note), _context(str(ctx)))
            )
        if state.get("kill_switch") == "1":  # armed survives restarts; only an operator disarms
            engine.risk.kill_switch = True
            engine.risk.kill_reason = state.get("kill_reason", "armed before restart")
        if state.get("safe_mode") == "1":
            engine.risk.safe_mode = True
        rehydrate.adopt(engine, orders, positions)
        day_counters.rebuild(engine, con)  # today's limits survive a restart
        strat: ModelStrategy | AlternatingStrategy | None
        if registry is not None:
            strat = ModelStrategy(engine, registry)
            for row in registry.to_rows():
                engine.batch.upsert["models"][row[0]] = row
        elif strategy == "bench":
            strat = AlternatingStrategy(engine, symbols[0], bench_every, bench_qty_e8)
        else:
            strat = None
        engine.strategy = strat
        engine._audit("engine", "startup", {
            "session": session, "profile": cfg.name, "venue": venue.name, "pid": lock.pid,
            "open_orders": len(orders), "wall_ts": time.time(),
        })  # fmt: skip
        engine.gates.refresh(now)
        return Booted(
            engine=engine,
            strategy=strat,
            writer=writer,
            lock=lock,
            con=con,
            metrics_path=mpath,
            data_dir=data_dir,
            journal=journal,
        )
    except BaseException:
        if con is not None:
            con.close()
        lock.release()
        raise
