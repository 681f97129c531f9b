"""Clock skew and injected REST faults, as the real ccxt classifies them."""

from __future__ import annotations

import time
from typing import Any

import ccxt
import pytest

pytestmark = pytest.mark.asyncio


# Venue ahead by 3 s is inside a 5 s recvWindow (Binance accepts it), so that case runs with 2 s.
@pytest.mark.parametrize(
    ("offset_ms", "recv_window_ms"), [(3000, 2000), (-3000, 5000), (20000, 5000)]
)
async def test_signed_call_when_venue_clock_offset_then_invalid_nonce_until_resync(
    ex: Any, admin: Any, offset_ms: int, recv_window_ms: int
) -> None:
    ex.options["recvWindow"] = recv_window_ms
    await admin("POST", "/admin/clock", {"offset_ms": offset_ms})
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await ex.fetch_balance()
    server = await ex.fetch_time()
    assert abs(server - time.time() * 1000 - offset_ms) < 500
    await ex.load_time_difference()
    assert (await ex.fetch_balance())["USDT"]["free"] > 0


async def test_create_order_when_injected_429_then_ddos_protection_with_retry_after(
    ex: Any, admin: Any
) -> None:
    await admin(
        "POST",
        "/admin/inject",
        {
            "kind": "binance_error",
            "method": "POST",
            "path": "/api/v3/order",
            "status": 429,
            "code": -1003,
            "msg": "Too many requests.",
            "retry_after_s": 7,
        },
    )
    with pytest.raises(ccxt.DDoSProtection):
        await ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "r1"})
    assert ex.last_response_headers["Retry-After"] == "7"
    # count=1: the next request goes through, and the rejected one was never placed.
    await ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "r2"})
    _, state = await admin("GET", "/admin/state")
    assert [o["clientOrderId"] for o in state["orders"]] == ["r2"]


async def test_create_order_when_injected_1007_then_request_timeout(ex: Any, admin: Any) -> None:
    msg = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
    await admin(
        "POST",
        "/admin/inject",
        {
            "kind": "binance_error",
            "method": "POST",
            "path": "/api/v3/order",
            "status": 408,
            "code": -1007,
            "msg": msg,
        },
    )
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "u1"})


async def test_create_order_when_accepted_late_then_timeout_but_order_exists(
    make_ex: Any, admin: Any
) -> None:
    ex = make_ex(timeout_ms=1000)
    await ex.load_markets()
    await admin(
        "POST",
        "/admin/inject",
        {"kind": "accept_late", "method": "POST", "path": "/api/v3/order", "delay_ms": 1500},
    )
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "late-1"})
    got = await ex.fetch_order(None, "BTC/USDT", params={"clientOrderId": "late-1"})
    assert got["status"] == "closed"
    assert got["filled"] == 0.01


async def test_fetch_balance_when_injected_503_then_exchange_not_available(
    ex: Any, admin: Any
) -> None:
    await admin(
        "POST",
        "/admin/inject",
        {"kind": "http_error", "method": "GET", "path": "/api/v3/account", "status": 503},
    )
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await ex.fetch_balance()
    assert (await ex.fetch_balance())["USDT"]["free"] > 0


async def test_create_order_when_connection_dropped_after_processing_then_network_error(
    ex: Any, admin: Any
) -> None:
    await admin(
        "POST",
        "/admin/inject",
        {"kind": "drop", "method": "POST", "path": "/api/v3/order", "process": True},
    )
    with pytest.raises(ccxt.NetworkError):
        await ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "d-1"})
    got = await ex.fetch_order(None, "BTC/USDT", params={"clientOrderId": "d-1"})
    assert got["status"] == "closed"


async def test_fetch_time_when_delay_injected_then_reply_is_late(ex: Any, admin: Any) -> None:
    await admin(
        "POST",
        "/admin/inject",
        {"kind": "delay", "method": "GET", "path": "/api/v3/time", "delay_ms": 300},
    )
    t0 = time.monotonic()
    await ex.fetch_time()
    assert time.monotonic() - t0 >= 0.3


async def test_admin_inject_when_kind_unknown_then_400(admin: Any) -> None:
    status, body = await admin("POST", "/admin/inject", {"kind": "nope"})
    assert status == 400
    assert body["code"] == -1100
