"""The real cockpit (Textual app + engine thread on a real DuckDB file) driven with Pilot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyotp
import pytest

from cockpit.app import CockpitApp
from cockpit.confirm import ConfirmScreen, NoticeScreen, PromptScreen
from cockpit.host import EngineHost
from engine.config.loader import load_config
from engine.security.keystore import KeystoreError
from engine.security.totp import TotpGuard
from engine.store.lockfile import acquire
from widgets import IncidentsPanel, PriceSparklines

FAST = {
    "models.decision_interval_ms": 150.0,
    "models.prob_min": 0.5,
    "models.min_expected_return": 0.0,
    "models.risk_max": 5.0,
    "sim.ticks_per_second": 60.0,
    "risk.dupe_intent_window_ms": 0.0,
}


@pytest.fixture
def make_host(tmp_path: Path):
    hosts: list[EngineHost] = []

    def make(role: str = "operator") -> EngineHost:
        d = tmp_path / f"d{len(hosts)}"
        host = EngineHost(load_config("paper", env={}, overrides=FAST), d, acquire(d), role=role)
        host.start()
        hosts.append(host)
        return host

    yield make
    for h in hosts:
        h.stop("test")


async def until(pred, pilot, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if pred():
            return
        await pilot.pause(0.1)
    raise AssertionError("condition not reached")


async def _db(host: EngineHost, sql: str) -> list:
    fut = asyncio.run_coroutine_threadsafe(host.runtime.booted.query(sql), host.loop)
    return await asyncio.wrap_future(fut)


def test_bindings_when_declared_then_each_has_an_action_and_an_id(make_host) -> None:
    app = CockpitApp.__new__(CockpitApp)
    for b in CockpitApp.BINDINGS:
        assert b.id, b
        assert hasattr(CockpitApp, f"action_{b.action.split('(')[0]}"), b.action
    kill = next(b for b in CockpitApp.BINDINGS if b.key == "ctrl+k")
    assert kill.priority
    assert app is not None


async def test_ctrl_k_then_y_when_operator_then_kill_switch_armed_and_orders_stop(make_host):
    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: app.snap is not None and app.snap.orders, pilot, 15)
        await pilot.press("ctrl+k")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.focused is not None
        assert app.screen.focused.id == "cancel"
        await pilot.press("y")
        await until(lambda: host.snapshot.kill_switch, pilot)
        n = len(await _db(host, "SELECT * FROM orders"))
        await pilot.pause(1.5)
        assert len(await _db(host, "SELECT * FROM orders")) == n  # no order after the kill
        assert app.query_one("#status").has_class("-halted")


async def test_confirm_when_n_or_escape_then_nothing_sent(make_host):
    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("n", "escape"):
            await pilot.press("ctrl+k")
            await pilot.pause(0.2)
            await pilot.press(key)
            await pilot.pause(0.3)
            assert not isinstance(app.screen, ConfirmScreen)
        assert not host.snapshot.kill_switch


async def test_observer_when_confirming_critical_action_then_denied_by_engine_and_audited(
    make_host,
):
    host = make_host("observer")
    app = CockpitApp(host, role="observer")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+k")
        await pilot.pause(0.2)
        await pilot.press("y")
        await pilot.pause(0.6)
        assert not host.snapshot.kill_switch
        rows = await _db(host, "SELECT kind, payload FROM audit_log WHERE kind='command_denied'")
        assert rows
        assert "ArmKillSwitch" in rows[0][1]
        assert "observer" in rows[0][1]


async def test_totp_when_enrolled_then_arming_is_one_key_and_disarming_needs_code_typed_then_enter(
    make_host,
):
    host = make_host()
    secret = pyotp.random_base32()
    host.api.totp = TotpGuard(secret)
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+k")  # risk-reducing: one key, never a code
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        assert not app.screen.query("#totp")
        await pilot.press("y")
        await until(lambda: host.snapshot.kill_switch, pilot)
        wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
        await pilot.press("a")  # risk-increasing: the code field has the focus
        await pilot.pause(0.2)
        assert app.screen.focused is app.screen.query_one("#totp")
        await pilot.press(*wrong, "enter")  # typed, then Enter: confirms (never cancels)
        await pilot.pause(0.5)
        assert host.snapshot.kill_switch  # wrong code: denied in the engine
        code = pyotp.TOTP(secret).now()
        await pilot.press("a")
        await pilot.pause(0.2)
        await pilot.press(*code, "enter")
        await until(lambda: not host.snapshot.kill_switch, pilot)
        await pilot.press("ctrl+k", "y")
        await until(lambda: host.snapshot.kill_switch, pilot)
        await pilot.press("a")  # disarm with the SAME code: a replay
        await pilot.pause(0.2)
        await pilot.press(*code, "enter")
        await pilot.pause(0.6)
        assert host.snapshot.kill_switch
        state = await _db(host, "SELECT value FROM engine_state WHERE key='totp_state'")
        assert state
        assert "last_step" in state[0][0]


async def test_observer_when_critical_key_pressed_then_refused_without_prompt_and_audited(
    make_host,
):
    host = make_host(role="observer")
    app = CockpitApp(host, role="observer")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: app.snap is not None, pilot)
        await pilot.press("a")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)  # no prompt walked through
        rows = await _db(host, "SELECT actor, payload FROM audit_log WHERE kind = 'command_denied'")
        assert rows
        assert rows[-1][0].startswith("tui:")
        assert rows[-1][0].endswith("(observer)")
        assert "DisarmKillSwitch" in rows[-1][1]


async def test_safe_mode_key_when_on_then_immediate_and_off_needs_reason_and_confirmation(
    make_host,
):
    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: app.snap is not None, pilot)
        await pilot.press("s")
        await until(lambda: host.snapshot.safe_mode and app.snap.safe_mode, pilot)
        await pilot.press("s")  # off: a reason first; an empty one keeps safe mode on
        await pilot.pause(0.2)
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        assert host.snapshot.safe_mode
        await pilot.press("s")
        await pilot.pause(0.2)
        await pilot.press(*"feed checked")
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(lambda: not host.snapshot.safe_mode, pilot)
        await until(lambda: bool(host.snapshot.incidents), pilot)
        rows = await _db(host, "SELECT actor, note, context FROM incidents")
        assert rows[0][1] == "SAFE MODE OFF: feed checked"
        assert '"safe_mode":true' in rows[0][2]  # the state it was written in
        assert host.snapshot.incidents[-1].flags == "safe_mode"


def test_safe_mode_off_when_no_reason_then_engine_refuses_and_stays_on(make_host) -> None:
    """The engine enforces the reason too (the ops CLI and API reach it without this UI)."""
    from engine.core.events import SetSafeMode

    host = make_host()
    assert host.execute(SetSafeMode(on=True, actor="op", reason="drill")).result(10).ok
    res = host.execute(SetSafeMode(on=False, actor="op", reason="  ")).result(10)
    assert not res.ok
    assert "needs a reason" in res.message
    assert host.runtime.engine.risk.safe_mode
    assert not host.runtime.engine.recorder.incidents


async def test_incident_note_when_typed_then_journal_row_with_context(make_host):
    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"feed lag seen")
        await pilot.press("enter")
        await pilot.pause(0.5)
        rows = await _db(host, "SELECT note, context FROM incidents")
        assert rows
        assert rows[0][0] == "feed lag seen"
        assert '"profile":"paper"' in rows[0][1]
        assert "active_gates" in rows[0][1]
        panel = app.query_one(IncidentsPanel)
        await until(lambda: panel.row_count == 1, pilot)
        time_utc, actor, note, _gates, flags = panel.row_text(panel.row_keys()[0])
        assert (actor.endswith("(operator)"), note, flags) == (True, "feed lag seen", "-")
        assert time_utc.endswith("Z")


async def test_trading_tab_when_engine_runs_then_a_price_sparkline_per_symbol(make_host):
    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(120, 40)) as pilot:
        prices = app.query_one(PriceSparklines)
        symbols = tuple(host.runtime.cfg.symbols)
        await until(lambda: sorted(prices.lines) == sorted(symbols), pilot)
        lines = prices.lines.values()
        await until(lambda: all(len(line.sparkline.data or ()) > 1 for line in lines), pilot)


async def test_incident_journal_when_restarted_then_earlier_notes_still_shown(tmp_path: Path):
    from engine.core.events import RecordIncident

    d = tmp_path / "d"
    host = EngineHost(load_config("paper", env={}, overrides=FAST), d, acquire(d))
    host.start()
    for note in ("first", "[b]second[/b]"):
        assert host.execute(RecordIncident(note=note, actor="alice")).result(10).ok
    host.stop("test")
    host = EngineHost(load_config("paper", env={}, overrides=FAST), d, acquire(d))
    host.start()
    try:
        assert [i[2] for i in host.runtime.engine.recorder.incidents] == ["first", "[b]second[/b]"]
        app = CockpitApp(host)
        async with app.run_test(size=(120, 40)) as pilot:
            panel = app.query_one(IncidentsPanel)
            await until(lambda: panel.row_count == 2, pilot)
            assert [panel.row_text(k)[2] for k in panel.row_keys()] == ["[b]second[/b]", "first"]
    finally:
        host.stop("test")


async def test_export_when_pressed_then_report_zip_with_all_files(make_host):
    import zipfile

    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(1.0)
        await pilot.press("o")
        reports = host.runtime.data_dir / "reports"
        await until(lambda: reports.exists() and list(reports.glob("*.zip")), pilot)
        names = zipfile.ZipFile(next(reports.glob("*.zip"))).namelist()
        assert set(names) == {
            "orders.csv",
            "fills.csv",
            "pnl.csv",
            "tca.csv",
            "tca_summary.csv",
            "metadata.json",
        }


async def test_engine_thread_dead_when_pulled_then_operator_told(make_host):
    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        host.error = "RuntimeError: simulated engine failure"
        await until(lambda: isinstance(app.screen, NoticeScreen), pilot, 5)
        assert app.query_one("#status").has_class("-halted")


async def test_quit_when_open_orders_then_asks_first(make_host):
    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: app.snap is not None, pilot)
        host.refresh_s = 3600.0  # no new snapshot after the one already due: ours stays shown
        await pilot.pause(2 * 0.25)
        snap = host.snapshot
        app.snap = snap.__class__(
            **{**{f: getattr(snap, f) for f in snap.__struct_fields__}, "open_orders": 2}
        )
        app.last_seq = snap.seq  # the bridge sees nothing new: keeps our doctored snapshot
        await pilot.press("q")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        assert "OPEN ORDERS" in app.screen.action_name
        await pilot.press("n")
        await pilot.pause(0.2)
        assert app.is_running


def test_start_when_2fa_was_enrolled_but_keystore_gone_then_refuses(tmp_path: Path) -> None:
    d = tmp_path / "d"
    cfg = load_config("paper", env={}, overrides=FAST)
    host = EngineHost(cfg, d, acquire(d))
    host.start()
    host.runtime.engine.recorder.set_state("totp_enrolled", "1")  # as after an enrolled session
    host.stop("test")
    again = EngineHost(cfg, d, acquire(d))
    with pytest.raises(KeystoreError, match="2FA was enrolled"):  # bad input: exit 2, one line
        again.start()
    again.stop("test")


async def test_console_size_when_terminal_resized_then_follows_the_app(make_host) -> None:
    """Rich measures cells against the console's size; pinned to the app's, it never asks the
    terminal (an ioctl per measured cell) and still follows every resize."""
    app = CockpitApp(make_host())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert (app.console._width, app.console._height) == (80, 24)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.1)
        assert tuple(app.console.size) == (120, 40)


async def test_80x24_when_operator_looks_for_actions_then_help_palette_and_views_find_them(
    make_host,
):
    from cockpit.palette import HelpScreen
    from widgets import DecisionsPanel, PreflightPanel

    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: app.snap is not None, pilot)
        await pilot.press("question_mark")  # the whole key list, on its own screen
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        keys = str(app.screen.query_one("#keys").render())
        for label in ("Flatten", "Kill scope", "Breaker reset", "Go live", "Reduce-only"):
            assert label in keys, label
        await pilot.press("escape")
        await pilot.press("4")  # the model tab: why each symbol is NO_TRADE
        await until(lambda: bool(app.snap.decisions), pilot)
        await pilot.pause(0.5)
        text = str(app.query_one(DecisionsPanel).render())
        assert "why:" in text or "LONG" in text or "SHORT" in text
        await pilot.press("F")  # preflight on a key: its notice, then the panel
        await until(lambda: isinstance(app.screen, NoticeScreen), pilot, 30)
        assert "PREFLIGHT" in str(app.screen.query_one("Static").render())
        await pilot.press("enter")
        await pilot.press("5")
        await until(lambda: bool(app.snap.stops.preflight_checks), pilot)
        await pilot.pause(0.5)
        assert "audit_chain" in str(app.query_one(PreflightPanel).render())


async def test_ops_keys_when_pressed_then_backup_restore_test_db_check_and_regulatory(make_host):
    host = make_host()
    app = CockpitApp(host)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(1.0)
        for key, needle in (
            ("J", "backup written"),
            ("T", "restore test passed"),
            ("V", "DATABASE: OK"),
            ("O", "regulatory export"),
        ):
            await pilot.press(key)
            await until(lambda: isinstance(app.screen, NoticeScreen), pilot, 30)
            text = app.screen.text  # type: ignore[attr-defined]
            assert needle in text, (key, text)
            await pilot.press("enter")
            await until(lambda: not isinstance(app.screen, NoticeScreen), pilot, 5)
    backups = list((host.runtime.data_dir / "backups").glob("*.duckdb.tested.json"))
    assert backups, "the restore test is recorded next to the backup"
