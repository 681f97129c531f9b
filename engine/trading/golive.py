"""Go-live: the one command that opens live trading, and every lock it needs.

Locks (each missing one is named, all in one line): the ``live`` profile; ``LIVE_MODE=true`` and
``ENABLE_LIVE_TRADING=true``; the typed ``LIVE_CONFIRM`` phrase, exactly; 2FA enrolled (the TOTP
code itself is checked by ``EngineAPI`` before this runs); a green preflight younger than its TTL;
``SAFE_MODE`` off; the kill switch disarmed.

Invariants: until a go-live succeeds in this process, the ``preflight`` gate refuses every new
live order (a restart needs a new go-live: fail closed). The go-live is written to the audit chain
and the incident journal (shift log) with who, when and the preflight id.
"""

from __future__ import annotations

import hmac

import msgspec

from engine.core.events import CommandResult, RecordPreflight
from engine.trading.engine import Engine


def missing_locks(e: Engine, phrase: str, totp_enrolled: bool) -> list[str]:
    cfg, r, pf = e.cfg, e.risk, e.preflight
    now = e.clock.now_us()
    checks = [
        (cfg.kind == "live", f"profile kind is {cfg.kind!r}, not 'live'"),
        (bool(cfg.live.live_mode), "LIVE_MODE is not true"),
        (bool(cfg.live.enable_live_trading), "ENABLE_LIVE_TRADING is not true"),
        (
            hmac.compare_digest(phrase.encode(), cfg.live.live_confirm.encode()),
            "the LIVE_CONFIRM phrase was not typed exactly",
        ),
        (totp_enrolled, "2FA is not enrolled (`cockpit totp enroll`)"),
        (bool(pf.green_id), "no green preflight (`cockpit preflight`)"),
        (not pf.green_id or now <= pf.valid_until_us, f"preflight {pf.green_id} expired"),
        (not r.safe_mode, "SAFE_MODE is on (`cockpit safe-mode off --reason ...`)"),
        (not r.kill_switch, "the kill switch is armed (`cockpit arm`)"),
    ]
    return [why for ok, why in checks if not ok]


def go_live(e: Engine, phrase: str, actor: str, *, totp_enrolled: bool) -> CommandResult:
    missing = missing_locks(e, phrase, totp_enrolled)
    rec = e.recorder
    if missing:
        rec.audit(actor, "command_denied", {"command": "GoLive", "reason": missing})
        return CommandResult(ok=False, message="go-live refused: " + "; ".join(missing))
    pf = e.preflight
    pf.live_since_us = e.clock.now_us()
    detail = {"preflight_id": pf.green_id, "profile": e.cfg.name, "venue": e.venue.name}
    rec.audit(actor, "went_live", detail)
    e.gates.refresh(pf.live_since_us)
    return CommandResult(ok=True, message=f"LIVE: trading opened (preflight {pf.green_id})")


def record_preflight(e: Engine, cmd: RecordPreflight) -> CommandResult:
    """Keep the result (``preflight_runs`` + audit); a green one opens the preflight gate."""
    now = e.clock.now_us()
    until = now + int(e.cfg.live.preflight_ttl_s * 1e6) if cmd.ok else 0
    checks = msgspec.json.encode([list(c) for c in cmd.checks]).decode()
    e.recorder.add("preflight_runs", (cmd.preflight_id, now, cmd.actor, cmd.ok, until, checks))
    failed = [f"{n}: {why}" for n, status, why in cmd.checks if status == "fail"]
    e.recorder.audit(
        cmd.actor,
        "preflight",
        {"preflight_id": cmd.preflight_id, "ok": cmd.ok, "failed": failed},
    )
    e.preflight.last_checks = cmd.checks
    if cmd.ok:
        pf = e.preflight
        pf.green_id, pf.valid_until_us = cmd.preflight_id, until
        e.recorder.set_state("preflight_green", f"{cmd.preflight_id} {until}")
    e.gates.refresh(now)
    verdict = "GREEN" if cmd.ok else f"RED ({len(failed)} failed)"
    return CommandResult(ok=True, message=f"preflight {cmd.preflight_id} {verdict}")
