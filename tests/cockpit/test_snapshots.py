"""Screen snapshots of the cockpit at 80x24 and 120x40 (pytest-textual-snapshot).

The engine side is a fixed ``EngineSnapshot`` (test data, so the pictures are stable); everything
on screen — layout, panels, footer, bindings — is the real app. Update baselines deliberately with
``pytest tests/cockpit/test_snapshots.py --snapshot-update`` and review the SVG diffs.
"""

from __future__ import annotations

import pytest

from cockpit.app import CockpitApp
from cockpit.testkit import FixedHost


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_overview_when_rendered_then_matches_snapshot(snap_compare, size) -> None:
    assert snap_compare(CockpitApp(FixedHost()), terminal_size=size)


def test_kill_switch_modal_when_open_then_matches_snapshot(snap_compare, monkeypatch) -> None:
    monkeypatch.setenv("LOGNAME", "alice")  # the actor shown is the terminal's user: pin it
    assert snap_compare(CockpitApp(FixedHost()), press=["ctrl+k"], terminal_size=(80, 24))
