"""The live guard's locks, one at a time: each missing one is named, all of them present opens
live trading, and until then the preflight gate refuses every new order of a live profile."""

from __future__ import annotations

import dataclasses

import pytest

from engine.trading import golive

PHRASE = "I_UNDERSTAND_LIVE_TRADING"


def live(e, **live_kw):
    cfg = e.cfg
    kw = {"live_mode": True, "enable_live_trading": True, **live_kw}
    e.cfg = dataclasses.replace(cfg, kind="live", live=dataclasses.replace(cfg.live, **kw))


def green(e):
    e.preflight.green_id, e.preflight.valid_until_us = "pf-1", e.clock.now_us() + 10**9


@pytest.mark.parametrize(
    ("break_it", "named"),
    [
        ("kind", "profile kind"),
        (lambda e: live(e, live_mode=False), "LIVE_MODE is not true"),
        (lambda e: live(e, enable_live_trading=False), "ENABLE_LIVE_TRADING is not true"),
        ("phrase", "LIVE_CONFIRM phrase was not typed exactly"),
        ("totp", "2FA is not enrolled"),
        (lambda e: setattr(e.preflight, "green_id", ""), "no green preflight"),
        (lambda e: setattr(e.preflight, "valid_until_us", 1), "expired"),
        (lambda e: setattr(e.risk, "safe_mode", True), "SAFE_MODE is on"),
        (lambda e: setattr(e.risk, "kill_switch", True), "kill switch is armed"),
    ],
)
def test_go_live_when_one_lock_missing_then_refused_naming_it(make_booted, break_it, named):
    b = make_booted()
    e = b.engine
    cfg0 = e.cfg
    live(e)
    green(e)
    phrase, enrolled = PHRASE, True
    if break_it == "phrase":
        phrase = "i understand live trading"
    elif break_it == "totp":
        enrolled = False
    elif break_it == "kind":
        e.cfg = dataclasses.replace(cfg0, live=e.cfg.live)  # paper, locks set
    else:
        break_it(e)
    res = golive.go_live(e, phrase, "op", totp_enrolled=enrolled)
    assert not res.ok
    assert named in res.message
    assert not e.preflight.live_since_us


def test_go_live_when_every_lock_present_then_open(make_booted):
    b = make_booted()
    e = b.engine
    live(e)
    green(e)
    res = golive.go_live(e, PHRASE, "op", totp_enrolled=True)
    assert res.ok, res.message
    assert e.preflight.live_since_us > 0
