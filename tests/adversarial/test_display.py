"""Hostile text on screen and in file paths.

A venue (or anything upstream) controls order reasons, alerts, symbols, client ids, trade ids,
audit kinds, model ids: Unicode bidi overrides, isolates, line/paragraph separators and other
invisible format characters must not reach the terminal raw (they reorder or split what the
operator reads), but show as visible escapes. The report export must work whatever the path.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
import zipfile
from pathlib import Path

import duckdb
import pytest

from cockpit.app import CockpitApp
from cockpit.testkit import T0, FixedHost, gate, order, snap, symbol
from engine.runtime.reports import write_report
from engine.snapshot import AuditView, BudgetView, FeedView, FillView, ModelView, ReconView
from engine.store.writer import migrate
from widgets import lit

# right-to-left override, LRM/RLM, isolates, Arabic letter mark, line/paragraph separators,
# zero-width space/joiner, BOM, a tag character (Cf outside the BMP)
HOSTILE = "\u202e\u200e\u200f\u2066\u2067\u2068\u2069\u061c\u2028\u2029\u200b\u200d\ufeff\U000e0041"
SPOOF = f"ok{HOSTILE}sell 100 BTC"
TABS = ("overview", "trading", "feeds-tab", "model-tab", "log-tab")


def invisible(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cf", "Zl", "Zp")]


def hostile_snapshot():
    return snap(
        kill_switch=True,
        kill_reason=SPOOF,
        halted=SPOOF,
        gates=(gate("venue", True, SPOOF),),
        budgets=(BudgetView(scope="symbol", key=SPOOF, used=1, limit=10),),
        feeds=(FeedView(name=SPOOF, connected=True, uptime_s=1.0, reconnects=0, staleness_ms=1.0),),
        symbols=(symbol(SPOOF),),
        price_history=((SPOOF, (1.0, 2.0)),),
        orders=(order(SPOOF, T0 - 1, "rejected", SPOOF),),
        fills=(
            FillView(
                trade_id=SPOOF,
                client_order_id=SPOOF,
                symbol=SPOOF,
                side="buy",
                qty=0.01,
                price=1.0,
                slippage_bps=0.0,
                ts_us=T0 - 1,
            ),
        ),
        model=ModelView(
            champion=SPOOF,
            challenger=SPOOF,
            pinned=SPOOF,
            canary_share=0.1,
            psi=((SPOOF, 0.1),),
            canary_trades=1,
            total_trades=2,
        ),
        recon=ReconView(
            ts_us=T0 - 1, source=SPOOF, duration_ms=1.0, ok=False, mismatches=((SPOOF, 1),)
        ),
        alerts=(SPOOF,),
        audit=(AuditView(seq=1, ts_us=T0 - 1, actor=SPOOF, kind=SPOOF),),
    )


def test_lit_when_bidi_and_separators_then_each_shown_as_a_visible_escape() -> None:
    shown = lit(SPOOF).plain
    assert invisible(shown) == []
    assert shown == (
        "ok\\u202e\\u200e\\u200f\\u2066\\u2067\\u2068\\u2069\\u061c\\u2028\\u2029"
        "\\u200b\\u200d\\ufeff\\U000e0041sell 100 BTC"
    )
    # what is harmless stays as typed: accents, CJK, emoji, and controls still as \xNN
    assert lit("café 東京 🚀 x\x1by").plain == "café 東京 🚀 x\\x1by"


async def test_hostile_venue_text_when_on_every_panel_then_no_bidi_or_separator_drawn() -> None:
    host = FixedHost()
    host.snapshot = hostile_snapshot()
    app = CockpitApp(host)
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause(0.3)
        for tab in TABS:
            app.query_one("TabbedContent").active = tab  # type: ignore[attr-defined]
            await pilot.pause(0.3)
            screen = app.export_screenshot()
            assert invisible(screen) == [], tab
            assert "\\u202e" in screen.replace("&#92;", "\\"), tab


@pytest.mark.parametrize("name", ["it's", "a'; DROP TABLE orders; --", 'q"uote\\back$1?%s{}'])
def test_report_export_when_path_has_sql_hostile_characters_then_zip_written(
    tmp_path: Path, name: str
) -> None:
    out_dir = tmp_path / name
    con = duckdb.connect(str(tmp_path / "cockpit.duckdb"))
    try:
        migrate(con, T0)
        out = out_dir / f"report {name}.zip"
        res = write_report(con, dt.date(2026, 12, 4), out, {"profile": "paper"})
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (0,)  # table still there
    finally:
        con.close()
    out = Path(res["report"])
    assert out.parent == out_dir
    assert out.exists()
    names = zipfile.ZipFile(out).namelist()
    assert set(names) == {
        "orders.csv",
        "fills.csv",
        "pnl.csv",
        "tca.csv",
        "tca_summary.csv",
        "metadata.json",
    }
    assert list(out_dir.iterdir()) == [out]  # no temp files left behind
