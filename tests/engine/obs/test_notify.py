"""Telegram notifier: real python-telegram-bot over loopback HTTP to venuesim.botapi.

Nothing here mocks PTB: every message crosses a real socket to the loopback Bot API server
(127.0.0.1 only), which answers with Telegram's own envelopes and injects 429 / 500 / hang faults.
``cockpit notify test`` is exercised in-process through ``notify_cli.run`` (exit codes 0/1/2).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit import notify_cli
from engine.obs.notify import MAX_TEXT, TelegramNotifier, clean_text, send_test_message
from engine.security.keystore import KEY_ENV, generate_key, open_keystore
from tests.conftest import ROOT
from venuesim.botapi import DEFAULT_TOKEN, BotApiServer, serve_in_thread

TOKEN = DEFAULT_TOKEN
SECRET_HALF = TOKEN.split(":", 1)[1]
CHAT = "4242"
FAST = {"min_interval_s": 0.0, "backoff_base_s": 0.05, "timeout_s": 0.5}


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    server = BotApiServer(TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def started() -> AsyncIterator[Callable[..., TelegramNotifier]]:
    """Builds notifiers with their ``run()`` task started; all closed at teardown."""
    made: list[TelegramNotifier] = []

    def make(base_url: str, token: str = TOKEN, **kw: Any) -> TelegramNotifier:
        n = TelegramNotifier(token, CHAT, base_url, **{**FAST, **kw})
        n.start()
        made.append(n)
        return n

    yield make
    for n in made:
        await n.aclose(flush_timeout_s=0.2)


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for r in caplog.records:
        parts += [r.getMessage(), r.exc_text or "", repr(r.args)]
    return "\n".join(parts)


async def test_notify_when_endpoint_healthy_then_message_delivered_as_plain_text(
    api: BotApiServer, started: Callable[..., TelegramNotifier]
) -> None:
    n = started(api.url)
    assert n.notify("alert", "BreakerTripped firing\nerror rate 12%") is True
    await until(lambda: n.sent == 1)
    (msg,) = api.messages
    assert (msg.chat_id, msg.text) == (CHAT, "BreakerTripped firing\nerror rate 12%")
    assert "parse_mode" not in msg.params
    assert n.stats() == {
        "sent": 1,
        "dropped": 0,
        "failed": 0,
        "retried": 0,
        "queued": 0,
        "disabled": False,
    }


async def test_notify_when_429_then_waits_retry_after_and_delivers(
    api: BotApiServer, started: Callable[..., TelegramNotifier]
) -> None:
    api.set_fault("429", retry_after=1)
    n = started(api.url)
    n.notify("alert", "after the flood")
    await until(lambda: n.sent == 1)
    first, second = [c for c in api.calls if c.method == "sendMessage"]
    assert first.status == 429
    assert second.status == 200
    assert second.at - first.at >= 0.95  # the server's retry_after, not our short backoff
    assert [m.text for m in api.messages] == ["after the flood"]
    assert (n.retried, n.failed) == (1, 0)


async def test_notify_when_5xx_then_backs_off_and_delivers(
    api: BotApiServer, started: Callable[..., TelegramNotifier]
) -> None:
    api.set_fault("500", count=2)
    n = started(api.url)
    n.notify("fill", "filled 0.01 BTC")
    await until(lambda: n.sent == 1)
    assert [c.status for c in api.calls] == [500, 500, 200]
    assert (n.retried, n.failed) == (2, 0)


async def test_notify_when_5xx_persists_then_failed_after_max_attempts_and_next_goes(
    api: BotApiServer, started: Callable[..., TelegramNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    api.set_fault("500", count=3)
    n = started(api.url, max_attempts=3)
    n.notify("alert", "lost")
    n.notify("alert", "kept")
    await until(lambda: n.sent == 1)
    assert [m.text for m in api.messages] == ["kept"]
    assert (n.failed, n.retried, n.disabled) == (1, 2, False)
    warnings = [r.getMessage() for r in caplog.records if r.name == "engine.obs.notify"]
    assert any("server error at 127.0.0.1" in w for w in warnings)


async def test_notify_when_token_rejected_then_disabled_one_error_and_token_never_logged(
    api: BotApiServer, started: Callable[..., TelegramNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad_token = "987654:the-wrong-token-value"
    n = started(api.url, token=bad_token)
    await asyncio.sleep(0.1)  # run() built its bot; now an operator turns every library to DEBUG
    for name in ("httpx", "httpcore", "telegram"):
        caplog.set_level(logging.DEBUG, logger=name)
    for i in range(5):
        n.notify("alert", f"message {i}")
    await until(lambda: n.disabled)
    assert n.notify("alert", "after") is False
    await asyncio.sleep(0.2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "telegram notifications disabled: 401 Unauthorized: check TELEGRAM_BOT_TOKEN"
    ]
    assert n.stats() == {
        "sent": 0,
        "dropped": 5,  # 4 queued behind the refused one, 1 after
        "failed": 1,
        "retried": 0,
        "queued": 0,
        "disabled": True,
    }
    assert [c.status for c in api.calls] == [401]  # disabled: no further requests
    text = all_log_text(caplog)
    assert "HTTP Request: POST http://127.0.0.1" in text  # httpx really logged the URL...
    assert "/bot***/sendMessage" in text  # ...redacted
    assert bad_token not in text
    assert bad_token.split(":", 1)[1] not in text


async def test_library_loggers_when_lowered_to_debug_then_bot_url_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    TelegramNotifier(TOKEN, CHAT, "http://127.0.0.1:9/bot")  # registers the token
    import telegram

    caplog.set_level(logging.DEBUG, logger="telegram")
    caplog.set_level(logging.DEBUG, logger="telegram.Bot")
    telegram.Bot(TOKEN, base_url="http://127.0.0.1:9/bot")  # PTB logs its base URL at DEBUG
    logged = [r.getMessage() for r in caplog.records if r.name == "telegram.Bot"]
    assert "Set Bot API URL: http://127.0.0.1:9/bot***" in logged
    assert SECRET_HALF not in all_log_text(caplog)


async def test_send_test_message_when_token_rejected_then_reason_has_no_token(
    api: BotApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = "555:another-wrong-token"
    ok, reason = await send_test_message(bad, CHAT, api.url, "hello")
    assert (ok, reason) == (False, "401 Unauthorized: check TELEGRAM_BOT_TOKEN")
    assert bad.split(":", 1)[1] not in all_log_text(caplog)


async def test_send_test_message_outcomes(api: BotApiServer) -> None:
    assert await send_test_message(TOKEN, CHAT, api.url, "one") == (True, "sent (message_id 1)")
    api.set_fault("429", retry_after=3)
    assert await send_test_message(TOKEN, CHAT, api.url, "two") == (
        False,
        "429 rate limited: retry after 3 s",
    )
    api.set_fault("hang")
    ok, reason = await send_test_message(TOKEN, CHAT, api.url, "three", timeout_s=0.3)
    assert (ok, reason) == (False, f"no answer from 127.0.0.1:{api.port} within 0.3 s")
    port = free_port()
    ok, reason = await send_test_message(TOKEN, CHAT, f"http://127.0.0.1:{port}/bot", "four")
    assert not ok
    assert reason.startswith(f"cannot reach 127.0.0.1:{port}: ")
    assert [m.text for m in api.messages] == ["one"]


async def test_notify_when_endpoint_dead_then_never_blocks_and_bound_drops_oldest(
    started: Callable[..., TelegramNotifier],
) -> None:
    n = started(f"http://127.0.0.1:{free_port()}/bot", queue_size=10, max_attempts=2)
    await asyncio.sleep(0.05)  # the worker is up and trying
    t0 = time.perf_counter()
    results = [n.notify("alert", f"m{i}") for i in range(1000)]
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.05, f"1000 notify() calls took {elapsed * 1000:.1f} ms"
    assert all(results)  # a full queue evicts the oldest; the new message is queued
    assert n.stats()["queued"] == 10
    assert n.dropped == 990
    await until(lambda: n.failed >= 1)  # connection refused, backed off, given up
    await n.aclose(flush_timeout_s=0.1)
    assert n.sent == 0
    assert n.failed + n.dropped == 1000


async def test_notify_when_endpoint_hangs_then_never_blocks_and_message_released(
    api: BotApiServer, started: Callable[..., TelegramNotifier]
) -> None:
    api.set_fault("hang", count=2)
    n = started(api.url, timeout_s=0.3, max_attempts=2, queue_size=5)
    n.notify("alert", "stuck")
    await until(lambda: len(api.calls) == 0 and n.stats()["queued"] == 0)
    t0 = time.perf_counter()
    for i in range(1000):
        n.notify("alert", f"burst {i}")
    assert time.perf_counter() - t0 < 0.05
    assert n.dropped == 995
    await until(lambda: n.failed == 1, timeout=5.0)  # two 0.3 s read timeouts, then next
    await until(lambda: n.sent == 5, timeout=5.0)
    assert api.messages[0].text == "[995 earlier notifications dropped]\nburst 995"
    assert [m.text for m in api.messages[1:]] == [f"burst {i}" for i in range(996, 1000)]


async def test_notify_when_secrets_in_text_then_redacted(
    api: BotApiServer, started: Callable[..., TelegramNotifier]
) -> None:
    n = started(api.url, secrets=["sk-live-ABCDEF123456", "short"])
    n.notify("alert", f"key sk-live-ABCDEF123456 token {TOKEN} half {SECRET_HALF} short")
    await until(lambda: n.sent == 1)
    assert api.messages[0].text == "key *** token *** half *** short"


async def test_notify_when_hostile_control_chars_then_escaped(
    api: BotApiServer, started: Callable[..., TelegramNotifier]
) -> None:
    n = started(api.url)
    n.notify("venue", "a\x1b[31mred\rX\u202eY\x00\x7f\nline2\tz")
    n.notify("venue", "x" * (MAX_TEXT + 500))
    await until(lambda: n.sent == 2)
    assert api.messages[0].text == "a\\x1b[31mred\\x0dX\\u202eY\\x00\\x7f\nline2\tz"
    long = api.messages[1].text
    assert len(long) <= MAX_TEXT
    assert long.endswith("… [truncated]")


def test_clean_text_when_astral_chars_then_cut_to_4096_utf16_units() -> None:
    out = clean_text("😀" * 5000)
    assert len(out.encode("utf-16-le")) // 2 <= MAX_TEXT
    assert out.endswith("[truncated]")
    assert clean_text("  \n") == "(empty)"


async def test_min_interval_spaces_sends(
    api: BotApiServer, started: Callable[..., TelegramNotifier]
) -> None:
    n = started(api.url, min_interval_s=0.2)
    for i in range(3):
        n.notify("fill", f"f{i}")
    await until(lambda: n.sent == 3)
    at = [c.at for c in api.calls]
    assert all(b - a >= 0.18 for a, b in itertools.pairwise(at))


async def test_aclose_flushes_queue_then_refuses(api: BotApiServer) -> None:
    n = TelegramNotifier(TOKEN, CHAT, api.url, **FAST)
    task = n.start()
    for i in range(3):
        n.notify("alert", f"bye {i}")
    await n.aclose()
    assert task.done()
    assert [m.text for m in api.messages] == ["bye 0", "bye 1", "bye 2"]
    assert n.notify("alert", "late") is False
    assert (n.sent, n.dropped) == (3, 1)


async def test_aclose_when_endpoint_hangs_then_stops_within_flush_timeout(
    api: BotApiServer,
) -> None:
    api.set_fault("hang", count=100)
    n = TelegramNotifier(TOKEN, CHAT, api.url, **{**FAST, "timeout_s": 5.0})
    task = n.start()
    n.notify("alert", "a")
    n.notify("alert", "b")
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    await n.aclose(flush_timeout_s=0.3)
    assert time.monotonic() - t0 < 1.0
    assert task.done()
    assert (n.sent, n.dropped) == (0, 2)  # one in flight, one queued


def test_notify_never_raises() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    n = TelegramNotifier(TOKEN, CHAT, None)
    assert n.notify("alert", Hostile()) is False  # type: ignore[arg-type]
    assert n.notify("alert", "fine") is True


def test_import_loads_neither_ptb_nor_ui_packages() -> None:
    code = (
        "import sys, engine.obs.notify\n"
        "assert 'telegram' not in sys.modules\n"
        "import telegram\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'textual', 'click')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


# --- cockpit notify test --------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cockpit")
    sub = p.add_subparsers(dest="cmd")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--profile")
        q.add_argument("--data-dir")

    notify_cli.add_parsers(sub, common)
    return p.parse_args(argv)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("EXEC_PROFILE", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", KEY_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("TELEGRAM_API_BASE_URL", raising=False)
    return tmp_path / "data"


def _cli(data_dir: Path, *extra: str) -> int:
    args = _parse(["notify", "test", "--profile", "paper", "--data-dir", str(data_dir), *extra])
    return notify_cli.run(args)


def test_cli_when_configured_via_env_then_sends_exit_0(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_in_thread(TOKEN) as api:
        monkeypatch.setenv("TELEGRAM_API_BASE_URL", api.url)
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_CHAT_ID", CHAT)
        assert _cli(cli_env, "--text", "hello from the test") == 0
        assert [(m.chat_id, m.text) for m in api.messages()] == [(CHAT, "hello from the test")]
        assert _cli(cli_env, "--json") == 0
        assert api.messages()[1].text.startswith("cockpit test notification: profile paper")
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0] == "telegram: sent (message_id 1)"
    assert json.loads(lines[1]) == {"ok": True, "reason": "sent (message_id 2)"}
    assert SECRET_HALF not in out.out + out.err


def test_cli_when_token_in_keystore_then_it_wins_over_env(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(KEY_ENV, generate_key())
    cli_env.mkdir(mode=0o700)
    open_keystore(cli_env).set_password("cockpit", "TELEGRAM_BOT_TOKEN", TOKEN)
    with serve_in_thread(TOKEN) as api:
        monkeypatch.setenv("TELEGRAM_API_BASE_URL", api.url)
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "111:stale-env-token")
        monkeypatch.setenv("TELEGRAM_CHAT_ID", CHAT)
        assert _cli(cli_env) == 0
        assert len(api.messages()) == 1
    monkeypatch.delenv(KEY_ENV)  # keystore unreadable: the env token is the fallback
    assert notify_cli.telegram_token(cli_env, _config()) == "111:stale-env-token"
    assert SECRET_HALF not in "".join(capsys.readouterr())


def _config() -> Any:
    from engine.config.loader import load_config

    return load_config("paper")


def test_cli_when_send_fails_then_exit_1_with_reason(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "999:not-the-right-token"
    monkeypatch.setenv("TELEGRAM_CHAT_ID", CHAT)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", wrong)
    with serve_in_thread(TOKEN) as api:
        monkeypatch.setenv("TELEGRAM_API_BASE_URL", api.url)
        assert _cli(cli_env) == 1
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        api.set_fault("429", retry_after=7)
        assert _cli(cli_env, "--json") == 1
    port = free_port()
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", f"http://127.0.0.1:{port}/bot")
    assert _cli(cli_env) == 1
    out = capsys.readouterr()
    err = out.err.splitlines()
    assert err[0] == "cockpit: telegram test: 401 Unauthorized: check TELEGRAM_BOT_TOKEN"
    assert err[1].startswith(f"cockpit: telegram test: cannot reach 127.0.0.1:{port}: ")
    assert json.loads(out.out) == {"ok": False, "reason": "429 rate limited: retry after 7 s"}
    assert "not-the-right-token" not in out.out + out.err


def test_cli_when_not_configured_then_exit_2_naming_what_is_missing(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(cli_env) == 2
    err = capsys.readouterr().err.strip()
    assert "TELEGRAM_BOT_TOKEN is not set" in err
    assert "cockpit secrets set TELEGRAM_BOT_TOKEN" in err
    assert "TELEGRAM_CHAT_ID is not set" in err
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    assert _cli(cli_env, "--json") == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["reason"].startswith("TELEGRAM_CHAT_ID is not set (export TELEGRAM_CHAT_ID=")
    assert SECRET_HALF not in doc["reason"]
