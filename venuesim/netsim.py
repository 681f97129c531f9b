"""Fault injection of the venue simulator: NET_SIM wire faults and one-shot REST injections.

Role: make the network and the venue misbehave on the server's side of the wire, so that the
real client stack (aiohttp + ccxt) experiences the faults exactly as it would in production.

Invariants:
- ``NetSim`` with every figure at zero is a no-op (no sleeps, no random draws that matter).
- Only market-data WS frames are ever dropped or reordered; user-data frames and REST replies
  are only delayed (a TCP stream does not lose frames; a disconnect is how they get lost).
- An injection rule fires for at most ``count`` matching requests, then disappears. A ``ban``
  rule, when it fires, bans the client for ``retry_after_s``: every REST request then gets HTTP
  418 with ``Retry-After`` (the seconds left) and "IP banned until <ms>", as Binance does.
- Randomness comes from one ``random.Random(seed)``, so a fault sequence is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any

from venuesim.protocol import bad

INJECT_KINDS = ("binance_error", "http_error", "delay", "accept_late", "drop", "ban")
BAN_MSG = "Way too much request weight used; IP banned until {until}. Please use WebSocket Streams."


@dataclass(slots=True)
class NetConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    drop_rate: float = 0.0
    disconnect_interval_s: float = 0.0
    reorder_rate: float = 0.0
    seed: int = 0


class NetSim:
    """Current NET_SIM settings plus the random source for their decisions."""

    def __init__(self) -> None:
        self.cfg = NetConfig()
        self._rng = random.Random(0)

    def configure(self, payload: dict[str, Any]) -> NetConfig:
        """Replace the settings; unknown keys are an error (typos must not silently do nothing)."""
        names = {f.name for f in fields(NetConfig)}
        unknown = set(payload) - names
        if unknown:
            raise bad(-1104, f"Unknown net settings: {sorted(unknown)}")
        cfg = NetConfig(**{k: type(getattr(NetConfig(), k))(v) for k, v in payload.items()})
        for rate in (cfg.drop_rate, cfg.reorder_rate):
            if not 0.0 <= rate <= 1.0:
                raise bad(-1100, "rates must be within 0..1")
        if min(cfg.latency_ms, cfg.jitter_ms, cfg.disconnect_interval_s) < 0:
            raise bad(-1100, "latency, jitter and disconnect interval must be >= 0")
        self.cfg = cfg
        self._rng = random.Random(cfg.seed)
        return cfg

    def delay_s(self) -> float:
        c = self.cfg
        if not (c.latency_ms or c.jitter_ms):
            return 0.0
        jitter = self._rng.uniform(-c.jitter_ms, c.jitter_ms) if c.jitter_ms else 0.0
        return max(0.0, c.latency_ms + jitter) / 1000.0

    def drop(self) -> bool:
        return bool(self.cfg.drop_rate) and self._rng.random() < self.cfg.drop_rate

    def reorder(self) -> bool:
        return bool(self.cfg.reorder_rate) and self._rng.random() < self.cfg.reorder_rate


@dataclass(slots=True)
class Injection:
    """One REST fault rule; see the admin docs in admin.py for the meaning of each kind."""

    kind: str
    method: str = "*"
    path: str = "*"
    count: int = 1
    status: int = 400
    code: int = -1000
    msg: str = "An unknown error occurred while processing the request."
    retry_after_s: int | None = None
    delay_ms: int = 0
    process: bool = True

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.path in ("*", path)


class Injector:
    """Pending injection rules, first match wins."""

    def __init__(self) -> None:
        self.rules: list[Injection] = []
        self.banned_until_ms = 0  # server time; 0 = not banned

    def add(self, payload: dict[str, Any]) -> Injection:
        kind = payload.get("kind")
        if kind not in INJECT_KINDS:
            raise bad(-1100, f"kind must be one of {INJECT_KINDS}")
        names = {f.name for f in fields(Injection)}
        unknown = set(payload) - names
        if unknown:
            raise bad(-1104, f"Unknown injection keys: {sorted(unknown)}")
        rule = Injection(**payload)
        rule.method = rule.method.upper()
        if rule.count < 1:
            raise bad(-1100, "count must be >= 1")
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> Injection | None:
        for rule in self.rules:
            if rule.matches(method, path):
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
                return rule
        return None

    def clear(self) -> None:
        self.rules.clear()
        self.banned_until_ms = 0

    def ban_left_ms(self, now_ms: int, rule: Injection | None) -> int:
        """Milliseconds of IP ban left (a ``ban`` rule that fired starts one)."""
        if rule is not None and rule.kind == "ban":
            self.banned_until_ms = max(
                self.banned_until_ms, now_ms + int((rule.retry_after_s or 60) * 1000)
            )
        return max(0, self.banned_until_ms - now_ms)
