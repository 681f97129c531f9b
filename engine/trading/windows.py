"""Small helpers over bounded windows: a percentile, and forgetting the oldest entries.

Role: shared by the order cache, the paper venue, the telemetry and the feeds' SLO figures;
imports nothing from the engine. The order windows themselves live in ``order_cache``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def p95(values: Any) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] if ordered else 0.0


def forget_oldest(
    orders: dict[str, Any], target: int, removable: Callable[[str, Any], bool]
) -> None:
    """Bounded memory: drop the oldest (insertion order) removable orders until ``target`` remain
    or none is removable; open orders are never removable."""
    for cid in list(orders):
        if len(orders) <= target:
            break
        if removable(cid, orders[cid]):
            del orders[cid]
