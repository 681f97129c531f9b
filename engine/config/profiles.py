"""Where profiles are looked up: the directories a Linux admin expects, first match wins.

Role: turn ``--profile`` / ``EXEC_PROFILE`` into one TOML file. A value ending in ``.toml`` or
containing a ``/`` is a path and is used as is. A bare name (``paper``) is looked up as
``<dir>/<name>.toml`` in, first match wins:

1. ``./profiles`` (the current directory: a checkout, or a deploy directory)
2. ``$XDG_CONFIG_HOME/cockpit`` (default ``~/.config/cockpit``: one operator's own profiles)
3. ``/etc/cockpit`` (the host's profiles, owned by root)
4. the built-in ``<repo>/profiles`` shipped with the program (last fallback)

``COCKPIT_PROFILES_DIR``, when set, replaces that list: it is the only directory searched (an
explicit override for packaging and tests; mixing it with the others would make the file used
depend on what happens to lie around). A ``profiles_dir`` passed by code does the same.

Invariants:
- The search order is defined here only; ``load_config`` and ``cockpit config set`` both use
  :func:`resolve_profile`, so the file that is edited is the file that is loaded.
- A relative ``XDG_CONFIG_HOME`` is ignored, as the XDG base-directory spec requires.
- Every variable read here is registered in :mod:`engine.core.envvars`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from engine.config.errors import ConfigError
from engine.core.envvars import COCKPIT_PROFILES_DIR, HOME, XDG_CONFIG_HOME

_PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]+")
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "profiles"
SYSTEM_DIR = Path("/etc/cockpit")


def display(path: Path) -> str:
    """Path as shown in messages and sources: relative to the cwd when under it."""
    full = path.expanduser().absolute()
    try:
        return str(full.relative_to(Path.cwd()))
    except ValueError:
        return str(full)


def user_config_dir(env: Mapping[str, str]) -> Path | None:
    """``$XDG_CONFIG_HOME/cockpit``, else ``$HOME/.config/cockpit``; None when neither is known."""
    xdg = env.get(XDG_CONFIG_HOME, "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "cockpit"
    home = env.get(HOME, "")
    return Path(home) / ".config" / "cockpit" if home else None


def search_dirs(env: Mapping[str, str], profiles_dir: Path | None = None) -> list[Path]:
    """The directories a profile name is looked up in, in order (see the module doc)."""
    if profiles_dir is not None:
        return [profiles_dir]
    configured = env.get(COCKPIT_PROFILES_DIR)
    if configured:
        return [Path(configured).expanduser()]
    user = user_config_dir(env)
    dirs = [Path.cwd() / "profiles", *([user] if user else []), SYSTEM_DIR, BUILTIN_DIR]
    out: list[Path] = []
    for d in dirs:  # ./profiles is the built-in one when run from the checkout: list it once
        if not any(_same(d, seen) for seen in out):
            out.append(d)
    return out


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def resolve_profile(profile: str, env: Mapping[str, str], profiles_dir: Path | None = None) -> Path:
    """The file ``profile`` names: a path as is, a bare name by the search order above.

    Raises :class:`ConfigError` naming what was searched and what is available."""
    if profile.endswith(".toml") or "/" in profile or os.sep in profile:
        path = Path(profile).expanduser()
        if not path.is_file():
            raise ConfigError(f"profile {profile!r} not found", origin=display(path))
        return path
    if not _PROFILE_NAME.fullmatch(profile):
        raise ConfigError(f"invalid profile name {profile!r}", origin="profile")
    dirs = search_dirs(env, profiles_dir)
    for d in dirs:
        candidate = d / f"{profile}.toml"
        if candidate.is_file():
            return candidate
    found = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.toml")})
    listing = ", ".join(found) if found else "none"
    if len(dirs) == 1:
        raise ConfigError(
            f"profile {profile!r} not found (available in {display(dirs[0])}: {listing})",
            origin=display(dirs[0] / f"{profile}.toml"),
        )
    searched = ", ".join(display(d) for d in dirs)
    raise ConfigError(
        f"profile {profile!r} not found in {searched} (available: {listing})", origin="profile"
    )


def profile_file(sources: Mapping[str, str]) -> Path | None:
    """The absolute path of the file a Config was loaded from (its ``name`` source), resolved
    against this process's current directory; None for a Config not built from a file."""
    src = sources.get("name", "")
    if not src.startswith("profile:"):
        return None
    return Path(src.removeprefix("profile:")).absolute()
