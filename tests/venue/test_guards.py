"""Venue guards: loopback-only egress, NET_SIM refused on live, testnet key != live key, a live
profile refused without its locks and dialling live endpoints only."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit

import ccxt.pro as ccxtpro
import pytest

from engine.config.live_locks import check_live_locks
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


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, ["LIVE_MODE", "ENABLE_LIVE_TRADING"]),
        ({"LIVE_MODE": "true"}, ["ENABLE_LIVE_TRADING"]),
        ({"ENABLE_LIVE_TRADING": "true"}, ["LIVE_MODE"]),
    ],
)
def test_live_locks_when_one_missing_then_refused_naming_each(env, missing) -> None:
    with pytest.raises(ConfigError) as err:
        check_live_locks(load_config("live", env=env))
    msg = str(err.value)
    assert "\n" not in msg
    for lock in missing:
        assert f"{lock}=true" in msg
    for lock in {"LIVE_MODE", "ENABLE_LIVE_TRADING"} - set(missing):
        assert f"{lock}=true" not in msg


def test_live_locks_when_both_set_or_not_live_then_no_refusal() -> None:
    check_live_locks(load_config("live", env={"LIVE_MODE": "1", "ENABLE_LIVE_TRADING": "1"}))
    check_live_locks(load_config("testnet", env={}))  # the locks guard live only


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [u for v in node.values() for u in _strings(v)]
    return [node] if isinstance(node, str) else []


async def test_exchange_when_no_url_then_live_dials_live_and_testnet_the_sandbox() -> None:
    """A live profile with no exchange.rest_url once got ccxt's sandbox (testnet) endpoints."""
    hosts = {}
    for kind in ("live", "testnet"):
        env = {"LIVE_MODE": "1", "ENABLE_LIVE_TRADING": "1"} if kind == "live" else {}
        cfg = load_config(kind, env=env)
        ex = make_exchange(cfg, EgressGuard(offline=True), api_key="k", secret="s", urls=None)
        session = ex.session
        try:
            hosts[kind] = {urlsplit(u).netloc for u in _strings(ex.urls["api"])}
        finally:
            await ex.close()
            await session.close()
    assert "api.binance.com" in hosts["live"]
    sandbox = ("testnet", "binancefuture.com")  # spot and futures testnet domains
    assert not [h for h in hosts["live"] if any(t in h for t in sandbox)]
    assert "testnet.binance.vision" in hosts["testnet"]
    assert not [h for h in hosts["testnet"] if h.endswith("binance.com")]


def test_cli_when_live_locks_missing_then_exit_2_one_line_and_data_dir_untouched(tmp_path) -> None:
    d = tmp_path / "d"
    env = {k: v for k, v in os.environ.items() if k not in ("LIVE_MODE", "ENABLE_LIVE_TRADING")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "cockpit",
            "--headless",
            "--profile",
            "live",
            "--duration",
            "1",
            "--data-dir",
            str(d),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "LIVE_MODE": "true"},
        check=False,
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "ENABLE_LIVE_TRADING=true" in res.stderr
    assert "Traceback" not in res.stderr
    assert not d.exists()  # refused before the lock, the DB or a dial
