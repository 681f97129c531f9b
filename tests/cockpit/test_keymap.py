"""Keys from one table, moved by the operator's keymap file; a bad keymap stops nothing but itself.

The real app under ``run_test`` (a fixed host: only the keys matter here) and the real CLI in a
subprocess for the exit code and the one-line error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from textual.keys import Keys
from textual.screen import Screen

from cockpit.app import CockpitApp
from cockpit.confirm import ConfirmScreen, NoticeScreen, PromptScreen
from cockpit.keymap import (
    KEYS,
    NAMED_KEYS,
    KeymapError,
    keymap_path,
    load_keymap,
    parse_keymap,
)
from cockpit.testkit import FixedHost

SCREENS: dict[str, type[Screen] | type[CockpitApp]] = {
    "cockpit": CockpitApp,
    "confirm": ConfirmScreen,
    "prompt": PromptScreen,
    "notice": NoticeScreen,
}


def test_key_table_when_read_then_every_binding_has_an_action_on_its_screen() -> None:
    assert len({k.id for k in KEYS}) == len(KEYS)
    for spec in KEYS:
        assert hasattr(SCREENS[spec.scope], f"action_{spec.action.split('(')[0]}"), spec
    ids = {b.id for b in CockpitApp.BINDINGS}  # type: ignore[union-attr]
    assert ids == {k.id for k in KEYS if k.scope == "cockpit"}


def test_named_keys_when_compared_then_all_are_textual_key_names() -> None:
    assert not NAMED_KEYS - {k.value for k in Keys}


def test_footer_labels_when_read_then_say_what_the_key_does() -> None:
    by_id = {k.id: k for k in KEYS}
    assert by_id["resume_trading"].label == "Resume"
    assert by_id["kill_switch.main"].action == "kill_switch"
    assert by_id["kill_switch.main"].label == "Kill switch"


async def test_keymap_when_moves_resume_trading_then_new_key_opens_modal_old_does_not() -> None:
    keymap = parse_keymap({"keys": {"resume_trading": "A"}}, "km.toml")
    app = CockpitApp(FixedHost(), keymap=keymap)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("A")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        assert "DisarmKillSwitch" in app.screen.command
        await pilot.press("escape")


async def test_keymap_when_moves_confirm_yes_then_modal_obeys_it() -> None:
    keymap = parse_keymap({"keys": {"confirm": {"yes": "j"}}}, "km.toml")
    sent: list[str] = []
    host = FixedHost()
    real = host.execute

    def execute(cmd, totp_code=None):
        sent.append(type(cmd).__name__)
        return real(cmd, totp_code)

    host.execute = execute  # type: ignore[method-assign]
    app = CockpitApp(host, keymap=keymap)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("d")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause(0.1)
        assert sent == []
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("j")
        await pilot.pause(0.2)
        assert sent == ["ArmKillSwitch"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[keys]\nnope = "x"\n', "keys.nope: unknown binding id"),
        ('[keys]\nresume_trading = "d"\n', "already the key of 'kill_switch.main'"),
        ('[keys]\nresume_trading = "hyperdrive"\n', "'hyperdrive' is not a key name"),
        ('[keys]\nkill_switch = ""\n', "keys.kill_switch: '' is not a key"),
        ("[keys]\nkill_switch = 5\n", "keys.kill_switch: 5 is not a key"),
        ('[keys]\nquit = "ctrl+q"\n', "reserved by the terminal UI"),
        ('[colors]\nx = "y"\n', "unknown table 'colors'"),
        ("[keys\n", "not valid TOML"),
        ('[keys]\nhelp = "\\u001b]0;pwned\\u0007"\n', "'\\x1b]0;pwned\\x07' is not a key"),
    ],
)
def test_keymap_when_bad_then_one_line_naming_file_and_value(tmp_path, text, needle) -> None:
    f = tmp_path / "km.toml"
    f.write_text(text)
    with pytest.raises(KeymapError) as err:
        load_keymap(f)
    msg = str(err.value)
    assert needle in msg
    assert msg.startswith(str(f))
    assert "\n" not in msg
    assert "\x1b" not in msg  # hostile text is shown escaped, never sent to the terminal


def test_keymap_when_same_action_on_two_ids_then_shared_key_allowed(tmp_path) -> None:
    f = tmp_path / "km.toml"
    f.write_text('[keys]\n"kill_switch.main" = "ctrl+k,d"\n')
    assert load_keymap(f) == {"kill_switch.main": "ctrl+k,d"}


def test_keymap_path_when_arg_env_or_xdg_then_that_precedence(tmp_path) -> None:
    xdg = tmp_path / "xdg"
    assert keymap_path(None, {"XDG_CONFIG_HOME": str(xdg)}) is None  # absent: no keymap
    (xdg / "cockpit").mkdir(parents=True)
    (xdg / "cockpit" / "keymap.toml").write_text("[keys]\n")
    env = {"XDG_CONFIG_HOME": str(xdg)}
    assert keymap_path(None, env) == xdg / "cockpit" / "keymap.toml"
    assert keymap_path(None, {**env, "COCKPIT_KEYMAP": "/e.toml"}) == Path("/e.toml")
    assert keymap_path("/a.toml", {**env, "COCKPIT_KEYMAP": "/e.toml"}) == Path("/a.toml")


def test_cli_when_keymap_bad_then_exit_2_one_line_and_nothing_started(tmp_path) -> None:
    f = tmp_path / "km.toml"
    f.write_text('[keys]\nresume_trading = "q"\n')
    d = tmp_path / "d"
    env = {k: v for k, v in os.environ.items() if k != "COCKPIT_KEYMAP"}
    res = subprocess.run(
        [sys.executable, "-m", "cockpit", "--keymap", str(f), "--data-dir", str(d)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "keys.quit" in res.stderr or "keys.resume_trading" in res.stderr
    assert "Traceback" not in res.stderr
    assert not d.exists()
