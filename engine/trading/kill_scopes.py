"""Kill-switch scopes, reduce-only mode and flatten (FIA, "Best practices for automated trading
risk controls", 2015, §1.11: kill switches by account, symbol and strategy; reduce-only).

Role: the operator's finer stops, called by ``trading.commands.Commands`` once the API has checked
role and TOTP; ``restore`` puts them back at start. The global kill switch stays on the engine
(``Engine.arm_kill_switch``: the engine's own halt uses it too).

Invariants:
- A scope is ``symbol:<SYMBOL>`` or ``model:<MODEL_ID>``; arming one cancels that scope's resting
  orders; every scope, and reduce-only mode, is persisted in ``engine_state`` (``kill_scopes``,
  ``reduce_only``) and restored at start (fail closed: an unreadable value arms a global kill).
- Flatten cancels every open order and sends, per non-flat position, one market order of the
  opposite side for the whole position, flagged ``reduce_only``: such an order passes the kill
  switch, scopes, reduce-only and safe mode (it only reduces) and every other gate as usual
  (stale prices, skew, venue limits still stop it). It is audited with its actor and reason.
"""

from __future__ import annotations

import re

import msgspec

from engine.core.events import CommandResult, SubmitOrder
from engine.core.units import SCALE
from engine.trading import oms
from engine.trading.engine import Engine


def scope_key(symbol: str, model: str) -> str:
    if symbol and model:
        raise ValueError("a kill-switch scope is one symbol or one model, not both")
    return f"symbol:{symbol}" if symbol else f"model:{model}"


_MODEL_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _valid_scope(e: Engine, symbol: str, model: str) -> str | None:
    if symbol and symbol not in e.symbols:
        return f"unknown symbol {symbol!r} (traded: {', '.join(e.symbols)})"
    if model and not _MODEL_ID.fullmatch(model):
        return f"not a model id: {model!r} (letters, digits, _ . -)"
    if symbol and model:
        return "a kill-switch scope is one symbol or one model, not both"
    return None


def _persist(e: Engine) -> None:
    r = e.risk
    e.recorder.set_state("kill_scopes", msgspec.json.encode(r.kill_scopes).decode())
    e.recorder.set_state("reduce_only", r.reduce_only)
    e.gates.refresh(e.clock.now_us())


def arm_scope(e: Engine, symbol: str, model: str, actor: str, reason: str) -> CommandResult:
    bad = _valid_scope(e, symbol, model)
    if bad:
        return CommandResult(ok=False, message=bad)
    key = scope_key(symbol, model)
    why = reason or f"armed by {actor}"
    e.risk.kill_scopes[key] = why
    _persist(e)
    e.recorder.audit(actor, "kill_switch_armed", {"scope": key, "reason": why})
    canceled = 0
    for o in list(e.order_cache.open_orders.values()):
        if o.status in (oms.ACCEPTED, oms.PARTIALLY_FILLED) and (
            o.symbol == symbol or (model and o.model_id == model)
        ):
            e.venue.cancel(o.client_order_id, o.symbol)
            canceled += 1
    return CommandResult(
        ok=True, message=f"kill switch armed for {key}: {why} ({canceled} resting canceled)"
    )


def disarm_scope(e: Engine, symbol: str, model: str, actor: str, reason: str) -> CommandResult:
    bad = _valid_scope(e, symbol, model)
    if bad:
        return CommandResult(ok=False, message=bad)
    key = scope_key(symbol, model)
    if e.risk.kill_scopes.pop(key, None) is None:
        return CommandResult(ok=False, message=f"no kill switch armed for {key}")
    _persist(e)
    e.recorder.audit(actor, "kill_switch_disarmed", {"scope": key, "reason": reason})
    return CommandResult(ok=True, message=f"kill switch disarmed for {key}")


def set_reduce_only(e: Engine, on: bool, actor: str, reason: str) -> CommandResult:
    if not on and not e.risk.reduce_only:
        return CommandResult(ok=False, message="reduce-only mode is not on")
    e.risk.reduce_only = (reason or f"set by {actor}") if on else ""
    _persist(e)
    e.recorder.audit(actor, "reduce_only", {"on": on, "reason": reason})
    return CommandResult(ok=True, message=f"reduce-only mode {'on' if on else 'off'}")


def flatten(e: Engine, actor: str, reason: str) -> CommandResult:
    """Cancel all, then close every position at market with reduce-only orders."""
    canceled = 0
    for o in list(e.order_cache.open_orders.values()):
        if o.status in (oms.ACCEPTED, oms.PARTIALLY_FILLED):
            e.venue.cancel(o.client_order_id, o.symbol)
            canceled += 1
    e.recorder.audit(actor, "flatten_requested", {"reason": reason, "canceled": canceled})
    sent: list[str] = []
    refused: list[str] = []
    for symbol, pos in e.portfolio.positions.items():
        qty = pos.qty_e8  # read first: an in-process venue fills inside submit
        if not qty:
            continue
        res = e.submit(
            SubmitOrder(
                decision_id=e.ids.next(),
                symbol=symbol,
                side="sell" if qty > 0 else "buy",
                qty_e8=abs(qty),
                strategy="flatten",
                actor=actor,
                reduce_only=True,
            ),
            routed="manual",
        )
        line = f"{symbol} {abs(qty) / SCALE:g}"
        (sent if res.ok else refused).append(line if res.ok else f"{line}: {res.message}")
    parts = [f"{canceled} resting canceled", f"closing: {', '.join(sent) or 'nothing open'}"]
    if refused:
        parts.append(f"REFUSED: {'; '.join(refused)}")
    return CommandResult(ok=not refused, message="flatten: " + "; ".join(parts))


def restore(e: Engine, state: dict[str, str]) -> None:
    """At start: the scopes and reduce-only mode as the previous run left them."""
    raw = state.get("kill_scopes", "")
    if raw:
        try:
            scopes = msgspec.json.decode(raw, type=dict[str, str])
        except msgspec.DecodeError:
            e.risk.kill_switch = True  # fail closed: the scopes cannot be read back
            e.risk.kill_reason = f"kill_scopes unreadable at start ({raw[:40]!r}): review"
            scopes = {}
        e.risk.kill_scopes.update(scopes)
    e.risk.reduce_only = state.get("reduce_only", "")
