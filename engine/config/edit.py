"""Changing one key of a profile file: the checks, the new text, whether a running engine can
take it. Used by ``cockpit config set`` (``cockpit/config_cli.py``) and by the engine when it
applies a hot key (``engine.trading.config_change``).

Role: :func:`find_key` refuses unknown (naming the closest key), derived and secret keys;
:func:`parse_new` checks a value with the loader's own rules (:func:`engine.config.loader.
parse_value`, as for an env var) and names the accepted range or choices on refusal;
:func:`edit_text` returns the profile text with the one key changed; :func:`hot_blocker` says why
a running engine would not take the new value at once.

Comments: ``tomli_w`` writes TOML but drops comments, and profiles are documented by theirs. So
the one line of the key is edited in place when that can be done safely (the key on a line of
its own in its table, with a single-line value; a missing key is added at the end of its
table), and the result must parse to exactly the old document with that one value changed;
anything else (a multi-line array, a dotted or quoted key, ...) falls back to a full rewrite by
``tomli_w`` without comments, and :func:`edit_text` says so (the CLI tells the operator, the
backup keeps the original).
"""

from __future__ import annotations

import copy
import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from engine.config.errors import ConfigError
from engine.config.loader import FieldSpec, iter_fields, parse_value
from engine.config.render import describe_rules

ORIGIN = "config set"
_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?")
_ANY_HEADER = re.compile(r"\s*\[")


def find_key(key: str) -> FieldSpec:
    """The key's declaration; refused (one line) when unknown, derived or secret."""
    specs = {s.key: s for s in iter_fields() if not s.meta.get("derived")}
    spec = specs.get(key)
    if spec is None:
        if key == "name":
            raise ConfigError(
                "is the profile file's name; it cannot be set", origin=ORIGIN, key=key
            )
        leaf = [k for k in specs if k.rsplit(".", 1)[-1] == key]
        close = leaf or difflib.get_close_matches(key, list(specs), n=1, cutoff=0.0)
        raise ConfigError(f"unknown key, did you mean {close[0]!r}?", origin=ORIGIN, key=key)
    if spec.secret:
        raise ConfigError(
            f"is a secret: secrets never go in a profile; store it with "
            f"`cockpit secrets set {spec.env}`",
            origin=ORIGIN,
            key=key,
        )
    return spec


def accepted(spec: FieldSpec) -> str:
    """What a value of this key may be, for an error message."""
    rule = describe_rules(spec)
    if spec.type is bool:
        return "true or false"
    if spec.is_list:
        return "a comma-separated list" + (f" ({rule})" if rule else "")
    if spec.type in (int, float):
        return f"{'an integer' if spec.type is int else 'a number'} {rule}"  # every one has a range
    return rule or "a string"


def parse_new(spec: FieldSpec, raw: str) -> Any:
    """``raw`` (as typed on the command line) parsed and checked as the loader checks an env var."""
    try:
        return parse_value(spec.key, raw, ORIGIN)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc.problem}; accepted: {accepted(spec)}", origin=ORIGIN, key=spec.key
        ) from None


def literal(value: Any) -> str:
    """A value as a one-line TOML literal (``1.5``, ``true``, ``"x"``, ``["A/B", "C/D"]``)."""
    if isinstance(value, tuple | list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


def file_value(data: Mapping[str, Any], spec: FieldSpec) -> Any | None:
    """The key's value as the profile document holds it; None when the file does not set it."""
    holder = data if spec.section is None else data.get(spec.section)
    if not isinstance(holder, Mapping):
        return None
    return holder.get(spec.name)


def edit_text(text: str, spec: FieldSpec, value: Any) -> tuple[str, bool]:
    """``text`` with ``spec`` set to ``value``; the flag is True when comments were kept (the
    line edited in place), False for a full ``tomli_w`` rewrite. ``text`` must be valid TOML."""
    data = tomllib.loads(text)
    want = copy.deepcopy(data)
    holder = want if spec.section is None else want.setdefault(spec.section, {})
    holder[spec.name] = list(value) if isinstance(value, tuple) else value
    edited = _in_place(text, spec, literal(value))
    if edited is not None:
        try:
            if tomllib.loads(edited) == want:
                return edited, True
        except tomllib.TOMLDecodeError:
            pass
    return tomli_w.dumps(want), False


def _value_end(rest: str) -> int | None:
    """Length of the TOML value at the start of ``rest`` (what follows is blank or a comment)."""
    cuts = [i for i, c in enumerate(rest) if c == "#"] + [len(rest)]
    for cut in cuts:
        candidate = rest[:cut].rstrip()
        if not candidate:
            continue
        try:
            tomllib.loads(f"v = {candidate}")
        except tomllib.TOMLDecodeError:
            continue
        return len(candidate)
    return None


def _in_place(text: str, spec: FieldSpec, new: str) -> str | None:
    """Edit (or add) the key's own line; None when that cannot be done simply."""
    lines = text.splitlines(keepends=True)
    key_re = re.compile(rf"(\s*{re.escape(spec.name)}\s*=\s*)(.*)")
    section: str | None = None
    last_in_section: int | None = None  # index of the last line of the key's table
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        header = _HEADER.fullmatch(body)
        if header or _ANY_HEADER.match(body):
            section = header[1] if header else "\0"  # [[arrays]] and the like: never ours
            if section == spec.section:
                last_in_section = i
            continue
        if section != spec.section:
            continue
        if body.strip() and not body.lstrip().startswith("#"):
            last_in_section = i
        m = key_re.fullmatch(body)
        if m:
            end = _value_end(m[2])
            if end is None:
                return None  # a value over several lines: not a one-line edit
            lines[i] = m[1] + new + m[2][end:] + line[len(body) :]
            return "".join(lines)
    return _insert(lines, spec, new, last_in_section)


def _insert(lines: list[str], spec: FieldSpec, new: str, after: int | None) -> str:
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += eol
    entry = f"{spec.name} = {new}{eol}"
    if spec.section is None:  # a top-level key goes before the first table
        first = next((i for i, ln in enumerate(lines) if _ANY_HEADER.match(ln)), len(lines))
        lines.insert(first, entry)
    elif after is None:  # no such table yet
        lines.extend([eol, f"[{spec.section}]{eol}", entry])
    else:
        lines.insert(after + 1, entry)
    return "".join(lines)


def hot_blocker(
    spec: FieldSpec, target: Path, running_file: Path | None, running_sources: Mapping[str, str]
) -> str | None:
    """Why a running engine (its profile file and the source of each of its keys) would not take
    a new value of ``spec`` written to ``target`` at once; None when it can."""
    if running_file is None or not _same_file(running_file, target):
        return f"the running engine uses {running_file or 'another profile'}, not this file"
    if not spec.hot:
        return f"restart needed for {spec.key}"
    src = running_sources.get(spec.key, "default")
    if src.startswith("env:"):
        return f"env {src.removeprefix('env:')} sets {spec.key} on the running engine"
    if src == "override":
        return f"a command-line option sets {spec.key} on the running engine"
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
