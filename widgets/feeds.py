"""FeedsPanel: market-data feeds with up/down, uptime, reconnects and staleness.

A feed that is down or staler than ``stale_ms`` is flagged ("DOWN" / "STALE", bold reverse); the
panel gets ``-stale`` while any feed is.
"""

from __future__ import annotations

from typing import Any

from engine.snapshot import EngineSnapshot, FeedView
from widgets._fmt import FLAG_STYLE, duration, lit, ms
from widgets.table import KeyedTable, Row


class FeedsPanel(KeyedTable):
    """The market-data feeds: state, age of the last message, reconnects and uptime per feed."""

    DEFAULT_CSS = """
    FeedsPanel { border: round $panel; height: auto; max-height: 10; }
    FeedsPanel.-stale { border: round $warning; }
    """
    TITLE = "Feeds"
    COLUMNS = (
        ("feed", "feed"),
        ("state", "state"),
        ("uptime", "uptime"),
        ("reconnects", "reconn"),
        ("staleness", "stale"),
    )

    def __init__(self, *, stale_ms: float = 2000.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stale_ms = stale_ms

    def select(self, snap: EngineSnapshot) -> Any:
        return snap.feeds

    def _bad(self, f: FeedView) -> bool:
        return not f.connected or f.staleness_ms > self.stale_ms

    def apply(self, part: Any) -> None:
        feeds: tuple[FeedView, ...] = part
        self.sync([self._row(f) for f in feeds])
        self.set_class(any(self._bad(f) for f in feeds), "-stale")

    def _row(self, f: FeedView) -> Row:
        state = "up" if f.connected else "DOWN"
        if f.connected and f.staleness_ms > self.stale_ms:
            state = "STALE"
        style = FLAG_STYLE if self._bad(f) else ""
        return f.name, (
            lit(f.name, style),
            lit(state, style),
            lit(duration(f.uptime_s)),
            lit(f.reconnects),
            lit(ms(f.staleness_ms)),
        )
