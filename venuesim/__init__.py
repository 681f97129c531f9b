"""Loopback venue simulator speaking Binance spot's REST + websocket protocol.

Role: a stand-in exchange on 127.0.0.1 that UNMODIFIED ccxt (``ccxt.pro.binance`` and
``ccxt.async_support.binance``) trades against when pointed at it with ``venue_urls(port)`` and
``ccxt_config()`` (the URL-override recipe). It keeps its own durable
truth (orders, trades, balances) across restarts and can inject faults (admin.py, netsim.py).

Modules: venue.py (lifecycle, price loop), app.py (REST), ws.py (websockets), exchange.py
(matching, balances), book.py (depth model), store.py (sqlite), auth.py (HMAC, recvWindow),
netsim.py (faults), admin.py (admin endpoints), model.py (data, wire payloads).
"""

from __future__ import annotations

from typing import Any

from engine.venues.binance_urls import binance_urls, ccxt_options
from venuesim.venue import LOOPBACK, VenueSim


def venue_urls(port: int) -> dict[str, Any]:
    """The exact ``ex.urls["api"]`` dict to install (replace, never merge) on a ccxt binance."""
    return binance_urls(f"http://{LOOPBACK}:{port}", f"ws://{LOOPBACK}:{port}")


def ccxt_config(
    api_key: str = "sim-key",
    secret: str = "sim-secret",  # noqa: S107 - the simulator's fixed test credentials, not a secret
    timeout_ms: int = 3000,
) -> dict[str, Any]:
    """ccxt constructor config for the simulator (no call leaves loopback once urls are set)."""
    return {
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": True,
        "timeout": timeout_ms,
        "options": ccxt_options(5000),
    }


__all__ = ["LOOPBACK", "VenueSim", "binance_urls", "ccxt_config", "venue_urls"]
