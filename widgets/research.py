"""ResearchPanel: walk-forward campaigns (one row each) and, for the selected one, its stitched
out-of-sample equity curve and drawdown as sparklines.

Role: a view only. It is fed plain campaign dicts (``research.campaign_store`` summaries and one
``load`` result) by its owner (``cockpit.research_view.ResearchTab``), which reads the store off
the UI thread; the panel posts ``Selected`` when the row cursor moves (attributes down, messages
up). It never opens a file.

Invariants:
- Rows update in place, keyed by campaign id: a stored campaign never changes, so an unchanged
  list costs nothing; the rows are rebuilt only when a campaign appears (rare: one per run) and
  the cursor stays on the campaign it was on.
- Campaign ids, model names and verdict reasons come from files: shown literally through
  ``widgets._fmt.lit`` / ``plain`` (never markup, control and bidi characters escaped). Table
  cells are ``Text``, never ``str`` (a DataTable parses ``str`` cells as markup).
- Fits 80×24: the table shrinks (and scrolls), the detail and the two charts keep their lines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Sparkline, Static

from widgets._fmt import FLAG_STYLE, lit, plain

COLUMNS = (
    ("id", "id"),
    ("verdict", "verdict"),
    ("created", "created"),
    ("interval", "int"),
    ("folds", "folds"),
    ("cost_bps", "bps"),
    ("total_return", "return"),
    ("sharpe", "Sharpe"),
    ("max_drawdown", "max DD"),
    ("deflated_sharpe", "DSR"),
    ("pbo", "PBO"),
)


def _num(value: Any, fmt: str) -> str:
    """A stored number (nullable) in ``fmt``; '-' when missing or not finite."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return format(value, fmt)


def ret_pct(value: Any) -> str:
    """A return stored as a fraction, as a signed percentage: ``-1.2 %``."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{value * 100:+.1f} %"


def dd_pct(value: Any) -> str:
    """A drawdown (fraction, whichever sign it was stored with) as a loss: ``-12.3 %``."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    depth = round(abs(value) * 100, 1)
    return f"-{depth:.1f} %" if depth else "0.0 %"


def day(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1_000_000, UTC).strftime("%Y-%m-%d") if ts_us else "-"


def verdict_text(verdict: Any) -> Text:
    v = plain(verdict).upper()
    return lit(v, "bold" if v == "PASS" else FLAG_STYLE)


def row_cells(c: Mapping[str, Any]) -> tuple[Text, ...]:
    created = c.get("created_us") or 0
    return (
        lit(c["campaign_id"]),
        verdict_text(c.get("verdict", "")),
        lit(datetime.fromtimestamp(created / 1e6, UTC).strftime("%m-%d %H:%M") if created else "-"),
        lit(c.get("interval", "")),
        lit(c.get("folds", "")),
        lit(_num(c.get("cost_bps"), "g")),
        lit(ret_pct(c.get("total_return"))),
        lit(_num(c.get("sharpe"), ".2f")),
        lit(dd_pct(c.get("max_drawdown"))),
        lit(_num(c.get("deflated_sharpe"), ".2f")),
        lit(_num(c.get("pbo"), ".2f")),
    )


def equity_values(points: Any) -> list[float]:
    """The equity column of ``[[ts_us, equity], ...]``; malformed or non-finite points skipped."""
    out: list[float] = []
    for p in points if isinstance(points, list) else []:
        ok = isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[1], int | float)
        if ok and math.isfinite(p[1]):
            out.append(float(p[1]))
    return out


def drawdowns(equity: Sequence[float]) -> list[float]:
    """Depth below the running peak at each point, as a fraction (0 at a new high, 0.1 = -10 %)."""
    out: list[float] = []
    peak = -math.inf
    for v in equity:
        peak = max(peak, v)
        out.append(1.0 - v / peak if peak > 0 else 0.0)
    return out


def verdict_line(c: Mapping[str, Any]) -> str:
    """One line for the promote confirmation: ``latest campaign ID (DAY): FAIL — reason;
    return -1.2 %, PBO 0.50`` (literal: escaped, for a ``Text``)."""
    return plain(
        f"latest campaign {c['campaign_id']} ({day(c.get('created_us') or 0)}): "
        f"{str(c.get('verdict', '')).upper()} — {c.get('verdict_reason', '')}; "
        f"return {ret_pct(c.get('total_return'))}, PBO {_num(c.get('pbo'), '.2f')}"
    )


def detail_text(c: Mapping[str, Any]) -> Text:
    """The selected campaign: its verdict and why first (what the operator reads it for), then
    what ran. Literal throughout; it wraps, and the panel keeps it to three lines."""
    text = Text(end="")
    text.append_text(lit(c["campaign_id"], "bold"))
    text.append(" ")
    text.append_text(verdict_text(c.get("verdict", "")))
    text.append_text(Text(f": {plain(c.get('verdict_reason', ''))}\n", end=""))
    text.append_text(
        Text(
            f"{plain(c.get('interval', ''))} {plain(c.get('start_date', ''))}"
            f"→{plain(c.get('end_date', ''))}  {c.get('folds', '-')} folds × "
            f"{c.get('window_days', '-')}d  models {plain(c.get('models', ''))}  "
            f"trades {c.get('trades', '-')}  cost drag {ret_pct(c.get('cost_drag'))}",
            end="",
        )
    )
    return text


class ResearchPanel(Widget):
    """Campaign table, selected campaign's detail, equity and drawdown sparklines."""

    DEFAULT_CSS = """
    ResearchPanel { height: 1fr; layout: vertical; }
    ResearchPanel #research-status { height: 1; }
    ResearchPanel.-busy #research-status { color: $warning; }
    ResearchPanel DataTable { height: 2fr; min-height: 5; }
    ResearchPanel #campaign-detail { height: auto; max-height: 3; }
    ResearchPanel .chart-label { height: 1; color: $text-muted; }
    ResearchPanel #equity { height: 1fr; min-height: 3; max-height: 10; }
    ResearchPanel #drawdown { height: 1fr; min-height: 2; max-height: 5; }
    ResearchPanel #drawdown > .sparkline--max-color { color: $error; }
    ResearchPanel #drawdown > .sparkline--min-color { color: $error 30%; }
    """

    class Selected(Message):
        """The row cursor moved to ``campaign_id``."""

        def __init__(self, campaign_id: str) -> None:
            super().__init__()
            self.campaign_id = campaign_id

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.status = Static("campaigns: reading…", id="research-status", markup=False)
        self.table: DataTable[Text] = DataTable(
            id="campaigns", cursor_type="row", zebra_stripes=True
        )
        self.detail = Static("", id="campaign-detail", markup=False)
        self.equity_label = Static("equity: -", classes="chart-label", markup=False)
        self.equity = Sparkline([], id="equity", summary_function=_mean)
        self.drawdown_label = Static("drawdown: -", classes="chart-label", markup=False)
        self.drawdown = Sparkline([], id="drawdown")  # max per column: the deepest point shows
        self._keys: list[str] = []
        self._plain: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield self.status
        yield self.table
        yield self.detail
        yield self.equity_label
        yield self.equity
        yield self.drawdown_label
        yield self.drawdown

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.table.add_column(label, key=key)

    @property
    def selected(self) -> str | None:
        """The campaign id under the row cursor (None when the table is empty)."""
        if not self._keys:
            return None
        return self._keys[min(self.table.cursor_row, len(self._keys) - 1)]

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    def show_status(self, status: str, busy: bool = False) -> None:
        """The one-line state above the table (``-busy``: the store is held, rows kept)."""
        self.status.update(lit(status))
        self.set_class(busy, "-busy")

    def show_campaigns(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """The store's campaigns, newest first."""
        cells = {str(c["campaign_id"]): row_cells(c) for c in rows}
        keys = list(cells)
        if keys == self._keys:
            for key, row in cells.items():  # stored campaigns do not change: normally a no-op
                if tuple(t.plain for t in row) != self._plain[key]:
                    for (col, _), cell in zip(COLUMNS, row, strict=True):
                        self.table.update_cell(key, col, cell)
        else:
            keep = self.selected
            self.table.clear()
            for key, row in cells.items():
                self.table.add_row(*row, key=key)
            if keep in cells:
                self.table.move_cursor(row=keys.index(keep))
        self._keys = keys
        self._plain = {k: tuple(t.plain for t in row) for k, row in cells.items()}

    def show_detail(self, campaign: Mapping[str, Any] | None, note: str = "") -> None:
        """The selected campaign with its equity curve (``load``'s dict); None clears, with
        ``note`` saying why (busy store, no campaign)."""
        if campaign is None:
            self.detail.update(lit(note))
            self.equity_label.update("equity: -")
            self.drawdown_label.update("drawdown: -")
            self.equity.data = []
            self.drawdown.data = []
            return
        self.detail.update(detail_text(campaign))
        equity = equity_values(campaign.get("equity"))
        depth = drawdowns(equity)
        self.equity.data = equity
        self.drawdown.data = depth
        if equity:
            change = equity[-1] / equity[0] - 1 if equity[0] else math.nan
            self.equity_label.update(
                lit(
                    f"equity (out of sample, {len(equity)} points): {equity[0]:,.2f} → "
                    f"{equity[-1]:,.2f} ({ret_pct(change)})"
                )
            )
            self.drawdown_label.update(
                lit(
                    f"drawdown (taller = deeper): max {dd_pct(max(depth))}, now {dd_pct(depth[-1])}"
                )
            )
        else:
            self.equity_label.update("equity: no out-of-sample points stored")
            self.drawdown_label.update("drawdown: -")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Selected(event.row_key.value))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
