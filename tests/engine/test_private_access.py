"""No module reads another object's private attributes: `x._name` only on `self` or `cls`.

A class owns its state; other code goes through its public methods. The scan walks the engine,
the cockpit and the widgets with `ast`, so a new module is covered the day it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "cockpit", "widgets", "venuesim")
OWNERS = {"self", "cls"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in OWNERS:
            continue
        if (
            isinstance(owner, ast.Call)
            and isinstance(owner.func, ast.Name)
            and owner.func.id == "super"
        ):
            continue
        if isinstance(owner, ast.Name) and owner.id in _MODULE_ALIASES:
            continue
        if name in _NAMEDTUPLE_API:
            continue
        rel = path.relative_to(ROOT)
        if (str(rel), ast.unparse(node)) in _ALLOWED:
            continue
        found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return found


# Private names of standard modules the code must touch (each with its reason).
_MODULE_ALIASES = {
    "sys",  # sys._getframe / sys._current_frames in the diagnostics
    "os",  # os._exit after a fork or a fatal UI error
}
# A NamedTuple's public API is spelled with a leading underscore.
_NAMEDTUPLE_API = {"_asdict", "_replace", "_fields", "_make"}
# (file, expression) pairs that are not another object's state, each with its reason.
_ALLOWED = {
    # the registry's own classmethod filling the instance it is building
    ("engine/strategy/registry.py", "reg._entries"),
}


def test_scan_when_every_module_then_no_private_attribute_read_from_outside() -> None:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 80  # a guard: the scan really walks the packages
    bad = [v for f in files for v in _violations(f)]
    assert bad == [], "\n".join(bad)
