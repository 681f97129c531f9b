"""Base classes for snapshot-fed widgets: change detection and keyed in-place tables.

Invariants:
- ``update_snapshot`` before the widget is mounted keeps only the latest snapshot and applies it
  on mount (DataTable columns and text measuring need the running app).
- ``update_snapshot`` selects the part of the snapshot a widget shows; when it equals the previous
  part (msgspec Structs and tuples compare by value) nothing else runs. ``updates`` counts the
  refreshes that did work.
- ``KeyedTable.sync`` never clears: rows are added with a key, changed cells are updated with
  ``update_cell``, rows whose key disappeared are removed, and the on-screen order is fixed with
  ``sort`` only when it differs from the wanted order. Column widths grow to fit and never shrink
  (no jitter, and no whole-column re-measure per narrower cell).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.widgets import DataTable

from engine.snapshot import EngineSnapshot
from widgets._fmt import same

_UNSET: Any = object()

Row = tuple[str, tuple[Text, ...]]


class SnapshotMixin:
    """``update_snapshot`` with change detection; subclasses define ``select`` and ``apply``."""

    updates: int = 0
    _last: Any = _UNSET
    _pending: EngineSnapshot | None = None

    def select(self, snap: EngineSnapshot) -> Any:
        raise NotImplementedError

    def apply(self, part: Any) -> None:
        raise NotImplementedError

    def update_snapshot(self, snap: EngineSnapshot) -> None:
        if not self.is_mounted:  # type: ignore[attr-defined]
            self._pending = snap
            return
        self._apply_snapshot(snap)

    def on_mount(self) -> None:
        if self._pending is not None:
            snap, self._pending = self._pending, None
            self._apply_snapshot(snap)

    def _apply_snapshot(self, snap: EngineSnapshot) -> None:
        part = self.select(snap)
        if part == self._last:
            return
        self._last = part
        self.updates += 1
        self.apply(part)


# DataTable keeps render caches of 10k cells and 1k rows/lines. Our cells change every refresh and
# the cache keys carry an update counter, so those caches fill with frames nobody will draw again:
# tens of MiB per table that outlive young collections and lengthen every later one (the cockpit
# benchmark's tick→submit tail). A screenful is all a cache here needs to hold.
RENDER_CACHE_SIZES = {"_cell_render_cache": 2048, "_row_render_cache": 256,
                      "_row_renderable_cache": 256, "_line_cache": 256}  # fmt: skip


def shrink_render_caches(table: DataTable[Any]) -> None:
    for attr, size in RENDER_CACHE_SIZES.items():
        cache = getattr(table, attr, None)  # private in Textual: a rename must not break the UI
        if cache is not None and hasattr(cache, "maxsize"):
            cache.maxsize = size


class KeyedTable(SnapshotMixin, DataTable[Text]):
    """A DataTable whose rows are keyed and updated in place."""

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()  # (column key, label)
    TITLE: ClassVar[str] = ""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._cells: dict[str, tuple[Text, ...]] = {}
        self.border_title = self.TITLE
        shrink_render_caches(self)

    def sync(self, rows: Sequence[Row]) -> None:
        if not self.columns:
            for key, label in self.COLUMNS:
                self.add_column(label, key=key)
        wanted = dict(rows)
        for key in [k for k in self._cells if k not in wanted]:
            self.remove_row(key)
            del self._cells[key]
        keys = [k for k, _ in self.COLUMNS]
        columns = [self.columns[k] for k in keys]  # type: ignore[index]
        for key, cells in rows:
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
            else:
                for col, a, b in zip(columns, old, cells, strict=True):
                    if not same(a, b):
                        # Textual re-measures the whole column when a cell gets narrower (every
                        # refresh, as prices and ages change): widths only grow here instead
                        self.update_cell(
                            key, col.key, b, update_width=b.cell_len > col.content_width
                        )
            self._cells[key] = cells
        self._order([k for k, _ in rows])

    def _order(self, order: list[str]) -> None:
        current = [r.key.value for r in self.ordered_rows]
        if current == order:
            return
        rank = {k: i for i, k in enumerate(order)}
        # sort() hands the key function the row's cells, not its key: map them back by identity.
        by_cell = {id(self.get_row(k)[0]): rank[k] for k in order}
        self.sort(key=lambda values: by_cell.get(id(values[0]), len(rank)))

    def row_text(self, key: str) -> list[str]:
        """Plain text of a row's cells (for tests and the command palette)."""
        return [c.plain for c in self._cells[key]]
