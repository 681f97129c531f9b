"""Offline guards: loopback-only egress, NET_SIM refused on live, testnet key != live key."""

from __future__ import annotations

import ccxt.pro as ccxtpro
import pytest

from engine.config.loader import ConfigError, load_config
from engine.core.clock import RealClock
from engine.venues.egress import EgressGuard, is_loopback
from engine.venues.venue_setup import check_testnet_keys, make_exchange
from engine.venues.wiring import SkewBoard


def test_is_loopback_when_hosts_given_then_only_loopback_true() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.9.9.9", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["api.binance.com", "10.0.0.1", "192.168.1.2", "8.8.8.8"]))


async def test_egress_guard_when_offline_and_real_binance_urls_then_blocked_before_dialling():
    cfg = load_config("testnet", env={})
    guard = EgressGuard(offline=True)
    ex = make_exchange(cfg, guard, api_key="k", secret="s", urls=None)  # sandbox = real hosts
    session = ex.session
    try:
        with pytest.raises(ccxtpro.NetworkError) as err:
            await ex.load_markets()
        assert "testnet.binance.vision" in str(err.value)
        assert guard.blocked["testnet.binance.vision"] >= 1
        assert not guard.dialled
        assert all(not is_loopback(h) for h in guard.blocked)
    finally:
        await ex.close()
        await session.close()


def test_netsim_when_live_profile_then_refused_with_one_line_error() -> None:
    with pytest.raises(ConfigError) as err:
        load_config("live", env={"NET_SIM_DISCONNECT_INTERVAL_S": "5"})
    assert "NET_SIM_DISCONNECT_INTERVAL_S" in str(err.value)
    assert "live" in str(err.value)
    assert load_config("testnet", env={"NET_SIM_DROP_RATE": "0.1"}).netsim.drop_rate == 0.1


def test_testnet_key_when_equal_to_live_key_then_refused() -> None:
    cfg = load_config("testnet", env={"API_KEY": "same-key"})
    with pytest.raises(ConfigError) as err:
        check_testnet_keys(cfg, {"LIVE_API_KEY": "same-key"})
    assert "live key" in str(err.value)
    assert "same-key" not in str(err.value)
    check_testnet_keys(cfg, {"LIVE_API_KEY": "other"})


def test_skew_board_when_two_sources_then_clock_carries_worst() -> None:
    clock = RealClock()
    board = SkewBoard(clock)
    board.sink("venue").set_skew_ms(-40.0)
    board.sink("ntp").set_skew_ms(900.0)
    assert clock.skew_ms() == 900.0
    board.sink("ntp").set_skew_ms(5.0)
    assert clock.skew_ms() == -40.0
