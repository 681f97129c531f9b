"""Cockpit widgets fed by hand-built snapshots: in-place updates, change detection, literal text,
state classes, and rendering at 80x24."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget

from cockpit.testkit import EVIL, T0, gate, model, order, replace, snap
from engine.snapshot import (
    AuditView,
    BudgetView,
    FeedView,
    ReconView,
)
from widgets import (
    SNAPSHOT_WIDGETS,
    AlertsPanel,
    AuditPanel,
    BudgetsPanel,
    FeedsPanel,
    GatesPanel,
    KeyedTable,
    ModelPanel,
    OrdersPanel,
    PnlPanel,
    PriceSparklines,
    ReconPanel,
    SkewPanel,
    StatusBar,
    canary_imbalance,
)
from widgets.alerts import new_items


class Harness(App[None]):
    def __init__(self, *widgets: Widget) -> None:
        super().__init__()
        self.widgets = widgets

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield from self.widgets


def cells(table: KeyedTable, key: str) -> list[str]:
    return table.row_text(key)


def keys(table: KeyedTable) -> list[str]:
    return table.row_keys()


async def test_gates_when_one_gate_changes_then_its_cells_update_in_place() -> None:
    panel = GatesPanel()
    async with Harness(panel).run_test(size=(120, 40)) as pilot:
        s1 = snap()
        panel.update_snapshot(s1)
        await pilot.pause()
        assert keys(panel) == ["stale_quotes", "budget"]
        assert cells(panel, "budget") == ["budget", "ok", "-", "12s", "0"]
        assert not panel.has_class("-active")
        assert panel.rebuilt == 2

        s2 = replace(
            s1,
            seq=2,
            gates=(gate("stale_quotes"), gate("budget", True, "account budget used", T0, 3)),
        )
        panel.update_snapshot(s2)
        await pilot.pause()
        assert keys(panel) == ["stale_quotes", "budget"]
        assert panel.row_count == 2
        assert cells(panel, "budget") == ["budget", "ACTIVE", "account budget used", "0s", "3"]
        assert cells(panel, "stale_quotes")[1] == "ok"
        assert panel.has_class("-active")
        assert panel.rebuilt == 3  # only the budget row was re-cut


async def test_gates_when_snapshot_part_unchanged_then_no_update_work() -> None:
    panel = GatesPanel()
    async with Harness(panel).run_test(size=(120, 40)) as pilot:
        s1 = snap()
        panel.update_snapshot(s1)
        # other fields changed, gates equal, same second: nothing to do
        panel.update_snapshot(replace(s1, seq=2, ts_us=T0 + 400_000, pnl=99.0))
        assert panel.updates == 1
        # a second later the ages change: one update
        panel.update_snapshot(replace(s1, seq=3, ts_us=T0 + 1_000_000))
        await pilot.pause()
        assert panel.updates == 2
        assert cells(panel, "budget")[3] == "13s"


def screen_rows(table: Widget) -> list[str]:
    """What the table draws, line by line (header first), without trailing blanks."""
    return [table.render_line(y).text.rstrip() for y in range(table.size.height)]


async def test_orders_when_one_disappears_then_its_row_goes_and_new_order_is_on_top() -> None:
    panel = OrdersPanel()
    async with Harness(panel).run_test(size=(120, 40)) as pilot:
        s1 = snap()
        panel.update_snapshot(s1)
        await pilot.pause()
        assert keys(panel) == ["c3", "c2", "c1"]
        assert panel.rebuilt == 3

        orders = (
            order("c1", T0 - 3_000_000),
            order("c3", T0 - 1_000_000, "filled"),
            order("c4", T0),
        )
        panel.update_snapshot(replace(s1, seq=2, orders=orders))
        await pilot.pause()
        assert keys(panel) == ["c4", "c3", "c1"]
        assert panel.row_count == 3
        assert cells(panel, "c3")[5] == "filled"
        # only the changed order (c3) and the new one (c4) were rebuilt; c1 kept its row
        assert panel.rebuilt == 5
        lines = screen_rows(panel)
        assert lines[0].split() == [
            "client",
            "id",
            "symbol",
            "side",
            "qty",
            "filled",
            "status",
            "reason",
            "updated",
        ]
        assert [line.split()[0] for line in lines[1:4]] == ["c4", "c3", "c1"]
        assert lines[4] == ""


async def test_table_when_scrolled_then_header_stays_and_widths_only_grow() -> None:
    panel = OrdersPanel()
    async with Harness(panel).run_test(size=(120, 12)) as pilot:
        many = tuple(order(f"c{i}", T0 + i) for i in range(30))
        s1 = snap(orders=many)
        panel.update_snapshot(s1)
        await pilot.pause()
        assert screen_rows(panel)[1].split()[0] == "c29"
        panel.scroll_to(y=10, animate=False)
        await pilot.pause()
        lines = screen_rows(panel)
        assert lines[0].split()[:2] == ["client", "id"]
        assert lines[1].split()[0] == "c19"
        width = panel.virtual_size.width
        long_reason = "x" * 40
        panel.update_snapshot(
            replace(s1, seq=2, orders=(order("c1", T0, "rejected", long_reason),))
        )
        await pilot.pause()
        assert panel.virtual_size.width == width + 40 - len("reason")
        panel.update_snapshot(replace(s1, seq=3, orders=(order("c1", T0),)))
        await pilot.pause()
        assert panel.virtual_size.width == width + 40 - len("reason")


async def test_venue_markup_when_shown_then_rendered_literally() -> None:
    orders, gates, status = OrdersPanel(), GatesPanel(), StatusBar()
    async with Harness(status, gates, orders).run_test(size=(160, 40)) as pilot:
        s = snap(
            orders=(order("c1", T0, "rejected", EVIL),),
            gates=(gate("venue", True, EVIL),),
            kill_switch=True,
            kill_reason=EVIL,
        )
        for w in (orders, gates, status):
            w.update_snapshot(s)
        await pilot.pause()
        assert orders.get_cell("c1", "reason").plain == EVIL
        assert orders.get_cell("c1", "status").style == "bold reverse"
        assert gates.get_cell("venue", "reason").plain == EVIL
        assert EVIL in status.text
        rendered = [orders.render_line(y).text for y in range(orders.size.height)]
        assert any("[red]boom[/red] [link=http://x]y[/link]" in line for line in rendered)
        screen = pilot.app.export_screenshot()
        assert "[link=http://x]" in screen.replace("&#x27;", "'")


async def test_venue_control_characters_when_shown_then_escaped_not_sent_to_terminal() -> None:
    """An escape sequence in a venue error (clear screen, retitle) is shown as text; a newline does
    not split the row."""
    hostile = "bad\x1b[2J\x1b]0;pwned\x07\nnext\x9b"
    orders, status = OrdersPanel(), StatusBar()
    async with Harness(status, orders).run_test(size=(160, 40)) as pilot:
        s = snap(
            orders=(order("c1", T0, "rejected", hostile),), kill_switch=True, kill_reason=hostile
        )
        for w in (orders, status):
            w.update_snapshot(s)
        await pilot.pause()
        shown = orders.get_cell("c1", "reason").plain
        assert shown == "bad\\x1b[2J\\x1b]0;pwned\\x07\\x0anext\\x9b"
        lines = screen_rows(orders)
        assert any(shown in line for line in lines)
        assert lines[2] == ""
        assert shown in status.text
        assert len(status.text.splitlines()) == 2
        drawn = "".join(lines) + status.text.replace("\n", "")
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in drawn)


async def test_status_bar_when_kill_switch_armed_then_halted_and_cleared_when_disarmed() -> None:
    bar = StatusBar()
    async with Harness(bar).run_test(size=(120, 40)) as pilot:
        s = snap()
        bar.update_snapshot(s)
        await pilot.pause()
        assert not bar.has_class("-halted")
        assert bar.has_class("-armed")
        assert "TRADING ARMED" in bar.text
        assert "kill off" in bar.text

        bar.update_snapshot(
            replace(s, seq=2, kill_switch=True, kill_reason="operator", armed=False)
        )
        await pilot.pause()
        assert bar.has_class("-halted")
        assert not bar.has_class("-armed")
        assert "DISARMED" in bar.text
        assert "KILL ARMED: operator" in bar.text

        bar.update_snapshot(replace(s, seq=3))
        await pilot.pause()
        assert not bar.has_class("-halted")
        bar.update_snapshot(replace(s, seq=4, safe_mode=True, armed=False))
        assert bar.has_class("-halted")
        assert "SAFE ON" in bar.text


async def test_budgets_when_left_reaches_zero_then_row_flagged() -> None:
    panel = BudgetsPanel()
    async with Harness(panel).run_test(size=(120, 40)) as pilot:
        s = snap()
        panel.update_snapshot(s)
        await pilot.pause()
        assert cells(panel, "account:all") == ["account", "all", "10/100", "90"]
        assert not panel.has_class("-exhausted")

        budgets = (
            BudgetView(scope="account", key="all", used=100, limit=100),
            BudgetView(scope="symbol", key="BTC/USDT", used=52, limit=50),
        )
        panel.update_snapshot(replace(s, seq=2, budgets=budgets))
        await pilot.pause()
        assert cells(panel, "account:all")[3] == "0 OUT"
        assert cells(panel, "symbol:BTC/USDT")[3] == "-2 OUT"
        assert "reverse" in str(panel.get_cell("account:all", "left").style)
        assert panel.has_class("-exhausted")

        panel.update_snapshot(s)
        await pilot.pause()
        assert cells(panel, "account:all")[3] == "90"
        assert str(panel.get_cell("account:all", "left").style) in ("", "none")
        assert not panel.has_class("-exhausted")


def test_canary_imbalance_rule() -> None:
    assert not canary_imbalance(model(canary_trades=4, total_trades=40))  # 10% vs 10%
    assert canary_imbalance(model(canary_trades=10, total_trades=40))  # 25% vs 10%
    assert not canary_imbalance(model(canary_trades=10, total_trades=19))  # too few trades
    assert not canary_imbalance(model(canary_trades=6, total_trades=40))  # 15%: exactly 0.05


async def test_model_panel_when_canary_unbalanced_then_flagged() -> None:
    panel = ModelPanel()
    async with Harness(panel).run_test(size=(120, 40)) as pilot:
        s = snap()
        panel.update_snapshot(s)
        await pilot.pause()
        text = str(panel.content)
        assert "balanced" in text
        assert "IMBALANCE" not in text
        assert "4/40 = 10.0%" in text
        assert "m-chall" in text
        assert not panel.has_class("-imbalance")

        panel.update_snapshot(
            replace(s, seq=2, model=model(canary_trades=10, psi=(("m-champ", 0.3),)))
        )
        await pilot.pause()
        text = str(panel.content)
        assert "IMBALANCE" in text
        assert "DRIFT" in text
        assert panel.has_class("-imbalance")
        assert panel.has_class("-drift")


def test_alert_overlap_finds_only_new_items() -> None:
    assert new_items((), ("a", "b")) == ("a", "b")
    assert new_items(("a", "b"), ("a", "b", "c")) == ("c",)
    assert new_items(("a", "b", "c"), ("b", "c", "d", "e")) == ("d", "e")
    assert new_items(("a", "b"), ("x",)) == ("x",)


async def test_alerts_when_tail_slides_then_only_new_alerts_are_written() -> None:
    panel = AlertsPanel()
    async with Harness(panel).run_test(size=(120, 40)) as pilot:
        s = snap(alerts=("one", EVIL))
        panel.update_snapshot(s)
        panel.update_snapshot(replace(s, seq=2, alerts=(EVIL, "three")))
        await pilot.pause()
        assert panel.written == 3
        lines = [strip.text for strip in panel.lines]
        assert any("[link=http://x]" in line for line in lines)
        assert panel.has_class("-active")


async def test_side_panels_flag_state_and_feed_sparklines() -> None:
    feeds, recon, skew, prices, pnl, audit = (
        FeedsPanel(),
        ReconPanel(),
        SkewPanel(),
        PriceSparklines(),
        PnlPanel(),
        AuditPanel(),
    )
    async with Harness(feeds, recon, skew, prices, pnl, audit).run_test(size=(120, 40)) as pilot:
        s = snap()
        for w in (feeds, recon, skew, prices, pnl, audit):
            w.update_snapshot(s)
        await pilot.pause()
        assert cells(feeds, "sim") == ["sim", "up", "1m05s", "0", "40ms"]
        assert str(recon.content).startswith("OK 30s ago")
        assert skew.sparkline.data == [1.0, 2.0, 3.2]
        assert "ok" in str(skew.value.content)
        assert sorted(prices.lines) == ["BTC/USDT", "ETH/USDT"]
        assert pnl.pnl_line.data == [0.0, 5.0, 12.5]
        assert keys(audit) == ["2", "1"]
        line_before = prices.lines["BTC/USDT"]

        s2 = replace(
            s,
            seq=2,
            ts_us=T0 + 1_000_000,
            skew_ms=400.0,
            skew_history=(3.2, -400.0),
            pnl=-1.0,
            feeds=(
                FeedView(
                    name="sim", connected=False, uptime_s=0, reconnects=1, staleness_ms=9000.0
                ),
            ),
            recon=ReconView(
                ts_us=T0,
                source="cli",
                duration_ms=5.0,
                ok=False,
                mismatches=(("orders", 2), ("positions", 0)),
            ),
            price_history=(("BTC/USDT", (100.0, 101.0, 100.5, 102.0)),),
            audit=(*s.audit, AuditView(seq=3, ts_us=T0, actor="[b]eve[/b]", kind="kill")),
        )
        for w in (feeds, recon, skew, prices, pnl, audit):
            w.update_snapshot(s2)
        await pilot.pause()
        assert cells(feeds, "sim")[1] == "DOWN"
        assert feeds.has_class("-stale")
        assert "ALERT" in str(recon.content)
        assert "orders 2" in str(recon.content)
        assert "positions" not in str(recon.content)
        assert recon.has_class("-alert")
        assert skew.has_class("-warn")
        assert "HIGH" in str(skew.value.content)
        assert list(prices.lines) == ["BTC/USDT"]
        assert prices.lines["BTC/USDT"] is line_before
        assert len(prices.query("_PriceLine")) == 1
        assert prices.lines["BTC/USDT"].sparkline.data == [100.0, 101.0, 100.5, 102.0]
        assert pnl.has_class("-loss")
        assert keys(audit) == ["3", "2", "1"]
        assert cells(audit, "3")[2] == "[b]eve[/b]"


async def test_every_widget_renders_at_80x24_and_reads_without_colour() -> None:
    widgets = [cls() for cls in SNAPSHOT_WIDGETS]
    app = Harness(*widgets)
    async with app.run_test(size=(80, 24)) as pilot:
        s = snap()
        s2 = replace(
            s,
            seq=2,
            ts_us=T0 + 2_000_000,
            kill_switch=True,
            armed=False,
            orders=(),
            symbols=(),
            recon=None,
            alerts=("a", "b"),
        )
        for s_i in (s, s2):
            for w in widgets:
                w.update_snapshot(s_i)
            await pilot.pause()
        assert all(w.updates >= 1 for w in widgets)
        done = [w.updates for w in widgets]
        for w in widgets:  # an equal snapshot again: no work anywhere
            w.update_snapshot(replace(s2, seq=3))
        assert [w.updates for w in widgets] == done
        status = app.query_one(StatusBar)
        shown = " ".join(status.render_line(y).text for y in range(status.size.height))
        assert "DISARMED" in shown
        assert "KILL ARMED" in shown
        assert "safe off" in shown
        assert status.has_class("-halted")
        assert status.size.height == 2


async def test_snapshot_given_before_mount_then_applied_on_mount() -> None:
    gates, bar = GatesPanel(), StatusBar()
    s = snap(profile="live")
    gates.update_snapshot(snap(seq=0))
    gates.update_snapshot(s)  # only the latest one is kept
    bar.update_snapshot(s)
    async with Harness(bar, gates).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert keys(gates) == ["stale_quotes", "budget"]
        assert gates.updates == 1
        assert bar.has_class("-live")
        assert bar.text.startswith("LIVE paper-sim")


async def test_table_when_orders_roll_for_many_refreshes_then_it_holds_only_shown_rows() -> None:
    """A rolling feed: each refresh one order arrives on top and one leaves at the bottom. Only
    the new row is built, the cache never outgrows the rows shown, and the screen follows."""
    panel = OrdersPanel()
    async with Harness(panel).run_test(size=(120, 40)) as pilot:
        s = snap()
        for i in range(40):
            s = replace(
                s,
                seq=i + 2,
                ts_us=T0 + i * 1_000_000,
                orders=tuple(order(f"c{j}", T0 + j) for j in range(i, i + 12)),
            )
            panel.update_snapshot(s)
            await pilot.pause()
        assert panel.rebuilt == 12 + 39
        assert panel.row_count == 12
        assert len(panel._rows) == 12
        assert [line.split()[0] for line in screen_rows(panel)[1:13]] == [
            f"c{j}" for j in range(50, 38, -1)
        ]


async def test_table_when_cell_narrows_then_column_keeps_width_and_grows_for_wider() -> None:
    """Widths only grow: a narrower cell does not shrink the column (jitter); a wider one widens
    it."""
    panel = GatesPanel()
    async with Harness(panel).run_test(size=(160, 40)) as pilot:
        s1 = snap(gates=(gate("venue", True, "x" * 30),))
        panel.update_snapshot(s1)
        await pilot.pause()
        wide = panel.column_width("reason")
        assert wide >= 30
        panel.update_snapshot(replace(s1, seq=2, gates=(gate("venue", True, "y"),)))
        await pilot.pause()
        assert cells(panel, "venue")[2] == "y"
        assert panel.column_width("reason") == wide
        assert screen_rows(panel)[1].startswith(" venue ")
        panel.update_snapshot(replace(s1, seq=3, gates=(gate("venue", True, "z" * 45),)))
        await pilot.pause()
        assert panel.column_width("reason") >= 45
