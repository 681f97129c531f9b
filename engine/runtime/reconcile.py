"""Reconciliation: the DB/engine view against the venue's truth. One code path for start-up
("rehydrate"), periodic runs and ``cockpit reconcile``.

Classes (``reconciliation_mismatches_total{type,symbol}``):
- ``missing_in_db``: a venue order with our id prefix that we have no record of → adopted.
- ``missing_in_broker``: an order we think is open that the venue does not know. Unsent intents
  (pending/submitted/unknown) older than the grace period → ``never_sent`` (never re-sent); an
  order the venue had acknowledged → alert (fail closed: safe mode on).
- ``status_mismatch``: the venue's state differs → the venue's state is adopted when the state
  machine allows it (it never moves an order backward); fills are fetched for closed orders.
- ``missing_fill``: a venue trade of ours not in the DB → recorded (deduplicated by trade id).
- ``orphan``: a venue order with a foreign id → adopted read-only as external; its symbol is blocked
  for trading until an operator acknowledges it. Until then it is a *standing* finding: every later
  report lists it (``standing``) and is not OK, so the panel and ``cockpit reconcile``'s exit code
  keep showing it; it is resolved by an acknowledgement (engine command path) or when the venue
  no longer has it open (its block is then lifted).
- ``position_mismatch``: venue balances vs baseline + our positions (base assets) → fail closed:
  safe mode on, alert.

Each run is persisted (when, duration, classes) and audited; the ``recon`` readiness signal is set
for ``ttl_s`` (red on a new alert; a standing orphan only blocks its own symbol).

Races: every ``await`` (a venue query, a DB read) lets the engine run, so an order's state is read
again after each one before it is classified; an order that moved meanwhile is left to its own
update (or the next run), never classified on a stale answer.

Depth: periodic runs fetch venue trades from our last recorded fill on. Start-up, manual and
offline (``cockpit reconcile``) runs also compare the venue's trades of the last
``RECENT_WINDOW_S`` against the DB: a fill missing from the DB is recorded, and an order of ours
missing from the DB (closed, so not in the venue's open list) is adopted from the venue through
its trades. An order closed without any fill and deleted from the DB is not seen (it moved no
money); anything older than the window is the audit chain's and the backups' business.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from engine.core.events import ReconDetail, ReconReport
from engine.runtime.recon_report import CLASSES, record_run
from engine.trading import blocks, oms
from engine.trading.commands import Commands
from engine.trading.engine import Engine
from engine.trading.oms import Order
from engine.trading.venue_port import VenueOrderView

log = logging.getLogger("engine.runtime.reconcile")

UNSENT = frozenset({oms.PENDING, oms.SUBMITTED, oms.UNKNOWN})
# how far back a deep run (start-up, manual, offline) compares venue trades with the DB: where the
# last writes before a crash are; bounded so the check costs a few requests, not the venue history
RECENT_WINDOW_S = 900.0


# Reads committed rows through the single writer: (sql, params) -> rows.
DbQuery = Callable[[str, list[Any]], Awaitable[list[tuple[Any, ...]]]]


class Reconciler:
    """Settles the engine's view with the venue's: start-up, periodic and manual runs share one path.

    Each run compares open orders, recent trades and balances with the DB and memory; unknown
    orders are resolved by querying the venue, foreign orders block their symbol until an operator
    acknowledges them, and every finding is a typed ``ReconDetail`` in the run's ``ReconReport``."""

    def __init__(
        self,
        engine: Engine,
        *,
        grace_s: float = 3.0,
        ttl_s: float = 90.0,
        db: DbQuery | None = None,
    ) -> None:
        """``db``: ``async (sql, params) -> rows`` over the engine's DB (to settle fills of orders
        that are not in memory: earlier sessions' closed orders)."""
        self.engine = engine
        self.db = db
        self.venue = engine.venue
        self.grace_us = int(grace_s * 1e6)
        self.ttl_s = ttl_s
        self.prefix = f"{engine.cfg.oms.client_id_prefix}-"
        self.mismatches = engine.metrics.recon_mismatches
        self.last: ReconReport | None = None
        self.external: dict[str, VenueOrderView] = {}  # orphan orders, read-only
        # fetch venue trades from our last recorded fill on (not the venue's whole history)
        self._since_ms: dict[str, int] = dict(engine.recon.last_fill_ms)
        self._lock = asyncio.Lock()

    async def run(self, source: str) -> ReconReport:
        async with self._lock:  # one run at a time (periodic vs manual)
            return await self._run(source)

    async def _run(self, source: str) -> ReconReport:
        e = self.engine
        t0 = time.perf_counter()
        found: Counter[str] = Counter()
        details: list[ReconDetail] = []
        alerts: list[str] = []

        def note(kind: str, symbol: str, cid: str, action: str, detail: str = "") -> None:
            found[kind] += 1
            self.mismatches.labels(kind, symbol).inc()
            details.append(
                ReconDetail(
                    type=kind, symbol=symbol, client_order_id=cid, action=action, detail=detail
                )
            )

        venue_open: dict[str, VenueOrderView] = {}
        for symbol in e.symbols:
            for v in await self.venue.fetch_open(symbol):
                venue_open[v.client_order_id or f"venue:{v.venue_order_id}"] = v
        self._open_orders(venue_open, note, alerts)
        standing = self._standing(venue_open, note)
        await self._missing(venue_open, note, alerts)
        for symbol in e.symbols:
            await self._fills(symbol, note, deep=source != "periodic")
        await self._unmatched(note, alerts)
        await self._positions(note, alerts)
        return self._report(source, t0, found, details, alerts, standing)

    def _report(
        self,
        source: str,
        t0: float,
        found: Counter[str],
        details: list[ReconDetail],
        alerts: list[str],
        standing: list[str],
    ) -> ReconReport:
        e = self.engine
        duration_ms = (time.perf_counter() - t0) * 1000
        ok = not alerts and not standing
        report = ReconReport(
            ts_us=e.clock.now_us(),
            source=source,
            venue=self.venue.name,
            duration_ms=round(duration_ms, 2),
            ok=ok,
            mismatches={c: found.get(c, 0) for c in CLASSES},
            resolved=sum(found.values()) - len(alerts),
            alerts=alerts,
            standing=standing,
            details=details[:200],
        )
        self.last = report
        e.market.readiness["recon"] = (
            not alerts,
            time.monotonic() + self.ttl_s,
            "; ".join(alerts) or "reconciled",
        )
        record_run(e, report)
        if alerts:
            e.recorder.alerts.extend(f"reconciliation: {a}" for a in alerts)
            Commands(e).set_safe_mode(
                True, "reconciler", "reconciliation alert: " + "; ".join(alerts)
            )
            log.error("reconciliation (%s) found problems: %s", source, alerts)
        elif standing:
            log.warning("reconciliation (%s): standing findings: %s", source, standing)
        else:
            log.info(
                "reconciliation (%s) ok in %.1f ms: %s",
                source,
                duration_ms,
                report.mismatches,
                extra={"fields": {"recon": report.mismatches}},
            )
        return report

    def _open_orders(
        self, venue_open: dict[str, VenueOrderView], note: Any, alerts: list[str]
    ) -> None:
        """The venue's open orders: ours (state adopted or order adopted) and foreign ones."""
        e = self.engine
        for key, v in venue_open.items():
            o = e.order_cache.orders.get(v.client_order_id)
            if o is not None:
                if o.status != v.status and self._adopt_state(o, v):
                    note(
                        "status_mismatch",
                        v.symbol,
                        o.client_order_id,
                        "adopted venue state",
                        f"{v.status}",
                    )
            elif v.client_order_id.startswith(self.prefix):
                self._adopt_missing(v)
                note("missing_in_db", v.symbol, v.client_order_id, "adopted")
            elif key not in self.external and key not in e.recon.acked_orphans:
                self.external[key] = v
                e.recon.orphan_keys.setdefault(v.symbol, set()).add(key)
                e.market.blocked.block(
                    v.symbol,
                    blocks.ORPHAN,
                    (
                        f"{v.symbol}: orphan venue order {v.client_order_id or v.venue_order_id} "
                        "(foreign id): acknowledge to trade"
                    ),
                )
                note("orphan", v.symbol, v.client_order_id, "blocked symbol, read-only")
                alerts.append(f"orphan order {key} on {v.symbol}")

    def _standing(self, venue_open: dict[str, VenueOrderView], note: Any) -> list[str]:
        """Orphans still open at the venue and not acknowledged (listed by every run until
        resolved); those gone from the venue are resolved and their symbol's block lifted."""
        e = self.engine
        standing = []
        for key, v in list(self.external.items()):
            if key in venue_open:
                if key not in e.recon.acked_orphans:
                    standing.append(
                        f"orphan order {key} on {v.symbol}: symbol blocked until acknowledged"
                    )
                continue
            del self.external[key]  # filled or canceled at the venue: nothing left to block
            keys = e.recon.orphan_keys.get(v.symbol, set())
            keys.discard(key)
            if not keys:
                e.recon.orphan_keys.pop(v.symbol, None)
                if e.market.blocked.unblock(v.symbol, blocks.ORPHAN):
                    log.info("orphan %s gone from the venue: %s unblocked", key, v.symbol)
            details = "no longer open at the venue"
            note("orphan", v.symbol, v.client_order_id, "resolved", details)
        return standing

    async def _missing(
        self, venue_open: dict[str, VenueOrderView], note: Any, alerts: list[str]
    ) -> None:
        """Orders we think open that the venue's open list lacks: asked about one by one."""
        e = self.engine
        now_us = e.clock.now_us()
        later: list[Order] = []
        for o in list(e.order_cache.open_orders.values()):
            if o.client_order_id in venue_open or not o.is_open:  # closed by an earlier await
                continue
            if o.status in UNSENT and now_us - (o.submitted_us or o.created_us) < self.grace_us:
                later.append(o)  # may still be in flight: look again after the grace period
                continue
            await self._settle_missing(o, note, alerts)
        if later:
            oldest = min(o.submitted_us or o.created_us for o in later)
            await asyncio.sleep(max(0.0, (oldest + self.grace_us - e.clock.now_us()) / 1e6))
            for o in later:
                if o.is_open:
                    await self._settle_missing(o, note, alerts)

    # --- pieces ------------------------------------------------------------------------------

    def _adopt_state(self, o: Order, v: VenueOrderView) -> bool:
        before = o.status
        self.engine.on_venue_update(_update(v, self.engine.clock.now_us()))
        return o.status != before

    def _adopt_missing(self, v: VenueOrderView) -> None:
        e = self.engine
        cid = v.client_order_id
        o = Order(
            cid,
            cid.rsplit(".", 1)[0],
            v.symbol,
            v.side,
            v.qty_e8,
            order_type=v.order_type,
            limit_price_e8=v.price_e8,
            created_us=e.clock.now_us(),
        )
        o.status = oms.SUBMITTED
        o.submitted_us = o.created_us
        e.order_cache.orders[cid] = o
        e.order_cache.open_orders[cid] = o
        e.on_venue_update(_update(v, e.clock.now_us()))

    async def _settle_missing(self, o: Order, note: Any, alerts: list[str]) -> None:
        e = self.engine
        asked = (o.status, o.filled_qty_e8)
        u = await self.venue.query_order(o.client_order_id, o.symbol)
        if (o.status, o.filled_qty_e8) != asked:
            # its own answer (ack, reject, fill) arrived while we asked: the venue's reply may
            # predate it, so it classifies nothing; an order still open is looked at next run
            return
        if u is not None:  # closed at the venue while we were away
            before = o.status
            e.on_venue_update(u)
            if o.status != before:
                note(
                    "status_mismatch", o.symbol, o.client_order_id, "adopted final state", u.status
                )
            return
        if o.status in UNSENT:
            was = o.status
            if o.transition(oms.NEVER_SENT, e.clock.now_us(), "venue has no such order"):
                e.order_changed(o, was)
                e.metrics_recovered.inc()
                note("missing_in_broker", o.symbol, o.client_order_id, "marked never_sent")
            return
        note(
            "missing_in_broker",
            o.symbol,
            o.client_order_id,
            "alert",
            f"venue forgot an acknowledged order ({o.status})",
        )
        alerts.append(f"acknowledged order {o.client_order_id} unknown to the venue")

    async def _fills(self, symbol: str, note: Any, *, deep: bool = False) -> None:
        """Venue trades from our last recorded fill on; a deep run also looks ``RECENT_WINDOW_S``
        back and hands fills of ours that the DB lacks (their order no longer in memory: closed
        in an earlier session, or gone from the DB) to ``_unmatched``."""
        e = self.engine
        since = self._since_ms.get(symbol)
        since = since - 60_000 if since else None
        window_ms = int(e.clock.now_us() // 1000 - RECENT_WINDOW_S * 1000)
        if deep:
            since = min(since, window_ms) if since is not None else window_ms
        fills = await self.venue.fetch_fills(symbol, since)
        known: set[str] | None = None
        for f in fills:
            self._since_ms[symbol] = max(self._since_ms.get(symbol, 0), f.ts_us // 1000)
            o = e.order_cache.orders.get(f.client_order_id)
            if o is not None:
                if f.trade_id not in o.trade_ids:
                    e.on_venue_fill(f)
                    note("missing_fill", symbol, f.client_order_id, "recorded", f.trade_id)
                continue
            if not deep or not f.client_order_id.startswith(self.prefix):
                continue  # foreign: an orphan, counted once as such
            if known is None and self.db is not None:
                known = {
                    r[0]
                    for r in await self.db(
                        "SELECT trade_id FROM fills WHERE symbol = ? AND ts_us >= ?",
                        [symbol, min(since or 0, f.ts_us // 1000) * 1000],
                    )
                }
            if known is not None and f.trade_id not in known:
                e.recon.unmatched_fills.setdefault(f.trade_id, f)

    async def _unmatched(self, note: Any, alerts: list[str]) -> None:
        """Fills whose order is not in memory: a duplicate of a recorded fill is dropped; a fill
        of an earlier session's order is applied after loading that order from the DB; a fill
        of a foreign order is an alert. Nothing is applied without knowing which case it is."""
        e = self.engine
        if not e.recon.unmatched_fills or self.db is None:
            return
        for tid, f in list(e.recon.unmatched_fills.items()):
            if await self.db("SELECT 1 FROM fills WHERE trade_id = ?", [tid]):
                del e.recon.unmatched_fills[tid]  # already recorded: a late duplicate delivery
                continue
            cid = f.client_order_id
            if (
                cid in e.order_cache.orders
            ):  # adopted by an earlier fill of this loop (or meanwhile)
                del e.recon.unmatched_fills[tid]
                if tid not in e.order_cache.orders[cid].trade_ids:
                    e.on_venue_fill(f)
                    note("missing_fill", f.symbol, cid, "recorded", tid)
                continue
            rows = await self.db("SELECT * FROM orders WHERE client_order_id = ?", [cid])
            if rows:
                tids = {
                    r[0]
                    for r in await self.db(
                        "SELECT trade_id FROM fills WHERE client_order_id = ?", [cid]
                    )
                }
                if cid in e.order_cache.orders:  # arrived during the await: the loaded row is stale
                    continue
                e.order_cache.orders[cid] = Order.from_row(rows[0], tids)
                del e.recon.unmatched_fills[tid]
                e.on_venue_fill(f)
                note("missing_fill", f.symbol, cid, "recorded (order of an earlier session)", tid)
            elif cid.startswith(self.prefix):
                u = await self.venue.query_order(cid, f.symbol)
                if u is not None and cid not in e.order_cache.orders:
                    # the venue's filled quantity covers its other fills too (applied next)
                    o = Order(
                        cid,
                        cid.rsplit(".", 1)[0],
                        f.symbol,
                        f.side,
                        max(f.qty_e8, u.filled_qty_e8),
                        created_us=f.ts_us,
                    )
                    o.status, o.submitted_us = oms.SUBMITTED, f.ts_us
                    e.order_cache.orders[cid] = o
                    e.order_cache.open_orders[cid] = o
                    del e.recon.unmatched_fills[tid]
                    e.on_venue_update(u)
                    e.on_venue_fill(f)
                    note("missing_in_db", f.symbol, cid, "adopted with its fill", tid)
            else:
                del e.recon.unmatched_fills[tid]
                note("orphan", f.symbol, cid, "alert", f"foreign trade {tid}")
                alerts.append(f"trade {tid} of a foreign order on {f.symbol}")

    async def _positions(self, note: Any, alerts: list[str]) -> None:
        e = self.engine
        balances = await self.venue.fetch_balances()
        if balances is None:
            return  # paper: positions are the engine's own ledger
        baseline = venue_baseline(e, balances)
        for symbol in e.symbols:
            base = symbol.split("/")[0]
            held = e.portfolio.positions[symbol].qty_e8 - e.portfolio.base_fees_e8.get(symbol, 0)
            expected = baseline.get(base, 0) + held
            actual = balances.get(base, 0)
            if abs(actual - expected) >= e.lot(symbol):
                note(
                    "position_mismatch",
                    symbol,
                    "",
                    "alert",
                    f"venue {base} {actual / 1e8:g} vs expected {expected / 1e8:g}",
                )
                alerts.append(f"position mismatch on {symbol}")

    async def confirm_timeouts(self, timeout_ms: float) -> int:
        """Orders sent but unanswered for longer than the confirmation timeout → unknown → ask."""
        e = self.engine
        now = e.clock.now_us()
        late = [
            o
            for o in e.order_cache.open_orders.values()
            if o.status == oms.SUBMITTED and now - o.submitted_us > timeout_ms * 1000
        ]
        for o in late:
            was = o.status
            if o.transition(oms.UNKNOWN, now, f"no ack within {timeout_ms:g} ms"):
                e.order_changed(o, was)
            u = await self.venue.query_order(o.client_order_id, o.symbol)
            if u is not None:
                e.on_venue_update(u)
        return len(late)


def venue_baseline(e: Engine, balances: dict[str, int]) -> dict[str, int]:
    """Venue balances that correspond to a flat book: fixed the first time they are seen.

    Stored as balances minus our positions at that moment, so later runs compare
    ``balance == baseline + position`` for every base asset.
    """
    if e.recon.venue_baseline is None:
        raw = e.recorder.state("venue_baseline")
        if raw:
            e.recon.venue_baseline = {k: int(v) for k, v in msgspec.json.decode(raw).items()}
        else:
            base = dict(balances)
            for sym, p in e.portfolio.positions.items():
                asset = sym.split("/")[0]
                base[asset] = base.get(asset, 0) - p.qty_e8
            e.recon.venue_baseline = base
            e.recorder.set_state("venue_baseline", msgspec.json.encode(base).decode())
    return e.recon.venue_baseline


def _update(v: VenueOrderView, ts_us: int) -> Any:
    from engine.core.events import VenueOrderUpdate

    return VenueOrderUpdate(
        client_order_id=v.client_order_id,
        venue_order_id=v.venue_order_id,
        status=v.status,
        filled_qty_e8=v.filled_qty_e8,
        ts_us=ts_us,
    )
