"""Per-symbol trading blocks, each held by a cause; a symbol trades again only when none is left.

Role: the dict the stale-data gate reads (``symbol -> reason``), kept as the union of every cause
that holds: an order-book gap (``book``, lifted by the resync), a foreign venue order (``orphan``,
lifted only by an operator's acknowledgement), or a direct write (``other``).

Invariants:
- A cause lifts only itself: a book resync never lifts an orphan block, and an acknowledged orphan
  never lifts a gap that is still resyncing (fail closed). Before this, one shared entry per symbol
  let whichever came last decide.
- ``del blocks[symbol]`` lifts every cause at once (an explicit override), and item assignment
  adds an ``other`` cause; reads behave like the plain dict they replace.
- Loop-thread only, like the rest of the engine state.
"""

from __future__ import annotations

BOOK = "book"
ORPHAN = "orphan"
OTHER = "other"


class MarketBlocks(dict[str, str]):
    """``symbol -> reason`` for the stale-data gate, kept as the union of the causes that hold."""

    def __init__(self) -> None:
        super().__init__()
        self._causes: dict[str, dict[str, str]] = {}

    def block(self, symbol: str, cause: str, reason: str) -> None:
        self._causes.setdefault(symbol, {})[cause] = reason
        self._render(symbol)

    def unblock(self, symbol: str, cause: str) -> bool:
        """Lift one cause; True if it was held. The symbol stays blocked by any other."""
        held = self._causes.get(symbol)
        if not held or cause not in held:
            return False
        del held[cause]
        self._render(symbol)
        return True

    def causes(self, symbol: str) -> dict[str, str]:
        return dict(self._causes.get(symbol, {}))

    def _render(self, symbol: str) -> None:
        held = self._causes.get(symbol)
        if held:
            dict.__setitem__(self, symbol, "; ".join(held.values()))
        else:
            self._causes.pop(symbol, None)
            dict.pop(self, symbol, None)

    def __setitem__(self, symbol: str, reason: str) -> None:
        self.block(symbol, OTHER, reason)

    def __delitem__(self, symbol: str) -> None:
        self._causes.pop(symbol, None)
        dict.__delitem__(self, symbol)
