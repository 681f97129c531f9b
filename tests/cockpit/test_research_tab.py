"""The research tab and the promote modal's campaign verdict: the real app under ``run_test``
(a fixed engine snapshot: only the research side matters here) reading a real campaign store
(``research.campaign_store.save`` into a temp data dir), and a second process holding that
store for the "busy" cases.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Sparkline

from cockpit.app import CockpitApp
from cockpit.confirm import ConfirmScreen
from cockpit.host import EngineHost
from cockpit.research_view import ResearchTab
from cockpit.testkit import FixedHost, model, snap
from engine.config.loader import load_config
from research import campaign_store
from widgets.research import ResearchPanel

DAY_US = 86_400_000_000
T_DEC4 = 1_796_342_400_000_000  # 2026-12-04 00:00:00Z
HOSTILE = "[red]x[/red] \u202eevil"


def campaign(cid: str, created_us: int, **kw: Any) -> dict[str, Any]:
    equity = kw.pop("equity", [[T_DEC4 + i * DAY_US, v] for i, v in enumerate(EQUITY)])
    base: dict[str, Any] = {
        "campaign_id": cid,
        "spec_hash": cid + "0" * 20,
        "spec_json": json.dumps({"interval": "1h"}),
        "created_us": created_us,
        "interval": "1h",
        "start_date": "2026-01-01",
        "end_date": "2026-11-30",
        "folds": 5,
        "window_days": 30,
        "cost_bps": 10.0,
        "models": "ml,momentum",
        "runner": "local",
        "total_return": -0.012,
        "sharpe": 0.83,
        "max_drawdown": 0.2,
        "hit_rate": 0.51,
        "turnover": 3.2,
        "costs_paid": 41.0,
        "trades": 120,
        "zero_cost_return": 0.004,
        "cost_drag": 0.016,
        "deflated_sharpe": 0.41,
        "pbo": 0.5,
        "verdict": "fail",
        "verdict_reason": "deflated Sharpe 0.41 < 0.95",
        "equity_json": json.dumps(equity),
        "candidates_json": json.dumps(["ml", "momentum"]),
        "wall_s": 12.5,
    }
    base.update(kw)
    assert set(base) == set(campaign_store.CAMPAIGN_COLS)
    return base


def folds(cid: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(2):
        row: dict[str, Any] = {c: None for c in campaign_store.FOLD_COLS}
        row.update(campaign_id=cid, candidate="ml", fold=i, cost_bps=10.0, total_return=0.01)
        rows.append(row)
    return rows


EQUITY = [10_000.0, 10_500.0, 8_400.0, 9_000.0, 10_800.0]  # peak 10,500 → 8,400: -20 %


def save(data_dir: Path, c: dict[str, Any]) -> None:
    campaign_store.save(data_dir, c, folds(c["campaign_id"]))


def save_elsewhere(data_dir: Path, c: dict[str, Any]) -> None:
    """Save from another process, as ``cockpit campaign run`` does: DuckDB lets one process
    write while none reads, so the writer retries while the tab's brief read holds the file
    (in this process a writer would clash with the tab's read-only connection instead)."""
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from research import campaign_store as cs\n"
        "c, f = json.loads(sys.stdin.read())\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        cs.save(Path(sys.argv[1]), c, f)\n"
        "        break\n"
        "    except cs.CampaignStoreBusy:\n"
        "        time.sleep(0.02)\n"
        "else:\n"
        "    sys.exit('store busy for 4 s')\n"
    )
    payload = json.dumps([c, folds(c["campaign_id"])])
    subprocess.run(
        [sys.executable, "-c", code, str(data_dir)], input=payload.encode(), check=True, timeout=60
    )


def screen_text(app: CockpitApp) -> str:
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


async def until(pred, pilot, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if pred():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


class Holder:
    """Another process holding the store open for writing (a campaign being saved)."""

    def __init__(self, data_dir: Path) -> None:
        code = (
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "sys.stdin.read()"
        )
        path = str(campaign_store.store_path(data_dir))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == b"held"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)


@pytest.fixture
def holder():
    held: list[Holder] = []

    def hold(data_dir: Path) -> Holder:
        held.append(Holder(data_dir))
        return held[-1]

    yield hold
    for h in held:
        h.release()


async def test_research_tab_when_campaigns_stored_then_rows_detail_and_charts_shown(tmp_path):
    save(tmp_path, campaign("aaaaaaaaaaaa", T_DEC4, verdict="pass", verdict_reason="all good"))
    save(tmp_path, campaign("3fa9c1d2e0b4", T_DEC4 + DAY_US, verdict_reason=HOSTILE))
    app = CockpitApp(FixedHost(), data_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(ResearchPanel)
        assert panel.row_keys == []  # hidden tab: nothing read yet
        await pilot.press("7")
        await until(lambda: str(panel.detail.content).startswith("3fa9c1d2e0b4"), pilot)
        assert panel.row_keys == ["3fa9c1d2e0b4", "aaaaaaaaaaaa"]  # newest first
        table = app.query_one("#campaigns", DataTable)
        row = [c.plain for c in table.get_row("3fa9c1d2e0b4")]
        assert row == [
            "3fa9c1d2e0b4", "FAIL", "12-05 00:00", "1h", "5", "10", "-1.2 %", "0.83",
            "-20.0 %", "0.41", "0.50",
        ]  # fmt: skip
        assert "2 campaigns (1 pass)" in str(panel.status.content)
        # the hostile reason is literal: brackets kept, the bidi override shown as an escape
        detail = str(panel.detail.content)
        assert detail.startswith("3fa9c1d2e0b4 FAIL: [red]x[/red] \\u202eevil\n1h 2026-01-01")
        assert "\u202e" not in detail
        # the charts: the stitched equity, and the drawdown below its running peak
        equity = app.query_one("#equity", Sparkline)
        assert list(equity.data or []) == EQUITY
        depth = list(app.query_one("#drawdown", Sparkline).data or [])
        assert depth == pytest.approx([0.0, 0.0, 0.2, 1 - 9000 / 10500, 0.0])
        await pilot.pause(0.1)
        shown = screen_text(app)
        assert "[red]x[/red]" in shown
        assert "10,000.00 → 10,800.00 (+8.0 %)" in shown
        assert "max -20.0 %" in shown
        assert any(bar in shown for bar in "▁▂▃▄▅▆▇█")  # a sparkline is drawn
        # at 80x24 both charts are on screen, not scrolled or squeezed away
        for chart in ("#equity", "#drawdown"):
            region = app.query_one(chart).region
            assert region.height >= 2, (chart, region)
            assert region.bottom <= 23, (chart, region)  # above the footer
        # the cursor picks the other campaign: its detail and curve replace the first
        table.focus()
        await pilot.press("down")
        await until(lambda: str(panel.detail.content).startswith("aaaaaaaaaaaa"), pilot)
        assert str(panel.detail.content).startswith("aaaaaaaaaaaa PASS: all good\n")


async def test_research_tab_when_campaign_added_then_row_appears_and_cursor_stays(tmp_path):
    save(tmp_path, campaign("old000000000", T_DEC4))
    app = CockpitApp(FixedHost(), data_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = app.query_one(ResearchTab)
        tab.refresh_s = 0.1
        await pilot.press("7")
        panel = tab.panel
        await until(lambda: panel.row_keys == ["old000000000"], pilot)
        await until(lambda: str(panel.detail.content).startswith("old000000000"), pilot)
        save_elsewhere(tmp_path, campaign("new000000000", T_DEC4 + DAY_US, verdict="pass"))
        await until(lambda: panel.row_keys == ["new000000000", "old000000000"], pilot)
        assert panel.selected == "old000000000"  # the operator's row, not the new top one
        assert str(panel.detail.content).startswith("old000000000")
        # hidden tab: the timer no longer reads the store
        await pilot.press("1")
        await pilot.pause(0.3)
        reads = tab.reads
        await pilot.pause(0.5)
        assert tab.reads == reads


async def test_research_tab_when_store_busy_then_one_line_retry_then_recovers(tmp_path, holder):
    save(tmp_path, campaign("3fa9c1d2e0b4", T_DEC4))
    app = CockpitApp(FixedHost(), data_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = app.query_one(ResearchTab)
        tab.refresh_s, tab.busy_retry_s = 0.2, 0.1
        await pilot.press("7")
        panel = tab.panel
        await until(lambda: panel.row_keys == ["3fa9c1d2e0b4"], pilot)
        held = holder(tmp_path)
        await until(lambda: panel.has_class("-busy"), pilot)
        assert "busy" in str(panel.status.content)
        assert "retrying" in str(panel.status.content)
        assert panel.row_keys == ["3fa9c1d2e0b4"]  # the rows shown stay
        held.release()
        await until(lambda: not panel.has_class("-busy"), pilot)
        assert "1 campaigns" in str(panel.status.content)


def test_app_when_run_on_engine_host_then_reads_that_hosts_data_dir(tmp_path) -> None:
    host = EngineHost(load_config("paper", env={}), tmp_path, None)  # built, never started
    assert CockpitApp(host).data_dir == tmp_path
    assert CockpitApp(host, data_dir=tmp_path / "x").data_dir == tmp_path / "x"
    assert CockpitApp(FixedHost()).data_dir is None


async def test_research_tab_when_no_data_dir_then_says_so(tmp_path):
    app = CockpitApp(FixedHost())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        panel = app.query_one(ResearchPanel)
        await until(lambda: "no data directory" in str(panel.status.content), pilot)


async def test_research_tab_when_no_store_then_says_how_to_make_one(tmp_path):
    app = CockpitApp(FixedHost(), data_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        panel = app.query_one(ResearchPanel)
        await until(lambda: "no campaigns yet" in str(panel.status.content), pilot)
        assert "cockpit campaign run" in str(panel.status.content)
        assert panel.row_keys == []


def _promote_host(challenger: str) -> FixedHost:
    return FixedHost(snap(model=model(challenger=challenger)))


async def _promote_detail(app: CockpitApp, pilot) -> str:
    await pilot.press("P")
    await until(lambda: isinstance(app.screen, ConfirmScreen), pilot)
    detail = app.screen.query_one("#detail")
    await until(lambda: str(detail.content) != "reading…", pilot)
    return str(detail.content)


async def test_promote_modal_when_challenger_tested_then_shows_latest_verdict(tmp_path):
    save(tmp_path, campaign("older0000000", T_DEC4 - DAY_US, verdict="pass", models="momentum"))
    save(tmp_path, campaign("3fa9c1d2e0b4", T_DEC4 + 3_600_000_000))
    save(tmp_path, campaign("otherwinner0", T_DEC4 + DAY_US, verdict="pass", models="trend"))
    app = CockpitApp(_promote_host("momentum"), data_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await _promote_detail(app, pilot)
        assert text == (
            "latest campaign 3fa9c1d2e0b4 (2026-12-04): FAIL — deflated Sharpe 0.41 < 0.95; "
            "return -1.2 %, PBO 0.50"
        )
        assert "PromoteChallenger" in app.screen.command
        await pilot.press("n")
        await until(lambda: not isinstance(app.screen, ConfirmScreen), pilot)


async def test_promote_modal_when_no_campaign_tested_challenger_then_says_run_one(tmp_path):
    save(tmp_path, campaign("3fa9c1d2e0b4", T_DEC4, models="trend"))
    app = CockpitApp(_promote_host("[b]m-chall[/b]"), data_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await _promote_detail(app, pilot)
        assert text == "no campaign has tested [b]m-chall[/b]: run `cockpit campaign run ...`"
        assert "[b]m-chall[/b]" in screen_text(app)  # literal on screen, not bold markup


async def test_promote_modal_when_store_busy_then_opens_says_so_and_still_confirms(
    tmp_path, holder
):
    save(tmp_path, campaign("3fa9c1d2e0b4", T_DEC4))
    sent: list[str] = []
    host = _promote_host("ml")
    real = host.execute

    def execute(cmd, totp_code=None):
        sent.append(type(cmd).__name__)
        return real(cmd, totp_code)

    host.execute = execute  # type: ignore[method-assign]
    holder(tmp_path)
    app = CockpitApp(host, data_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await _promote_detail(app, pilot)
        assert "busy" in text
        assert "verdict not read" in text
        await pilot.press("y")
        await until(lambda: sent == ["PromoteChallenger"], pilot)
