"""The flat view of the configuration schema, derived from the section dataclasses.

Role: ``FieldSpec`` describes one key (section, name, type, default, metadata: doc, env var,
secret flag, rules); ``iter_fields`` lists every key, top-level first, then each section's in
declaration order; ``section_types`` maps section names to their dataclasses. Nothing here is
declared by hand: adding a field to a dataclass in :mod:`engine.config.structs` is all it takes.
Split from ``structs`` (declarations) so each stays one responsibility. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from functools import cache
from types import MappingProxyType
from typing import Any, get_args, get_origin, get_type_hints

from engine.config.structs import Config


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One configuration key, derived from the dataclass declarations (never written by hand)."""

    section: str | None  # None for top-level keys
    name: str
    type: Any  # bool, int, float, str or tuple[str, ...]
    default: object
    meta: Mapping[str, Any]

    @property
    def key(self) -> str:
        return self.name if self.section is None else f"{self.section}.{self.name}"

    @property
    def env(self) -> str | None:
        env: str | None = self.meta.get("env")
        return env

    @property
    def secret(self) -> bool:
        return bool(self.meta.get("secret", False))

    @property
    def hot(self) -> bool:
        """A running engine applies a new value at once (see :func:`_f`); else: restart."""
        return bool(self.meta.get("hot", False))

    @property
    def is_list(self) -> bool:
        return get_origin(self.type) is tuple

    def get(self, cfg: Config) -> Any:
        holder = cfg if self.section is None else getattr(cfg, self.section)
        return getattr(holder, self.name)


def _specs_of(cls: type, section: str | None) -> list[FieldSpec]:
    hints = get_type_hints(cls)
    out = []
    for f in fields(cls):
        hint = hints[f.name]
        if f.metadata.get("internal") or is_dataclass(hint):
            continue
        if get_origin(hint) is tuple and get_args(hint) != (str, Ellipsis):
            raise TypeError(f"{cls.__name__}.{f.name}: only tuple[str, ...] lists are supported")
        if hint in (int, float) and not {"min", "max"} <= f.metadata.keys():
            # every number is refused outside a documented range (``config show``, env sample)
            raise TypeError(f'{cls.__name__}.{f.name}: a numeric key needs rng="[lo, hi]"')
        default = f.default if f.default is not MISSING else None
        out.append(FieldSpec(section, f.name, hint, default, f.metadata))
    return out


@cache
def section_types() -> Mapping[str, type]:
    """Section name -> section dataclass, in declaration order."""
    hints = get_type_hints(Config)
    return MappingProxyType(
        {f.name: hints[f.name] for f in fields(Config) if is_dataclass(hints[f.name])}
    )


@cache
def iter_fields() -> tuple[FieldSpec, ...]:
    """Every configuration key: top-level keys first, then each section's, in declaration order."""
    specs = _specs_of(Config, None)
    for name, cls in section_types().items():
        specs.extend(_specs_of(cls, name))
    return tuple(specs)
