"""Text views of the configuration schema: ``config show`` and the ``.env`` sample.

Role: render an effective :class:`~engine.config_schema.Config` (with the provenance of each
value) and a documented env sample, both generated from the field declarations in
:mod:`engine.config.structs`. Re-exported by :mod:`engine.config.loader`; import them from there.

Invariants:
- No key is listed here by hand; everything iterates :func:`engine.config.schema.iter_fields`.
- A secret's value is never rendered: ``"***"`` when set, ``""`` when empty. The env sample leaves
  secrets blank.
- The env sample is inert as written: every ``VAR=default`` line is commented out, so copying it
  to ``.env`` never overrides a profile (in particular its safety settings) until a line is
  deliberately uncommented.
- Output is deterministic (declaration order) and ends with a newline, so it can be diffed and
  golden-tested.
- Imports :mod:`engine.config.structs`, :mod:`engine.config.profiles` and
  :mod:`engine.core.envvars`, never :mod:`engine.config.loader`, so there is no import cycle.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from typing import Any

from engine.config.profiles import profile_file
from engine.config.schema import FieldSpec, iter_fields
from engine.config.structs import Config
from engine.core.envvars import ENV_VARS, GROUPS


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # JSON string escapes are a subset of TOML basic-string escapes.
    return json.dumps(str(value), ensure_ascii=False)


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def _type_name(spec: FieldSpec) -> str:
    return "list" if spec.is_list else getattr(spec.type, "__name__", str(spec.type))


def section_doc(section: str) -> str:
    doc: str = next(f for f in fields(Config) if f.name == section).metadata["doc"]
    return doc


def describe_rules(spec: FieldSpec) -> str:
    """Human summary of a key's constraint (``>= 0``, ``in (0, 100]``, ``one of a|b``), or ''."""
    m = spec.meta
    if "rng" in m:
        rng: str = m["rng"]
        return rng if rng[0] in "<>" else f"in {rng}"
    if "choices" in m:
        return "one of " + "|".join(m["choices"])
    if "pattern" in m:
        return f"matches ^{m['pattern']}$"
    if "item_pattern" in m:
        return f"items match ^{m['item_pattern']}$"
    if m.get("nonempty"):
        return "non-empty"
    return ""


def render_config(cfg: Config) -> str:
    """Effective configuration: ``key = value  # source[; range R]`` per key, secrets redacted."""
    rows = []
    for spec in iter_fields():
        value = spec.get(cfg)
        shown = ('"***"' if value else '""') if spec.secret else _toml_value(value)
        src = cfg.sources.get(spec.key, "default")
        if "rng" in spec.meta:  # every number's accepted range, documented where it is set
            src += f"; range {spec.meta['rng']}"
        rows.append((f"{spec.key} = {shown}", src))
    width = max(len(left) for left, _ in rows)
    where = profile_file(cfg.sources) or "defaults"  # the file actually used: first header line
    header = f"# effective configuration: profile {cfg.name!r} from {where}, kind {cfg.kind!r}"
    return "\n".join([header, *(f"{left:<{width}}  # {src}" for left, src in rows)]) + "\n"


def _also_read() -> list[str]:
    """The variables read that are not config keys (``engine.core.envvars``), by group."""
    lines = ["# Also read (not config keys), from engine/core/envvars.py:"]
    width = max(len(name) for name in ENV_VARS)
    for group, title in GROUPS.items():
        lines.append(f"#  {title}:")
        lines += [f"#   {v.name:<{width}}  {v.doc}" for v in ENV_VARS.values() if v.group == group]
    return lines


def render_env_sample() -> str:
    """Documented ``.env`` sample: per env-backed key, a doc comment then ``# VAR=default``.

    Every assignment is commented out: a copied sample must not silently override a profile's
    safety settings (e.g. ``SAFE_MODE=false`` beating ``safe_mode = true`` in live.toml).
    """
    lines = [
        "# Trading cockpit env sample, generated from engine/config/structs.py; do not edit.",
        "# Precedence: defaults < profile (profiles/<EXEC_PROFILE>.toml) < environment < CLI.",
        "# Booleans: 0/1/true/false/yes/no. Lists: comma-separated. An empty value means unset.",
        "# Every VAR=value line below is commented out, so this file changes nothing as copied.",
        "# Uncommenting a line overrides the profile for that key (e.g. SAFE_MODE=false beats",
        "# safe_mode = true in live.toml): uncomment only the lines you mean to change.",
        *_also_read(),
    ]
    section: str | None = ""
    for spec in iter_fields():
        if spec.env is None:
            continue
        if spec.section != section:
            section = spec.section
            title = f"[{section}] {section_doc(section)}" if section else "top level"
            lines += ["", f"# --- {title}"]
        rule = describe_rules(spec)
        default = "empty" if spec.default in ("", ()) else _toml_value(spec.default)
        parts = [spec.key, _type_name(spec), *(["secret"] if spec.secret else []), rule]
        parts.append(f"default {default}")
        lines.append(f"# {spec.meta['doc']} ({', '.join(p for p in parts if p)})")
        lines.append(f"# {spec.env}={'' if spec.secret else _env_value(spec.default)}")
    return "\n".join(lines) + "\n"


def config_hash(cfg: Config) -> str:
    """sha256 of the effective configuration (every key and value, in declaration order).

    A secret counts only as set / unset: its value never enters the hash (a hash of a short
    secret can be brute-forced), yet adding or removing one still changes it."""
    h = hashlib.sha256()
    for spec in iter_fields():
        value = spec.get(cfg)
        shown = ("<set>" if value else "<unset>") if spec.secret else _toml_value(value)
        h.update(f"{spec.key}={shown}\n".encode())
    return h.hexdigest()
