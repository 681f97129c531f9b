"""The engine imports nothing from the UI: every engine module, in a fresh interpreter."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import engine


def test_import_every_engine_module_when_fresh_then_textual_rich_never_loaded() -> None:
    names = [f"engine.{m.name}" for m in pkgutil.iter_modules(engine.__path__)]
    assert len(names) > 15  # a guard: the loop really imports the modules
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}: importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'rich', 'cockpit', 'widgets'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
