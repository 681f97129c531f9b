"""Every operator action from a shell, on a running engine, through its control socket.

Role: ``cockpit arm|disarm|kill|reduce-only|flatten|safe-mode|model|risk|breaker|incident|
go-live|ack-orphans|status`` do what the TUI's keys do. Each becomes one socket request that the
engine turns into its command through ``EngineAPI`` — the same path, role check, TOTP check and
audit as the TUI — under the caller the kernel reports (``unix:<user>(uid …,pid …)``) with the
role the roles file gives that user.

Before a critical action the CLI asks the engine what it needs (``policy``): an observer is not
prompted at all (the engine refuses and audits the attempt); otherwise it asks for confirmation
(``--yes`` skips it; off a terminal it is required) and, for what can add risk when 2FA is
enrolled, a TOTP code (``--totp CODE``, or a hidden prompt). ``go-live`` also asks for the typed
``LIVE_CONFIRM`` phrase (``--phrase``, or a prompt).

Exit codes: 0 done; 1 the engine refused (locks, wrong code, observer, nothing to do);
2 bad input, or confirmation / code / phrase missing off a terminal; 3 no engine runs on this
data dir (these commands need one; nothing is changed).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any

from engine.config.loader import resolve_data_dir
from engine.runtime.control import NotRunning, call

# CLI verb -> (socket request, args builder, what the confirmation says)
Build = Callable[[argparse.Namespace], tuple[str, dict[str, Any], str]]


def _scope(a: argparse.Namespace) -> dict[str, str]:
    return {"symbol": getattr(a, "symbol", None) or "", "model": getattr(a, "model", None) or ""}


def _where(a: argparse.Namespace) -> str:
    sc = _scope(a)
    return (
        f" for symbol {sc['symbol']}"
        if sc["symbol"]
        else (f" for model {sc['model']}" if sc["model"] else "")
    )


def _arm(a: argparse.Namespace) -> tuple[str, dict[str, Any], str]:
    where = _where(a)
    what = f"lift the kill switch{where}" if where else "arm trading (disarm the kill switch)"
    return "kill_switch_disarm", {**_scope(a), "reason": a.reason}, what


def _kill(a: argparse.Namespace) -> tuple[str, dict[str, Any], str]:
    effect = f"ARM THE KILL SWITCH{_where(a)} (stop new orders, cancel resting ones)"
    return "kill_switch_arm", {**_scope(a), "reason": a.reason}, effect


def _onoff(a: argparse.Namespace, name: str, label: str) -> tuple[str, dict[str, Any], str]:
    return name, {"on": a.state == "on", "reason": a.reason}, f"turn {label} {a.state}"


def _canary(text: str) -> float:
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a share: {text!r} (e.g. 0.05 or 5%)") from None
    if not 0 <= v <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is outside 0..1 (use 0.05 or 5%)")
    return v


def _model(a: argparse.Namespace) -> tuple[str, dict[str, Any], str]:
    match a.model_cmd:
        case "pin":
            return "model_pin", {"model_id": a.model_id}, f"pin model {a.model_id}"
        case "unpin":
            return "model_pin", {"model_id": ""}, "unpin the model (the router decides again)"
        case "challenger":
            return (
                "model_challenger",
                {"model_id": a.model_id, "reason": a.reason},
                f"make {a.model_id} the challenger (it trades at the canary share)",
            )
        case "promote":
            return "model_promote", {"reason": a.reason}, "promote the challenger to champion"
        case "rollback":
            return "model_rollback", {"reason": a.reason}, "roll back the last promotion"
    return "canary_share", {"share": a.share}, f"set the canary share to {a.share:g}"


VERBS: dict[str, Build] = {
    "arm": _arm,
    "disarm": _kill,
    "kill": _kill,
    "reduce-only": lambda a: _onoff(a, "reduce_only", "reduce-only mode"),
    "safe-mode": lambda a: _onoff(a, "safe_mode", "safe mode"),
    "flatten": lambda a: (
        "flatten",
        {"reason": a.reason},
        "FLATTEN: cancel every open order and close every position at market",
    ),
    "model": _model,
    "risk": lambda a: (
        "risk_reset",
        {"reason": a.reason},
        "reset risk (drawdown baseline, budgets)",
    ),
    "breaker": lambda a: (
        "breaker_reset",
        {"name": a.name, "reason": a.reason},
        f"reset breaker {a.name}",
    ),
    "incident": lambda a: ("incident_note", {"note": a.text}, ""),
    "go-live": lambda a: ("go_live", {}, "GO LIVE: open live trading with real money"),
    "ack-orphans": lambda a: (
        "ack_orphans",
        {"symbol": a.symbol, "reason": a.reason},
        f"acknowledge foreign orders on {a.symbol} and unblock it",
    ),
}
REPORTS = ("status", "preflight", "go-no-go")
COMMANDS = (*VERBS, *REPORTS)


def shown(text: str) -> str:
    """Engine text as the terminal shows it: control characters escaped (``\\x1b``), never run;
    a reason or model id typed by someone else cannot move the cursor or retitle the window."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _err(msg: str) -> None:
    print(f"cockpit: {shown(msg)}", file=sys.stderr)


def _flags(p: Any, *, reason: bool = True, critical: bool = True) -> None:
    if reason:
        p.add_argument("--reason", default="", help="why (kept in the audit trail)")
    if critical:
        p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        p.add_argument("--totp", help="6-digit TOTP code (prompted on a terminal when needed)")


def _scope_flags(p: Any) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--symbol", help="only this symbol, e.g. BTC/USDT")
    g.add_argument("--model", help="only this model id")


def add_parsers(sub: Any, common: Any) -> None:
    def new(name: str, help_text: str, **kw: Any) -> Any:
        p = sub.add_parser(name, help=help_text)
        common(p)
        _flags(p, **kw)
        return p

    _scope_flags(new("arm", "arm trading: lift the kill switch (all, or --symbol/--model)"))
    new("disarm", "disarm trading: arm the global kill switch")
    _scope_flags(new("kill", "arm the kill switch (all, or only --symbol / --model)"))
    for name, what in (("reduce-only", "reduce-only mode"), ("safe-mode", "safe mode")):
        new(name, f"turn {what} on or off").add_argument("state", choices=("on", "off"))
    new("flatten", "cancel all and close every position at market")
    m = sub.add_parser(
        "model", help="models: pin, unpin, promote, rollback, canary-share; train, list"
    )
    msub = m.add_subparsers(dest="model_cmd", required=True)
    for name, help_text in (
        ("pin", "route every decision to ID"),
        ("unpin", "let the canary router decide again"),
        ("challenger", "make ID (e.g. a trained ml_1h_v2) the challenger"),
        ("promote", "challenger becomes champion"),
        ("rollback", "undo the last promotion"),
        ("canary-share", "share of decisions to the challenger (0.05 or 5%)"),
    ):
        p = msub.add_parser(name, help=help_text)
        common(p)
        _flags(p)
        if name in ("pin", "challenger"):
            p.add_argument("model_id", help="a registered model id (see `cockpit status`)")
        if name == "canary-share":
            p.add_argument("share", type=_canary)
    from cockpit import research_cli  # train / list: research, no engine needed

    research_cli.add_model_parsers(msub, common)
    r = sub.add_parser("risk", help="risk: reset the drawdown baseline and today's budgets")
    rsub = r.add_subparsers(dest="risk_cmd", required=True)
    p = rsub.add_parser("reset", help="runbook 'Reset budget'")
    common(p)
    _flags(p)
    b = sub.add_parser("breaker", help="reset a tripped breaker")
    bsub = b.add_subparsers(dest="breaker_cmd", required=True)
    p = bsub.add_parser("reset", help="error_rate, slippage or all")
    common(p)
    _flags(p)
    p.add_argument("name", help="error_rate | slippage | all")
    i = sub.add_parser("incident", help="incident journal")
    isub = i.add_subparsers(dest="incident_cmd", required=True)
    p = isub.add_parser("note", help="write a note to the incident journal (shift log)")
    common(p)
    p.add_argument("text")
    g = new("go-live", "open live trading (typed phrase + TOTP + green preflight)", reason=False)
    g.add_argument("--phrase", help="the LIVE_CONFIRM phrase (prompted on a terminal)")
    a = new("ack-orphans", "acknowledge foreign venue orders on SYMBOL (unblock it)")
    a.add_argument("symbol", help="the blocked symbol, e.g. BTC/USDT")
    s = sub.add_parser("status", help="the running engine's state")
    common(s)
    s.add_argument("--json", action="store_true")
    pf = sub.add_parser(
        "preflight", help="run the go-live checklist on the running engine; exit 0 all pass"
    )
    common(pf)
    pf.add_argument("--json", action="store_true")
    gn = sub.add_parser("go-no-go", help="the go/no-go verdict; exit 0 GO, 1 NO-GO")
    common(gn)
    gn.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    try:
        if args.cmd == "status":
            return _status(data_dir, args.json)
        if args.cmd == "preflight":
            return _preflight(data_dir, args.json)
        if args.cmd == "go-no-go":
            return _go_no_go(data_dir, args.json)
        return _act(data_dir, args)
    except NotRunning:
        _err(
            f"engine not running on {data_dir} (its control socket does not answer); "
            "start it with `cockpit --headless` or the cockpit, then retry"
        )
        return 3


def _act(data_dir: Any, args: argparse.Namespace) -> int:
    request, req_args, effect = VERBS[args.cmd](args)
    policy = call(data_dir, "policy", {"command": request, "args": req_args})
    if policy["role"] != "observer":  # an observer is refused by the engine, unprompted
        if policy["critical"] and not getattr(args, "yes", False):
            if not sys.stdin.isatty():
                _err(f"{effect}: needs confirmation; add --yes (not a terminal)")
                return 2
            if input(f"{effect}? [y/N] ").strip().lower() not in ("y", "yes"):
                print("not confirmed: nothing done")
                return 2
        if args.cmd == "go-live":
            req_args["phrase"] = _ask(args.phrase, "type the LIVE_CONFIRM phrase: ", secret=False)
            if req_args["phrase"] is None:
                return 2
        if policy["needs_totp"]:
            code = _ask(getattr(args, "totp", None), "TOTP code: ", secret=True)
            if code is None:
                return 2
            req_args["totp"] = code
    try:
        result = call(data_dir, request, req_args)
    except RuntimeError as exc:
        _err(str(exc))
        return 1
    print(shown(result["message"]))
    return 0


def _ask(given: str | None, prompt: str, *, secret: bool) -> str | None:
    if given is not None:
        return given
    if not sys.stdin.isatty():
        _err(f"{prompt.strip().rstrip(':')} needed: pass it as an option (not a terminal)")
        return None
    return getpass.getpass(prompt) if secret else input(prompt)


def _status(data_dir: Any, as_json: bool) -> int:
    st = call(data_dir, "status")
    if as_json:
        print(json.dumps(st, sort_keys=True, default=str))
        return 0
    for key in sorted(st):
        print(shown(f"{key:>16}: {st[key]}"))
    return 0


def _preflight(data_dir: Any, as_json: bool) -> int:
    res = call(data_dir, "preflight", timeout_s=300.0)
    if as_json:
        print(json.dumps(res, sort_keys=True))
    else:
        for c in res["checks"]:
            print(shown(f"{c['status'].upper():>4}  {c['name']:<15} {c['reason']}"))
        verdict = "GREEN: all checks pass" if res["ok"] else "RED: fix the failed checks"
        kept = "" if res["recorded"] else f" (not recorded: {res['message']})"
        print(shown(f"preflight {res['preflight_id']}: {verdict}{kept}"))
    return 0 if res["ok"] else 1


def _go_no_go(data_dir: Any, as_json: bool) -> int:
    res = call(data_dir, "go_no_go", timeout_s=120.0)
    if as_json:
        print(json.dumps(res, sort_keys=True))
    else:
        for c in res["criteria"]:
            mark = "PASS" if c["ok"] else "FAIL"
            print(f"{mark}  {c['name']:<24} {c['value']:<28} (threshold {c['threshold']})")
        print(res["verdict"])
    return 0 if res["go"] else 1
