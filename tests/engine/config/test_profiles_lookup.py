"""Where profiles are found: ./profiles, $XDG_CONFIG_HOME/cockpit (~/.config/cockpit),
/etc/cockpit, then the built-in profiles/ — first match wins; COCKPIT_PROFILES_DIR alone when
set; a path as is. ``cockpit config show`` names the file it used on its first line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import profiles
from engine.config.loader import ConfigError, load_config
from engine.config.profiles import BUILTIN_DIR, profile_file, search_dirs
from tests.acceptance.helpers import run


def _write(folder: Path, name: str, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(f'kind = "paper"\n[sim]\nseed = {seed}\n')
    return path


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A cwd, an XDG config home and a stand-in for /etc/cockpit, all empty."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    system = tmp_path / "etc-cockpit"
    monkeypatch.setattr(profiles, "SYSTEM_DIR", system)
    return {"cwd": cwd / "profiles", "xdg": tmp_path / "xdg", "etc": system, "home": tmp_path}


def _env(places: dict[str, Path]) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(places["xdg"]), "HOME": str(places["home"])}


def test_lookup_when_name_in_several_places_then_first_in_order_wins(
    places: dict[str, Path],
) -> None:
    env = _env(places)
    etc = _write(places["etc"], "desk", 3)
    assert load_config("desk", env=env).sim.seed == 3
    xdg = _write(places["xdg"] / "cockpit", "desk", 2)
    assert load_config("desk", env=env).sim.seed == 2
    local = _write(places["cwd"], "desk", 1)
    cfg = load_config("desk", env=env)
    assert cfg.sim.seed == 1
    assert profile_file(cfg.sources) == local
    assert search_dirs(env) == [places["cwd"], xdg.parent, etc.parent, BUILTIN_DIR]


def test_lookup_when_found_nowhere_else_then_builtin_profiles_are_the_fallback(
    places: dict[str, Path],
) -> None:
    cfg = load_config("paper", env=_env(places))
    assert profile_file(cfg.sources) == BUILTIN_DIR / "paper.toml"


def test_lookup_when_xdg_unset_or_relative_then_home_dot_config(places: dict[str, Path]) -> None:
    home = places["home"]
    _write(home / ".config" / "cockpit", "desk", 9)
    assert load_config("desk", env={"HOME": str(home)}).sim.seed == 9
    env = {"HOME": str(home), "XDG_CONFIG_HOME": "relative/dir"}  # ignored, as XDG requires
    assert load_config("desk", env=env).sim.seed == 9


def test_lookup_when_profiles_dir_env_set_then_only_that_directory(
    places: dict[str, Path], tmp_path: Path
) -> None:
    only = tmp_path / "only"
    _write(only, "desk", 5)
    _write(places["cwd"], "desk", 1)
    env = {**_env(places), "COCKPIT_PROFILES_DIR": str(only)}
    assert load_config("desk", env=env).sim.seed == 5
    with pytest.raises(ConfigError) as info:
        load_config("paper", env=env)  # the built-in one is not searched then
    assert f"available in {only}: desk" in str(info.value)


def test_lookup_when_missing_then_one_line_names_every_place_searched(
    places: dict[str, Path],
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("nosuch", env=_env(places))
    text = str(info.value)
    assert "\n" not in text
    for where in (places["xdg"] / "cockpit", places["etc"], BUILTIN_DIR):
        assert str(where) in text
    assert "paper" in text  # what is available


def test_lookup_when_path_given_then_used_as_is(places: dict[str, Path], tmp_path: Path) -> None:
    _write(places["cwd"], "desk", 1)
    path = _write(tmp_path / "elsewhere", "desk", 4)
    assert load_config(str(path), env=_env(places)).sim.seed == 4


def test_config_show_when_profile_from_xdg_then_first_line_names_the_file(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "cockpit", "xdgonly", 11)
    res = run("config", "show", "--profile", "xdgonly", XDG_CONFIG_HOME=str(tmp_path))
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith("# effective configuration: profile 'xdgonly' from ")
    assert str(path) in first
    assert "sim.seed = 11" in res.stdout
