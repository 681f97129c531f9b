"""The engine imports nothing from the UI: every engine module, in a fresh interpreter.

The walk covers every sub-package (``pkgutil.walk_packages``) and the venue simulator, which is a
separate process and must load without the UI either.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import engine
import venuesim


def _all_modules() -> list[str]:
    names: list[str] = []
    for pkg in (engine, venuesim):
        names.append(pkg.__name__)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + ".")]
    return names


def test_import_every_engine_module_when_fresh_then_textual_rich_never_loaded() -> None:
    names = _all_modules()
    assert len(names) > 60  # a guard: the walk really reaches into the sub-packages
    assert "engine.trading.engine" in names
    assert "venuesim.venue" in names
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}: importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'rich', 'cockpit', 'widgets'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
