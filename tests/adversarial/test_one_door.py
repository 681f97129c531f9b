"""The one door, over the control socket: every request is a command through the API or a query.

An engine that runs as observer (the staging profile) must refuse — and audit — every socket
request that would change its state, whoever connects, while still answering the read-only ones.
The lists come from the code (``engine.runtime.door``), so a new socket request is covered the
day it is added, and a request that is neither a command nor a query is caught here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.runtime.control import call
from engine.runtime.door import DIAGNOSTICS, QUERIES, SOCKET_COMMANDS, SOCKET_ONLY
from tests.acceptance.helpers import query, start
from tests.adversarial.test_control import stop, wait_socket

ARGS = {
    "ack_orphans": {"symbol": "ETH/USDT", "reason": "observer probe"},
    "reduce_only": {"on": True},
    "safe_mode": {"on": False, "reason": "observer probe"},
    "canary_share": {"share": 0.5},
    "breaker_reset": {"name": "all"},
    "incident_note": {"note": "observer probe"},
    "go_live": {"phrase": "I_UNDERSTAND_LIVE_TRADING"},
    "kill_switch_arm": {"symbol": "BTC/USDT"},
    "model_pin": {"model_id": "trend_v1"},
}


def test_socket_when_observer_then_every_command_denied_and_audited_queries_answered(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    proc = start("--headless", "--profile", "staging", "--data-dir", str(d), "--duration", "120")
    try:
        wait_socket(proc, d)
        with pytest.raises(RuntimeError) as unknown:
            call(d, "no_such_request")
        known = set(re.findall(r"'?(\w+)'?", unknown.value.args[0].split("known:", 1)[1]))
        # nothing outside the lists
        assert known == set(SOCKET_COMMANDS) | set(QUERIES) | set(SOCKET_ONLY)
        pol = call(d, "policy", {"command": "flatten", "args": {}})
        assert pol["role"] == "observer"
        for name in SOCKET_COMMANDS:
            with pytest.raises(RuntimeError, match="observers cannot act"):
                call(d, name, ARGS.get(name, {}))
        for name in QUERIES:
            if name in DIAGNOSTICS:
                with pytest.raises(RuntimeError, match="diagnostics are off"):
                    call(d, name)
            elif name == "keyring":  # switches the engine's keyring key: an act, not a read
                with pytest.raises(RuntimeError, match="observers cannot act"):
                    call(d, name, {"op": "add", "keys": ["x"]})
            else:
                assert call(d, name, timeout_s=60) is not None
    finally:
        stop(proc)
    rows = query(d, "SELECT actor, payload FROM audit_log WHERE kind = 'command_denied'")
    denied = [json.loads(payload)["command"] for _actor, payload in rows]
    # every command, and the observer's preflight run: shown to it, refused to be kept
    assert len([c for c in denied if c != "RecordPreflight"]) == len(SOCKET_COMMANDS)
    assert denied.count("RecordPreflight") == 1
    assert all(actor.startswith("unix:") for actor, _ in rows)  # the socket peer, by uid
