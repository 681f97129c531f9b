"""Base class for snapshot-fed widgets: change detection (tables: ``widgets.table``).

Invariants:
- ``update_snapshot`` before the widget is mounted keeps only the latest snapshot and applies it
  on mount (text measuring and styles need the running app).
- ``update_snapshot`` selects the part of the snapshot a widget shows; when it equals the previous
  part (msgspec Structs and tuples compare by value) nothing else runs. ``updates`` counts the
  refreshes that did work.
"""

from __future__ import annotations

from typing import Any

from engine.snapshot import EngineSnapshot

_UNSET: Any = object()


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
