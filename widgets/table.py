"""KeyedTable: the cockpit's read-only table, keyed rows drawn with Textual's Line API.

Why not a DataTable: the cockpit's tables change every refresh (ages tick, ~10 orders a refresh
arrive at 40 orders/s). A DataTable removes / adds / re-sorts rows for that (each removal rebuilds
its row index and refreshes the hover cell), and its render caches are keyed by a table-wide
update counter, so after any change it re-renders every visible cell through Rich. Measured with
the orders, fills and audit panels at 40 orders/s, 4 Hz (``scripts/bench_widgets.py``), that was
the largest part of the UI thread, and UI time is GIL time the engine waits for. Here a row is cut
into a ``Strip`` once, when it appears or changes; moving rows costs a list assignment, and a
frame is a lookup, a crop and a background per visible line.

Invariants:
- Two ways in, both in display order: ``sync(rows)`` with ``(key, cells)`` pairs (a row is re-cut
  when any cell differs, style included), and ``show(views)`` for subclasses that define
  ``key(view)`` and ``cells(view)`` (cells are built only when the view, an immutable snapshot
  Struct compared by value, differs from the one the row was built from).
- Never cleared: a row whose key disappeared is dropped, the others keep their cells and strips.
  The row cache holds exactly the rows shown, so memory is bounded by the snapshot.
- Cells are ``widgets._fmt.lit`` Texts: literal, control characters escaped, never markup.
- Column widths grow to fit and never shrink (no jitter); a wider cell re-cuts the strips.
- The header stays on top while rows scroll under it (keyboard: arrows, page keys, home/end).
  Header and zebra stripes are component classes styled with theme variables (themes, NO_COLOR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from widgets._base import SnapshotMixin
from widgets._fmt import same

PAD = 1  # blank cells either side of a column, as in a DataTable

Row = tuple[str, tuple[Text, ...]]


class KeyedTable(SnapshotMixin, ScrollView, can_focus=True):
    """Subclasses set ``COLUMNS`` / ``TITLE`` and define ``select`` / ``apply``; ``apply`` calls
    ``sync`` or ``show``."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"keyed-table--header", "keyed-table--even-row"}
    DEFAULT_CSS = """
    KeyedTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus { background-tint: $foreground 5%; }
        & > .keyed-table--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .keyed-table--header { background: ansi_bright_blue; color: ansi_default; }
        & > .keyed-table--even-row { background: $surface-lighten-1 50%; }
        &:dark > .keyed-table--even-row { background: $surface-darken-1 40%; }
    }
    """
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()  # (column key, label)
    TITLE: ClassVar[str] = ""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = self.TITLE
        self._col_index = {key: i for i, (key, _) in enumerate(self.COLUMNS)}
        self._widths = [cell_len(label) for _, label in self.COLUMNS]
        self._order: list[str] = []
        # key -> [view (or cells), cells, strip or None]: a strip is cut lazily, at its first draw
        self._rows: dict[str, list[Any]] = {}
        self._header: Strip | None = None
        self._widened = False
        self.rebuilt = 0  # rows (re)built: tests and benchmarks read it

    # -- filling ---------------------------------------------------------------------------------

    def key(self, view: Any) -> str:
        raise NotImplementedError

    def cells(self, view: Any) -> tuple[Text, ...]:
        raise NotImplementedError

    def show(self, views: Sequence[Any]) -> None:
        """Rows for ``views`` top to bottom; a repeated key shows once, at its first place."""
        old: dict[str, list[Any]] = self._rows
        rows: dict[str, list[Any]] = {}
        for view in views:
            key = self.key(view)
            if key in rows:
                continue
            entry = old.get(key)
            if entry is None or entry[0] != view:
                entry = self._built(view, self.cells(view))
            rows[key] = entry
        self._place(rows)

    def sync(self, rows: Sequence[Row]) -> None:
        """Rows ``(key, cells)`` top to bottom; unchanged rows keep their strips."""
        old: dict[str, list[Any]] = self._rows
        placed: dict[str, list[Any]] = {}
        for key, cells in rows:
            entry = old.get(key)
            if entry is None or not all(map(same, entry[1], cells)):
                entry = self._built(cells, cells)
            placed[key] = entry
        self._place(placed)

    def _built(self, token: Any, cells: tuple[Text, ...]) -> list[Any]:
        self.rebuilt += 1
        widths = self._widths
        for i, cell in enumerate(cells):
            if cell.cell_len > widths[i]:
                widths[i] = cell.cell_len
                self._widened = True
        return [token, cells, None]

    def _place(self, rows: dict[str, list[Any]]) -> None:
        if self._widened:  # every strip was cut to the old widths
            self._widened, self._header = False, None
            for entry in rows.values():
                entry[2] = None
        order = list(rows)
        if order == self._order and all(rows[k] is self._rows[k] for k in order):
            return  # nothing moved or changed: no repaint
        self._rows, self._order = rows, order
        self.virtual_size = Size(self._line_width(), len(order) + 1)
        self.refresh()

    # -- reading (tests, command palette) --------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._order)

    def row_keys(self) -> list[str]:
        return list(self._order)

    def row_text(self, key: str) -> list[str]:
        return [c.plain for c in self._rows[key][1]]

    def get_cell(self, key: str, column: str) -> Text:
        cell: Text = self._rows[key][1][self._col_index[column]]
        return cell

    def column_width(self, column: str) -> int:
        return self._widths[self._col_index[column]]

    # -- drawing ---------------------------------------------------------------------------------

    def _line_width(self) -> int:
        return sum(self._widths) + 2 * PAD * len(self._widths)

    def _cut(self, cells: Sequence[Text]) -> Strip:
        pad = " " * PAD
        segments: list[Segment] = []
        for cell, width in zip(cells, self._widths, strict=True):
            if cell.spans:  # lit() never makes spans; anything richer goes through Rich
                rendered = list(cell.render(self.app.console))
                segments += [
                    Segment(pad),
                    *Segment.adjust_line_length(rendered, width),
                    Segment(pad),
                ]
                continue
            text = set_cell_size(cell.plain, width)
            if not cell.style:
                segments.append(Segment(pad + text + pad))
                continue
            # the style covers the text only, not the padding (as a DataTable draws it)
            style = cell.style if isinstance(cell.style, Style) else Style.parse(cell.style)
            body = text.rstrip(" ") if cell.plain[-1:] != " " else text
            segments += [
                Segment(pad),
                Segment(body, style),
                Segment(" " * (width - cell_len(body)) + pad),
            ]
        return Strip(segments, self._line_width())

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            if self._header is None:
                self._header = self._cut([Text(label) for _, label in self.COLUMNS])
            style = base + self.get_component_rich_style("keyed-table--header")
            return self._header.crop_extend(scroll_x, scroll_x + width, style).apply_style(style)
        index = scroll_y + y - 1
        if index >= len(self._order):
            return Strip.blank(width, base)
        entry = self._rows[self._order[index]]
        if entry[2] is None:
            entry[2] = self._cut(entry[1])
        style = base
        if index % 2 == 0:
            style = base + self.get_component_rich_style("keyed-table--even-row")
        strip: Strip = entry[2]
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_style(style)
