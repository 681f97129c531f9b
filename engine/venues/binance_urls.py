"""The ccxt recipe for Binance-compatible venues: URL override and options.

Its own tiny module so the engine and the venue simulator share one recipe without the engine
importing the simulator.
"""

from __future__ import annotations

from typing import Any


def binance_urls(http: str, ws: str) -> dict[str, Any]:
    """The ``ex.urls["api"]`` dict to install (replace, never deep-merge) on a ccxt binance."""
    http, ws = http.rstrip("/"), ws.rstrip("/")
    return {
        "public": f"{http}/api/v3",
        "private": f"{http}/api/v3",
        "v1": f"{http}/api/v1",
        "ws": {
            "spot": f"{ws}/ws",
            "margin": f"{ws}/ws",
            "ws-api": {"spot": f"{ws}/ws-api/v3"},
        },
    }


def ccxt_options(recv_window_ms: int = 5000) -> dict[str, Any]:
    """Options that keep ccxt off sapi/fapi endpoints (they would dial the real exchange even with the URLs overridden)."""
    return {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "adjustForTimeDifference": False,
        "recvWindow": recv_window_ms,
        "fetchOpenOrders": {"warnWithoutSymbol": False},
    }
