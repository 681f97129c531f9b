"""``python -m tests.adversarial.ui_fault <cockpit args>``: the real cockpit whose help key raises.

A fault injected into one UI action (the only change), to see what the process does when the UI
itself fails: the operator must be told on stderr after the screen is restored, the failure must
be in the log, the exit code must be 1, and trading must stop (kill switch armed).
"""

from __future__ import annotations

import sys

from cockpit.app import CockpitApp
from cockpit.cli import main


def _broken_help(self: CockpitApp) -> None:
    raise RuntimeError("injected UI fault")


if __name__ == "__main__":
    CockpitApp.action_help = _broken_help  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
