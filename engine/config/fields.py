"""How a config key is declared: ``config_field`` (imported as ``_f`` by ``structs``) turns a
default, doc, env var, secret flag and validation rules into a dataclass field whose metadata the
loader, the validators and the renderers read.

Invariants: a range string is parsed once, at import, into ``min``/``max`` and exclusivity; a bad
one raises at import. Secrets get ``repr=False``. Stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Any

_RANGE = re.compile(r"([\[(])\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*([\])])|(>=?|<=?)\s*(-?[\d.]+)")


def config_field(
    default: Any, doc: str, env: str | None = None, *, secret: bool = False, **rules: Any
) -> Any:
    """Declare a config field once: default, doc, env var, secret flag and validation rules.

    Rules: ``rng`` (``"[0, 1]"``, ``"(0, 100]"``, ``">= 0"``, ``"> 0"``; stored as ``min``/``max``/
    ``min_exclusive``/``max_exclusive``), ``choices``, ``pattern`` (full match), ``nonempty``,
    ``item_pattern``, ``unique``, ``min_items``. Secrets get ``repr=False`` so a logged Config
    cannot leak them. ``hot=True``: a running engine takes a new value without a restart
    (``cockpit config set``; applied by ``engine.trading.hot_config``, which has an applier for
    exactly these keys — a test holds the two together).
    """
    meta: dict[str, Any] = {"doc": doc, "env": env, "secret": secret, **rules}
    if "rng" in rules:
        m = _RANGE.fullmatch(rules["rng"])
        if m is None:
            raise ValueError(f"bad range {rules['rng']!r}")
        if m[1]:
            meta.update(min=float(m[2]), min_exclusive=m[1] == "(")
            meta.update(max=float(m[3]), max_exclusive=m[4] == ")")
        else:
            side = "min" if m[5].startswith(">") else "max"
            meta.update({side: float(m[6]), f"{side}_exclusive": "=" not in m[5]})
    return field(default=default, repr=not secret, metadata=meta)
