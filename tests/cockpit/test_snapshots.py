"""Screen snapshots of the cockpit at 80x24 and 120x40 (pytest-textual-snapshot).

The engine side is a fixed ``EngineSnapshot`` (test data, so the pictures are stable); everything
on screen — layout, panels, footer, bindings — is the real app. Update baselines deliberately with
``pytest tests/cockpit/test_snapshots.py --snapshot-update`` and review the SVG diffs.
"""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from cockpit.app import CockpitApp
from engine.core.events import CommandResult
from tests.cockpit.test_widgets import gate, order, snap, symbol


class FixedHost:
    """Serves one snapshot; refuses commands (nothing behind it)."""

    error = None
    api = None
    loop = None
    runtime = None
    alive = True

    def __init__(self) -> None:
        self.snapshot = snap(
            gates=(
                gate("kill_switch"),
                gate("safe_mode"),
                gate("stale_data", True, "SOL/USDT: market data 1532 ms old > 1000 ms"),
                gate("budget"),
            ),  # fmt: skip
            orders=(order("ck-1-a.0", 1), order("ck-1-b.0", 2, "rejected", "[red]boom[/red]")),
            symbols=(symbol("BTC/USDT"), symbol("ETH/USDT")),
        )

    def execute(self, cmd: object, totp: str | None = None) -> Future[CommandResult]:
        f: Future[CommandResult] = Future()
        f.set_result(CommandResult(ok=False, message="fixed host"))
        return f


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_overview_when_rendered_then_matches_snapshot(snap_compare, size) -> None:
    assert snap_compare(CockpitApp(FixedHost()), terminal_size=size)


def test_kill_switch_modal_when_open_then_matches_snapshot(snap_compare) -> None:
    assert snap_compare(CockpitApp(FixedHost()), press=["ctrl+k"], terminal_size=(80, 24))
