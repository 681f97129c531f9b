"""Profiles parsed into frozen, validated configuration structs.

Role: turn a profile TOML file (a path, or a name looked up by :mod:`engine.config.profiles`:
``./profiles``, ``$XDG_CONFIG_HOME/cockpit``, ``/etc/cockpit``, the built-in ``profiles/``; or only
``COCKPIT_PROFILES_DIR``), environment variables and explicit overrides into one immutable
:class:`Config`. Precedence, lowest first:
defaults < profile file < environment < overrides. The keys themselves are declared in
:mod:`engine.config.structs`; the text views in :mod:`engine.config.render`. This module is the
public entry point and re-exports both, so callers import everything from ``engine.config.loader``.

Invariants:
- Every key is declared exactly once, as a dataclass field in :mod:`engine.config.structs` whose
  ``metadata`` carries its doc, env var, secret flag and validation rules. The loader here,
  ``config show`` (:func:`render_config`) and the env sample (:func:`render_env_sample`) are
  generated from those declarations; there is no second list of keys anywhere.
- A ``Config`` that exists is valid. Unknown keys/sections, wrong types, NaN/inf, out-of-range
  values, bad choices and cross-field contradictions raise :class:`ConfigError`, whose ``str()``
  is one line naming the origin (file, env var or override), the dotted key and the value.
- Structs are frozen; ``Config.sources`` records, for every dotted key, where its value came from:
  ``default``, ``profile:<path>``, ``env:<VAR>`` or ``override``.
- Secret values never appear in ``repr()``, error messages or rendered output.
- Stdlib only: the engine never imports UI packages.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.config.errors import ConfigError
from engine.config.profiles import display, resolve_profile
from engine.config.render import render_config, render_env_sample
from engine.config.schema import FieldSpec, iter_fields, section_types
from engine.config.structs import (
    BUILTIN_MODEL_IDS,
    FEEDS,
    KINDS,
    VENUES,
    AlertsConfig,
    ClockConfig,
    Config,
    ExchangeConfig,
    FeedsConfig,
    LiveConfig,
    MetricsConfig,
    ModelsConfig,
    NetSimConfig,
    OmsConfig,
    PaperConfig,
    RiskConfig,
    SimConfig,
    StorageConfig,
)
from engine.core.envvars import COCKPIT_DATA_DIR, EXEC_PROFILE

# The public surface: callers import from engine.config.loader, never from the split-out modules.
__all__ = [
    "FEEDS",
    "KINDS",
    "VENUES",
    "AlertsConfig",
    "ClockConfig",
    "Config",
    "ConfigError",
    "ExchangeConfig",
    "FeedsConfig",
    "FieldSpec",
    "LiveConfig",
    "MetricsConfig",
    "ModelsConfig",
    "NetSimConfig",
    "OmsConfig",
    "PaperConfig",
    "RiskConfig",
    "SimConfig",
    "StorageConfig",
    "iter_fields",
    "load_config",
    "metrics_path",
    "parse_value",
    "render_config",
    "render_env_sample",
    "resolve_data_dir",
    "section_types",
    "with_value",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SECRET_NAME = re.compile(r"api_?key|secret|token|passw(or)?d|passphrase|private_?key", re.I)
_ASCII_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_ASCII_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


@cache
def _by_key() -> Mapping[str, FieldSpec]:
    return MappingProxyType({s.key: s for s in iter_fields()})


# ------------------------------------------------------------------------------------ validation


def _shown(spec: FieldSpec, value: object) -> str:
    """The offending value as quoted in an error; secrets are never echoed."""
    if spec.secret:
        return "<redacted>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} chars)"  # hostile input


def _coerce(spec: FieldSpec, value: object, origin: str) -> Any:
    """Check a typed value (from TOML or a Python override) and return it in canonical form."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{problem} (got {_shown(spec, value)})", origin=origin, key=spec.key)

    t = spec.type
    out: Any = value
    # bool is a subclass of int in Python; a config `true` where a number belongs is a mistake.
    if t is bool:
        if not isinstance(value, bool):
            raise fail("must be a boolean (true/false)")
    elif t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("must be an integer")
    elif t is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("must be a number")
        try:
            out = float(value)
        except OverflowError:  # a TOML integer has arbitrary precision
            raise fail("must be a finite number") from None
        if not math.isfinite(out):
            raise fail("must be a finite number")
    elif t is str:
        if not isinstance(value, str):
            raise fail("must be a string")
    elif spec.is_list:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise fail("must be a list of strings")
        out = tuple(value)
    else:  # pragma: no cover - guarded by _specs_of
        raise TypeError(f"unsupported config type {t!r}")
    _check_rules(spec, out, fail)
    return out


def _check_rules(spec: FieldSpec, value: Any, fail: Any) -> None:
    m = spec.meta
    if isinstance(value, int | float) and not isinstance(value, bool):
        lo, hi = m.get("min"), m.get("max")
        if lo is not None:
            if m.get("min_exclusive") and not value > lo:
                raise fail(f"must be > {lo:g}")
            if not value >= lo:
                raise fail(f"must be >= {lo:g}")
        if hi is not None:
            if m.get("max_exclusive") and not value < hi:
                raise fail(f"must be < {hi:g}")
            if not value <= hi:
                raise fail(f"must be <= {hi:g}")
    if "choices" in m and value not in m["choices"]:
        raise fail("must be one of " + ", ".join(repr(c) for c in m["choices"]))
    if "pattern" in m and not re.fullmatch(m["pattern"], value):
        raise fail(f"must match ^{m['pattern']}$")
    if m.get("nonempty") and not value:
        raise fail("must not be empty")
    if spec.is_list:
        if len(value) < m.get("min_items", 0):
            raise fail(f"must have at least {m['min_items']} item(s)")
        for item in value:
            if "item_pattern" in m and not re.fullmatch(m["item_pattern"], item):
                raise fail(f"item {item!r} must match ^{m['item_pattern']}$")
        if m.get("unique") and len(set(value)) != len(value):
            raise fail("must not contain duplicates")


def _parse_text(spec: FieldSpec, raw: str, origin: str) -> Any:
    """Parse a string (env var or CLI override) into the key's type, then validate it."""
    text = raw.strip()
    t = spec.type

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{problem} (got {_shown(spec, raw)})", origin=origin, key=spec.key)

    value: Any
    if t is bool:
        low = text.lower()
        if low not in _TRUE | _FALSE:
            raise fail("must be a boolean (0/1/true/false/yes/no)")
        value = low in _TRUE
    elif t is int:
        # int() also takes "٣" (an Arabic-Indic three) and "1_000": only ASCII digits are numbers
        if not _ASCII_INT.fullmatch(text):
            raise fail("must be an integer (ASCII digits 0-9)")
        value = int(text)
    elif t is float:
        try:
            value = float(text)
        except ValueError:
            raise fail("must be a number") from None
        if not math.isfinite(value):
            raise fail("must be a finite number")
        if not _ASCII_FLOAT.fullmatch(text):
            raise fail("must be a number (ASCII digits 0-9, e.g. 2.5 or 1e3)")
    elif spec.is_list:
        value = tuple(part.strip() for part in text.split(",") if part.strip())
    else:
        value = text
    return _coerce(spec, value, origin)


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    if close:
        return f", did you mean {close[0]!r}?"
    return f" (valid: {', '.join(candidates)})"


# ---------------------------------------------------------------------------------------- loading


def _read_toml(path: Path, shown: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", origin=shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read profile: {exc}", origin=shown) from None


def _refuse_secret(key: str, value: object, shown: str) -> None:
    """A secret in a profile file is refused (profiles are shared, copied and kept in git):
    its value is never echoed, and the message says where secrets belong."""
    spec = _by_key().get(key)
    leaf = key.rsplit(".", 1)[-1]
    if not ((spec is not None and spec.secret) or _SECRET_NAME.search(leaf)):
        return
    if value in ("", None):  # an empty placeholder holds no secret
        return
    where = f"set env {spec.env}" if spec is not None and spec.env else "set it in the environment"
    raise ConfigError(
        f"secrets do not belong in a profile file: remove it and {where} (`cockpit env-sample` "
        "lists API_KEY, API_SECRET, TELEGRAM_BOT_TOKEN; the TOTP seed lives in the encrypted "
        "keystore via `cockpit totp enroll`)",
        origin=shown,
        key=key,
    )


def _apply_profile(
    data: Mapping[str, Any], shown: str, values: dict[str, Any], sources: dict[str, str]
) -> None:
    specs = _by_key()
    sections = list(section_types())
    top = [s.name for s in iter_fields() if s.section is None]
    for key, value in data.items():
        if not isinstance(value, dict):
            _refuse_secret(key, value, shown)
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"must be a table [{key}] (got {value!r})", origin=shown, key=key)
            names = [s.name for s in iter_fields() if s.section == key]
            for sub, sub_value in value.items():
                _refuse_secret(f"{key}.{sub}", sub_value, shown)
                spec = specs.get(f"{key}.{sub}")
                if spec is None:
                    hint = _suggest(sub, names)
                    raise ConfigError(f"unknown key{hint}", origin=shown, key=f"{key}.{sub}")
                values[spec.key] = _coerce(spec, sub_value, shown)
                sources[spec.key] = f"profile:{shown}"
        elif key in top:
            spec = specs[key]
            if spec.meta.get("derived"):
                raise ConfigError(
                    "is derived from the profile file name; remove it",
                    origin=shown,
                    key=key,
                )
            values[key] = _coerce(spec, value, shown)
            sources[key] = f"profile:{shown}"
        elif isinstance(value, dict):
            raise ConfigError(f"unknown section{_suggest(key, sections)}", origin=shown, key=key)
        else:
            raise ConfigError(f"unknown key{_suggest(key, top + sections)}", origin=shown, key=key)


def _apply_env(env: Mapping[str, str], values: dict[str, Any], sources: dict[str, str]) -> None:
    for spec in iter_fields():
        var = spec.env
        # An empty variable counts as unset, so a copied env sample with blank secrets is inert.
        if var is None or not env.get(var):
            continue
        values[spec.key] = _parse_text(spec, env[var], f"env {var}")
        sources[spec.key] = f"env:{var}"


def _apply_overrides(
    overrides: Mapping[str, object], values: dict[str, Any], sources: dict[str, str]
) -> None:
    specs = _by_key()
    for key, value in overrides.items():
        spec = specs.get(key)
        if spec is None or spec.meta.get("derived"):
            candidates = [k for k, s in specs.items() if not s.meta.get("derived")]
            raise ConfigError(f"unknown key{_suggest(key, candidates)}", origin="override", key=key)
        # Strings come from the CLI (e.g. --seed 7) and get the same parsing as env values.
        if isinstance(value, str) and spec.type is not str:
            values[key] = _parse_text(spec, value, "override")
        else:
            values[key] = _coerce(spec, value, "override")
        sources[key] = "override"


def _origin(source: str) -> str:
    if source.startswith("profile:"):
        return source.removeprefix("profile:")
    if source.startswith("env:"):
        return "env " + source.removeprefix("env:")
    return "defaults" if source == "default" else source


def _cross_check(cfg: Config) -> None:
    src = cfg.sources

    def origin_of(*keys: str) -> str:
        # Blame the highest-precedence layer that set one of the keys involved.
        rank = {"override": 3, "env": 2, "profile": 1}
        best = max(keys, key=lambda k: rank.get(src[k].split(":", 1)[0], 0))
        return _origin(src[best])

    m = cfg.models

    for name in ("champion", "challenger"):
        model_id = getattr(m, name)
        if model_id not in BUILTIN_MODEL_IDS:
            raise ConfigError(
                f"unknown model id {model_id!r} (known: {', '.join(BUILTIN_MODEL_IDS)})",
                origin=origin_of(f"models.{name}"),
                key=f"models.{name}",
            )
    if not m.psi_halve < m.psi_block:
        raise ConfigError(
            f"must be < models.psi_block (got {m.psi_halve!r} >= {m.psi_block!r})",
            origin=origin_of("models.psi_halve", "models.psi_block"),
            key="models.psi_halve",
        )
    if cfg.kind == "live" and cfg.offline:
        raise ConfigError(
            "kind 'live' cannot be offline (got offline = true)",
            origin=origin_of("kind", "offline"),
            key="offline",
        )
    ns = cfg.netsim
    if cfg.kind == "live" and any(
        (ns.latency_ms, ns.jitter_ms, ns.drop_rate, ns.disconnect_interval_s, ns.reorder_rate)
    ):
        keys = [
            f"netsim.{k}"
            for k in (
                "latency_ms",
                "jitter_ms",
                "drop_rate",
                "disconnect_interval_s",
                "reorder_rate",
            )
        ]
        bad = next(k for k in keys if src[k] != "default")
        raise ConfigError(
            "NET_SIM_* fault injection is refused in the live profile",
            origin=origin_of(*keys),
            key=bad,
        )
    if cfg.venue == "paper" and cfg.kind != "paper":
        raise ConfigError(
            f"venue 'paper' is only allowed with kind 'paper' (got kind {cfg.kind!r})",
            origin=origin_of("venue", "kind"),
            key="venue",
        )


def _build(values: Mapping[str, Any], sources: Mapping[str, str]) -> Config:
    top = {s.name: values[s.key] for s in iter_fields() if s.section is None}
    sections = {
        name: cls(**{s.name: values[s.key] for s in iter_fields() if s.section == name})
        for name, cls in section_types().items()
    }
    return Config(**top, **sections, sources=MappingProxyType(dict(sources)))


def load_config(
    profile: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    profiles_dir: Path | None = None,
) -> Config:
    """Load ``profile`` (a name in ``profiles_dir`` or a ``.toml`` path) + env + overrides.

    ``profile`` None means env ``EXEC_PROFILE``, else ``paper``. ``env`` defaults to
    ``os.environ``. A name is looked up by :func:`engine.config.profiles.resolve_profile`
    (``./profiles``, ``$XDG_CONFIG_HOME/cockpit``, ``/etc/cockpit``, the built-in
    ``<repo>/profiles``; or only ``profiles_dir`` / env ``COCKPIT_PROFILES_DIR`` when given).
    Raises :class:`ConfigError` (one line) on any invalid input.
    """
    env_map: Mapping[str, str] = os.environ if env is None else env
    path = resolve_profile(profile or env_map.get(EXEC_PROFILE) or "paper", env_map, profiles_dir)
    shown = display(path)
    values: dict[str, Any] = {s.key: s.default for s in iter_fields()}
    sources: dict[str, str] = {s.key: "default" for s in iter_fields()}
    values["name"], sources["name"] = path.stem, f"profile:{shown}"
    _apply_profile(_read_toml(path, shown), shown, values, sources)
    _apply_env(env_map, values, sources)
    _apply_overrides(overrides or {}, values, sources)
    cfg = _build(values, sources)
    _cross_check(cfg)
    return cfg


def parse_value(key: str, raw: object, origin: str) -> Any:
    """One key's new value, checked by the rules the loader applies: text (``"2.5"``,
    ``"a,b"``, ``"yes"``) is parsed as an env var is, a typed value as a TOML value is. Raises
    :class:`ConfigError` from ``origin`` (an unknown key names the closest valid one)."""
    values: dict[str, Any] = {}
    try:
        _apply_overrides({key: raw}, values, {})
    except ConfigError as exc:
        raise ConfigError(exc.problem, origin=origin, key=exc.key) from None
    return values[key]


def with_value(cfg: Config, key: str, value: object, source: str) -> Config:
    """``cfg`` with ``key`` set to ``value`` (as :func:`parse_value` returns it) from ``source``
    (e.g. ``profile:<path>``), cross-field checks included: a Config that exists is valid."""
    values = {s.key: s.get(cfg) for s in iter_fields()}
    sources = {s.key: "default" for s in iter_fields()} | dict(cfg.sources)
    values[key], sources[key] = value, source
    out = _build(values, sources)
    _cross_check(out)
    return out


def resolve_data_dir(cli_value: str | None, env: Mapping[str, str] | None = None) -> Path:
    """Data directory: CLI value, else env ``COCKPIT_DATA_DIR``, else ``./data``; absolute."""
    env_map: Mapping[str, str] = os.environ if env is None else env
    chosen = cli_value or env_map.get(COCKPIT_DATA_DIR) or "data"
    return Path(chosen).expanduser().absolute()


def metrics_path(cfg: Config, data_dir: Path) -> Path:
    """Prometheus textfile: ``metrics.path`` if set (relative = to the cwd), else in the data dir."""
    if cfg.metrics.path:
        return Path(cfg.metrics.path).expanduser().absolute()
    return data_dir / "metrics" / "metrics.prom"
