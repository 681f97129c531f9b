"""Open a data directory and assemble a running engine (lock, key, DB, state, venue, strategy).

Start-up order matters and is fixed:
1. the data-dir lock (a second instance stops here, having touched nothing);
2. ``datacheck.check_data_dir``: audit key, external head, intent journal, a copy of the WAL, then
   the DB opened read-only and compared with all of them (behind the head, older than the journal,
   another profile, a broken audit chain: refused, every file left as it was);
3. only then the DB is opened for writing and migrated, the verified checkpoint and (once) the
   profile are recorded;
4. ``_load``: a new session number is committed *before* any decision, so client ids are never
   reused; then the venue, open orders, positions, the paper venue's book and the model registry;
5. ``_start_writer``: metrics, the writer thread and the engine, continuing the audit chain;
6. ``_take_over``: flags as they were, open orders and positions adopted (``rehydrate.adopt``),
   today's counters, the strategy; a ``startup`` audit row is the first thing the writer commits.
Any DuckDB failure while starting is a one-line ``StoreError`` naming the file and the remedy.
``Booted.close`` undoes it in reverse: final flush, ``shutdown`` audit row, textfile, DB, lock.
A halt is also written to ``engine.halt`` (preallocated, rewritten in place: it works on a full
disk) so the next start comes up with the kill switch armed even if the DB could not record it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from engine.config.loader import Config, metrics_path
from engine.config.structs import BUILTIN_MODEL_IDS
from engine.core.clock import Clock
from engine.obs.metrics import EngineMetrics
from engine.obs.textfile import clean_stale_temps
from engine.runtime import rehydrate
from engine.runtime.booted import Booted
from engine.runtime.datacheck import DataDirState, check_data_dir, record_start, restore_hint
from engine.runtime.datacheck import recorded_profile as _recorded_profile
from engine.security.audit import AuditChain, HeadFile, tail_state
from engine.sim.marketsim import symbol_spec
from engine.store.haltfile import HaltFile
from engine.store.intent_journal import IntentJournal, is_intent, quarantine, replay
from engine.store.lockfile import EngineLock, acquire
from engine.store.writer import Batch, StoreError, Writer, latest_ids, latest_rows, migrate, open_db
from engine.strategy.candle_model import register_trained
from engine.strategy.registry import ModelRegistry, builtin_reference
from engine.strategy.signal_models import build_model
from engine.strategy.strategies import REFERENCE_TICKS, AlternatingStrategy, ModelStrategy
from engine.trading import day_counters, kill_scopes, oms
from engine.trading.breakers import restore_preflight
from engine.trading.commands import journal_entry
from engine.trading.engine import Engine
from engine.trading.risk import GATE_NAMES
from engine.venues.paper import PaperVenue

log = logging.getLogger("engine.runtime.boot")

DB_NAME = "cockpit.duckdb"


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


def recorded_profile(data_dir: Path) -> str | None:
    """The profile kind (paper/testnet/staging/live) this data dir was created with, if known:
    offline commands given no ``--profile`` use it instead of defaulting to paper."""
    return _recorded_profile(db_path(data_dir))


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
    for model_id in BUILTIN_MODEL_IDS:  # the other built-ins: registered, so they can be pinned
        if model_id not in (cfg.models.champion, cfg.models.challenger):
            reg.register(build_model(model_id), "retired", ref, now_us)
    reg.set_canary_share(cfg.models.canary_share)
    return reg


def _journal_orders(con: Any, path: Path, known: set[str]) -> list[oms.Order]:
    """Intents that were made durable (and maybe sent) but never reached the DB: a crash between
    the journal append and the next commit. They come back as ``submitted`` so start-up asks the
    venue about each one; none is re-sent."""
    recs = [r for r in replay(path, is_intent) if r[0] not in known]
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


def _db_error(exc: Exception, path: Path) -> StoreError:
    """A DuckDB failure during start-up as one line with the remedy."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "No space left" in first or "Disk full" in first.lower():
        return StoreError(
            f"{path}: no space left on the device holding {path.parent} ({first}); "
            "free space, then start again (nothing was lost)"
        )
    return StoreError(
        f"{path}: database damaged or unreadable: {first}; not trading. "
        f"{restore_hint(path.parent, capital=True)}"
    )


def _open_checked(cfg: Config, data_dir: Path, now: int) -> tuple[Any, DataDirState]:
    """Checks first (nothing written), then open for writing, migrate and record the start."""
    path = db_path(data_dir)
    checked = check_data_dir(cfg, data_dir, path)
    con = open_db(path, memory_limit_mb=cfg.storage.memory_limit_mb)
    try:
        migrate(con, now)
        record_start(con, checked, cfg, now)
    except BaseException:
        con.close()
        raise
    checked.opened()
    return con, checked


def _next_session(con: Any, state: dict[str, str], now: int) -> int:
    session = int(state.get("session", "0")) + 1
    con.execute(
        "INSERT OR REPLACE INTO engine_state VALUES ('session', ?, ?)", [str(session), now]
    )  # committed now (autocommit): ids of this session can never collide with a past one
    return session


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
        now = clock.now_us()
        con, checked = _open_checked(cfg, data_dir, now)
        return _assemble(
            cfg,
            data_dir,
            con,
            checked,
            now,
            clock=clock,
            strategy=strategy,
            bench_every=bench_every,
            bench_qty_e8=bench_qty_e8,
            call_later=call_later,
            metrics_file=metrics_file,
            lock=lock,
            venue=venue,
        )
    except duckdb.Error as exc:
        if con is not None:
            con.close()
        lock.release()
        raise _db_error(exc, db_path(data_dir)) from None
    except BaseException:
        if con is not None:
            con.close()
        lock.release()
        raise


def _venue(
    cfg: Config, clock: Clock, venue: Any, session: int, call_later: Callable[..., Any] | None
) -> tuple[Any, dict[str, int]]:
    """The connected outside venue, or the in-process paper venue; and the lot sizes."""
    specs = {s: symbol_spec(s) for s in cfg.symbols}
    lots = {s: sp.lot_size_e8 for s, sp in specs.items()}
    if venue is not None:
        lots.update(getattr(venue, "lots_e8", {}))
        return venue, lots
    if cfg.venue != "paper":
        raise StoreError(f"venue {cfg.venue!r} needs a connected venue (see venue_setup)")
    return PaperVenue(
        now_us=clock.now_us,
        tick_size_e8={s: sp.tick_size_e8 for s, sp in specs.items()},
        maker_fee_bps=cfg.paper.maker_fee_bps,
        taker_fee_bps=cfg.paper.taker_fee_bps,
        latency_ms_mean=cfg.paper.latency_ms_mean,
        latency_ms_jitter=cfg.paper.latency_ms_jitter,
        depth_levels=cfg.paper.depth_levels,
        seed=cfg.sim.seed + session,
        call_later=call_later,
    ), lots


def _open_orders(con: Any, venue: Any) -> list[oms.Order]:
    """Orders whose latest state is open, with their trade ids; the paper venue's book too."""
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
    return [oms.Order.from_row(r, trade_ids[str(r[0])]) for r in open_rows]


def _open_journal(data_dir: Path, venue: Any) -> IntentJournal | None:
    """The intent journal (outside venues only), its bad records moved aside first, loudly."""
    if venue.in_process:
        return None
    jpath = data_dir / "journal" / "intents.bin"
    aside, n, why = quarantine(jpath)
    if aside is not None:
        msg = f"{jpath}: {n} bad record(s) ({why}) moved to {aside}; the good ones were replayed"
        log.error("intent journal: %s", msg)
        print(f"cockpit: {msg}", file=sys.stderr)
    return IntentJournal(jpath)


def _fill_stats(con: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Per symbol: the last fill (ms) and the base-asset fees paid so far."""
    last_fill_ms: dict[str, int] = {}
    base_fees: dict[str, int] = {}
    for sym, ts, fb in con.execute(
        "SELECT symbol, max(ts_us), sum(fee_base_e8) FROM fills GROUP BY symbol"
    ).fetchall():
        last_fill_ms[str(sym)] = int(ts) // 1000
        base_fees[str(sym)] = int(fb or 0)
    return last_fill_ms, base_fees


def _restore_flags(engine: Engine, con: Any, state: dict[str, str], halt: HaltFile) -> None:
    """Incidents on screen, acknowledged orphans, kill switch (also after an unrecorded halt),
    safe mode: as they were when the previous run stopped."""
    if state.get("acked_orphans"):
        engine.recon.acked_orphans = set(msgspec.json.decode(state["acked_orphans"]))
    # the journal's last entries stay on screen across restarts (incidents: small, unindexed)
    for ts, actor, note, ctx in con.execute(
        "SELECT ts_us, actor, note, context FROM incidents ORDER BY ts_us DESC LIMIT ?",
        [engine.recorder.incidents.maxlen],
    ).fetchall()[::-1]:
        engine.recorder.incidents.append(
            journal_entry(int(ts), str(actor), str(note), _context(str(ctx)))
        )
    if state.get("kill_switch") == "1":  # armed survives restarts; only an operator disarms
        engine.risk.kill_switch = True
        engine.risk.kill_reason = state.get("kill_reason", "armed before restart")
    halted = halt.read()
    if halted:  # the DB may not have recorded it (a full disk): arm, and record it now
        engine.arm_kill_switch("engine", f"halted before restart: {halted}")
    if state.get("safe_mode") == "1":
        engine.risk.safe_mode = True
    now = engine.clock.now_us()
    engine.breakers.restore(state, now)  # a tripped breaker stays tripped across restarts
    kill_scopes.restore(engine, state)  # symbol / model kill switches, reduce-only mode
    restore_preflight(engine.preflight, state.get("preflight_green", ""))


def _make_strategy(
    engine: Engine,
    registry: ModelRegistry | None,
    strategy: str,
    bench_every: int,
    bench_qty_e8: int,
) -> ModelStrategy | AlternatingStrategy | None:
    if registry is not None:
        for row in registry.to_rows():
            engine.recorder.upsert("models", row[0], row)
        return ModelStrategy(engine, registry)
    if strategy == "bench":
        return AlternatingStrategy(engine, engine.symbols[0], bench_every, bench_qty_e8)
    return None


@dataclass(frozen=True)
class _Loaded:
    """What the checked DB (and the journal) say the engine was doing when it last stopped."""

    state: dict[str, str]
    session: int
    venue: Any
    lots: dict[str, int]
    orders: list[oms.Order]
    journal: IntentJournal | None
    positions: list[tuple[Any, ...]]
    last_fill_ms: dict[str, int]
    base_fees: dict[str, int]
    registry: ModelRegistry | None


def _load(
    cfg: Config,
    data_dir: Path,
    con: Any,
    now: int,
    *,
    clock: Clock,
    strategy: str,
    call_later: Callable[..., Any] | None,
    venue: Any,
) -> _Loaded:
    """Step 4: a new session number (committed first), then venue, open orders (DB and intent
    journal), positions, fill statistics and the model registry."""
    state = _state(con)
    session = _next_session(con, state, now)
    venue, lots = _venue(cfg, clock, venue, session, call_later)
    orders = _open_orders(con, venue)
    journal = _open_journal(data_dir, venue)
    if journal is not None:
        orders += _journal_orders(con, journal.path, {o.client_order_id for o in orders})
    positions = con.execute("SELECT * FROM positions").fetchall()
    last_fill_ms, base_fees = _fill_stats(con)
    registry = None
    if strategy == "models":  # the reference is built once, then read from `models`
        registry = _load_registry(con, cfg, now)
        if "models" in state:
            registry.load_state(msgspec.json.decode(state["models"]))
        register_trained(registry, data_dir / "models", now)  # `cockpit model train` bundles
    return _Loaded(
        state, session, venue, lots, orders, journal, positions, last_fill_ms, base_fees, registry
    )


def _start_writer(
    cfg: Config,
    data_dir: Path,
    con: Any,
    checked: DataDirState,
    loaded: _Loaded,
    *,
    clock: Clock,
    metrics_file: Path | None,
) -> tuple[Engine, Writer, Path]:
    """Step 5: metrics, the writer thread (it advances the audit head file on every commit) and
    the engine that hands it batches, continuing the audit chain where the DB left it."""
    head_file = HeadFile(data_dir / "audit" / "head.json")
    seq, last_hash = tail_state(con)
    metrics = EngineMetrics(tuple(cfg.symbols), list(GATE_NAMES))
    mpath = metrics_file or metrics_path(cfg, data_dir)
    if mpath.parent.exists():
        clean_stale_temps(mpath.parent, mpath.name)

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
        venue=loaded.venue,
        audit=AuditChain(checked.key, seq, last_hash),
        metrics=metrics,
        session=loaded.session,
        lot_e8=loaded.lots,
        journal=loaded.journal,
        on_batch=writer.submit,
    )
    if tuple(engine.gates.states) != GATE_NAMES:
        raise RuntimeError("gate gauges must match the pipeline: fix GATE_NAMES")
    return engine, writer, mpath


def _take_over(
    engine: Engine,
    con: Any,
    loaded: _Loaded,
    halt: HaltFile,
    *,
    strategy: str,
    bench_every: int,
    bench_qty_e8: int,
) -> ModelStrategy | AlternatingStrategy | None:
    """Step 6: flags as they were (kill switch, safe mode, halt), open orders and positions
    adopted, today's counters rebuilt, the strategy attached."""
    engine.recorder.persisted.update(loaded.state)
    engine.portfolio.base_fees_e8 = loaded.base_fees
    engine.recon.last_fill_ms = loaded.last_fill_ms
    if hasattr(loaded.venue, "last_trade_ms"):  # catch-up starts from our last recorded fill
        loaded.venue.last_trade_ms.update(loaded.last_fill_ms)
    halt.prepare()
    _restore_flags(engine, con, loaded.state, halt)
    rehydrate.adopt(engine, loaded.orders, loaded.positions)  # open orders and positions
    day_counters.rebuild(engine, con)  # today's limits survive a restart
    engine.strategy = _make_strategy(engine, loaded.registry, strategy, bench_every, bench_qty_e8)
    return engine.strategy


def _assemble(
    cfg: Config,
    data_dir: Path,
    con: Any,
    checked: DataDirState,
    now: int,
    *,
    clock: Clock,
    strategy: str,
    bench_every: int,
    bench_qty_e8: int,
    call_later: Callable[..., Any] | None,
    metrics_file: Path | None,
    lock: EngineLock,
    venue: Any,
) -> Booted:
    """Everything after the DB passed its checks: load, writer and engine, take over, audit."""
    loaded = _load(
        cfg, data_dir, con, now, clock=clock, strategy=strategy, call_later=call_later, venue=venue
    )
    engine, writer, mpath = _start_writer(
        cfg, data_dir, con, checked, loaded, clock=clock, metrics_file=metrics_file
    )
    halt = HaltFile(data_dir)
    strat = _take_over(
        engine,
        con,
        loaded,
        halt,
        strategy=strategy,
        bench_every=bench_every,
        bench_qty_e8=bench_qty_e8,
    )
    engine.recorder.audit(
        "engine",
        "startup",
        {
            "session": loaded.session,
            "profile": cfg.name,
            "venue": loaded.venue.name,
            "pid": lock.pid,
            "open_orders": len(loaded.orders),
            "wall_ts": time.time(),
        },
    )
    engine.gates.refresh(now)
    return Booted(
        cfg=cfg,
        engine=engine,
        strategy=strat,
        writer=writer,
        lock=lock,
        con=con,
        metrics_path=mpath,
        data_dir=data_dir,
        journal=loaded.journal,
        halt=halt,
    )
