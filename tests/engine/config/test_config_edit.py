"""Editing one key of a profile: checks, comment-keeping text edits, backups, hot blockers."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from engine.config import profile_write
from engine.config.edit import edit_text, find_key, hot_blocker, literal, parse_new
from engine.config.loader import ConfigError

PROFILE = """# my profile: comments are documentation
kind = "paper"   # the kind
symbols = ["BTC/USDT", "ETH/USDT"]

[risk]
# the daily loss cap, percent
max_daily_drawdown_pct = 1.0  # was 2.0 until the March incident
max_open_positions = 3

[live]
live_confirm = "A#B"  # a '#' inside the value
"""


def _edit(key: str, raw: str, text: str = PROFILE) -> tuple[str, bool]:
    spec = find_key(key)
    return edit_text(text, spec, parse_new(spec, raw))


def test_edit_when_key_on_its_own_line_then_only_its_value_changes_comments_kept() -> None:
    new, kept = _edit("risk.max_daily_drawdown_pct", "2.5")
    assert kept
    assert new == PROFILE.replace(
        "max_daily_drawdown_pct = 1.0  #", "max_daily_drawdown_pct = 2.5  #"
    )


def test_edit_when_value_holds_a_hash_then_comment_still_kept() -> None:
    new, kept = _edit("live.live_confirm", "I_AGREE")
    assert kept
    assert "live_confirm = \"I_AGREE\"  # a '#' inside the value\n" in new


def test_edit_when_key_missing_then_added_to_its_table_or_a_new_one() -> None:
    new, kept = _edit("risk.cooldown_ms", "5")
    assert kept
    assert "max_open_positions = 3\ncooldown_ms = 5.0\n" in new
    new, kept = _edit("sim.seed", "7")
    assert kept
    assert new.endswith("\n[sim]\nseed = 7\n")
    new, kept = _edit("offline", "true")
    assert kept
    assert tomllib.loads(new)["offline"] is True
    assert new.index("offline = true") < new.index("[risk]")  # top level: before any table


def test_edit_when_list_value_then_one_line_literal() -> None:
    new, kept = _edit("symbols", "SOL/USDT, BTC/USDT")
    assert kept
    assert 'symbols = ["SOL/USDT", "BTC/USDT"]\n' in new


def test_edit_when_value_spans_lines_then_full_rewrite_flagged() -> None:
    text = 'symbols = [\n  "BTC/USDT",\n  "ETH/USDT",\n]\n# gone after a rewrite\n'
    new, kept = _edit("symbols", "SOL/USDT", text)
    assert not kept
    assert tomllib.loads(new) == {"symbols": ["SOL/USDT"]}
    assert "#" not in new


def test_edit_when_crlf_file_then_line_endings_kept() -> None:
    text = PROFILE.replace("\n", "\r\n")
    new, kept = _edit("risk.max_open_positions", "2", text)
    assert kept
    assert new == text.replace("max_open_positions = 3", "max_open_positions = 2")


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("risk.max_daily_drawdown_pct", "150", "accepted: a number in (0, 100]"),
        ("risk.max_daily_drawdown_pct", "abc", "must be a number"),
        ("kind", "bogus", "accepted: one of paper|testnet|live|staging"),
        ("risk.safe_mode", "maybe", "accepted: true or false"),
        ("symbols", "btc", "accepted: a comma-separated list"),
        ("risk.max_dayly_drawdown_pct", "1", "unknown key, did you mean 'risk.max_daily_"),
        ("max_open_positions", "1", "did you mean 'risk.max_open_positions'?"),
        ("zzz", "1", "unknown key, did you mean '"),
        ("exchange.api_secret", "s3cr3t", "cockpit secrets set API_SECRET"),
        ("name", "x", "profile file's name"),
    ],
)
def test_checks_when_bad_key_or_value_then_one_line_naming_key_and_rule(
    key: str, raw: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_new(find_key(key), raw)
    text = str(info.value)
    assert expected in text
    assert "\n" not in text
    assert key in text
    assert "s3cr3t" not in text


def test_literal_when_each_type_then_toml() -> None:
    assert [literal(v) for v in (1.5, 3, True, 'a"b', ("A/B",))] == [
        "1.5",
        "3",
        "true",
        '"a\\"b"',
        '["A/B"]',
    ]


def test_hot_blocker_when_each_case_then_says_why(tmp_path: Path) -> None:
    spec, cold = find_key("risk.max_open_positions"), find_key("models.decision_interval_ms")
    f = tmp_path / "p.toml"
    f.write_text("")
    assert hot_blocker(spec, f, f, {}) is None
    assert "restart needed for models.decision_interval_ms" in str(hot_blocker(cold, f, f, {}))
    other = hot_blocker(spec, f, tmp_path / "q.toml", {})
    assert "the running engine uses" in str(other)
    env = hot_blocker(spec, f, f, {spec.key: "env:MAX_OPEN_POSITIONS"})
    assert "env MAX_OPEN_POSITIONS sets" in str(env)


def test_backup_when_taken_twice_in_a_second_then_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "paper.toml"
    path.write_text("a = 1\n")
    path.chmod(0o644)
    first = profile_write.backup(path, b"one", now=1_700_000_000)
    second = profile_write.backup(path, b"two", now=1_700_000_000)
    assert first.name == "paper.20231114T221320Z.toml"
    assert second.name == "paper.20231114T221320Z-1.toml"
    assert (first.read_bytes(), second.read_bytes()) == (b"one", b"two")
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700
    tmp = profile_write.stage(path, "a = 2\n")
    profile_write.commit(tmp, path)
    assert path.read_text() == "a = 2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the profile keeps its mode
    profile_write.restore(path, b"a = 1\n", second)
    assert path.read_text() == "a = 1\n"
    assert not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".history", "paper.toml"]  # no temp
