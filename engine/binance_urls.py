"""The ccxt URL-override recipe (VENUE.md §2) for any Binance-compatible base URLs.

Its own tiny module so the engine can build URLs without importing the venue simulator.
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
