"""KpiPanel: SLO / KPIs per symbol: error rate, p95 place latency, slippage p95, fill ratio,
quote staleness.

A symbol whose quotes are staler than ``stale_ms`` or whose error rate is above ``max_error_rate``
is flagged (bold reverse, "!" after the symbol); the panel gets ``-stale`` while any is.
"""

from __future__ import annotations

from typing import Any

from engine.snapshot import EngineSnapshot
from widgets._fmt import FLAG_STYLE, lit, ms, pct
from widgets.table import KeyedTable, Row

KpiPart = tuple[str, float, float, float, float, float]


class KpiPanel(KeyedTable):
    """SLO and KPI figures, global and per symbol: error rate, p95 latency, slippage, fill ratio."""

    DEFAULT_CSS = """
    KpiPanel { border: round $panel; height: auto; max-height: 12; }
    KpiPanel.-stale { border: round $warning; }
    """
    TITLE = "SLO / KPIs"
    COLUMNS = (
        ("symbol", "symbol"),
        ("err", "err rate"),
        ("p95", "p95 place"),
        ("slip", "slip p95 bps"),
        ("fill", "fill ratio"),
        ("stale", "stale"),
    )

    def __init__(
        self, *, stale_ms: float = 5000.0, max_error_rate: float = 0.05, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.stale_ms = stale_ms
        self.max_error_rate = max_error_rate

    def select(self, snap: EngineSnapshot) -> Any:
        return tuple(
            (
                s.symbol,
                s.error_rate,
                s.p95_place_ms,
                s.slippage_p95_bps,
                s.fill_ratio,
                round(s.staleness_ms),
            )
            for s in snap.symbols
        )

    def _bad(self, k: KpiPart) -> bool:
        return k[5] > self.stale_ms or k[1] > self.max_error_rate

    def apply(self, part: Any) -> None:
        kpis: tuple[KpiPart, ...] = part
        self.sync([self._row(k) for k in kpis])
        self.set_class(any(self._bad(k) for k in kpis), "-stale")

    def _row(self, k: KpiPart) -> Row:
        symbol, err, p95, slip, fill, stale = k
        bad = self._bad(k)
        style = FLAG_STYLE if bad else ""
        return symbol, (
            lit(f"{symbol} !" if bad else symbol, style),
            lit(pct(err)),
            lit(ms(p95)),
            lit(f"{slip:.1f}"),
            lit(pct(fill)),
            lit(ms(stale), style),
        )
