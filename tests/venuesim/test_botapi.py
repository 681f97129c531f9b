"""The loopback Telegram Bot API server speaks the real protocol: raw HTTP and unmodified PTB."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram

from tests.conftest import ROOT
from venuesim.botapi import DEFAULT_TOKEN, BotApiServer, serve_in_thread

TOKEN = DEFAULT_TOKEN


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    server = BotApiServer(TOKEN)
    await server.start()
    yield server
    await server.stop()


async def call(method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_send_message_when_form_body_then_bot_api_envelope(api: BotApiServer) -> None:
    status, body = await call(
        "POST", f"{api.url}{TOKEN}/sendMessage", data={"chat_id": "42", "text": "hi"}
    )
    assert status == 200
    assert body["ok"] is True
    result = body["result"]
    assert (result["message_id"], result["text"]) == (1, "hi")
    assert result["chat"] == {"id": 42, "type": "private", "first_name": "Operator"}
    assert isinstance(result["date"], int)
    assert [(m.chat_id, m.text) for m in api.messages] == [("42", "hi")]


async def test_send_message_when_json_or_query_then_accepted(api: BotApiServer) -> None:
    status, _ = await call(
        "POST", f"{api.url}{TOKEN}/sendMessage", json={"chat_id": -1001234, "text": "j"}
    )
    assert status == 200
    status, body = await call("GET", f"{api.url}{TOKEN}/sendMessage?chat_id=7&text=q")
    assert status == 200
    assert body["result"]["message_id"] == 2
    assert [(m.chat_id, m.text) for m in api.messages] == [("-1001234", "j"), ("7", "q")]


async def test_errors_use_telegram_shapes(api: BotApiServer) -> None:
    assert await call("POST", f"{api.url}000:wrong/sendMessage", data={"chat_id": "1"}) == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert await call("POST", f"{api.url}{TOKEN}/noSuchMethod") == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found"},
    )
    status, body = await call("POST", f"{api.url}{TOKEN}/sendMessage", data={"chat_id": "1"})
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")
    status, body = await call(
        "POST", f"{api.url}{TOKEN}/sendMessage", data={"chat_id": "1", "text": "x" * 4097}
    )
    assert (status, body["description"]) == (400, "Bad Request: message is too long")
    assert api.messages == []


async def test_faults_429_500_delay_in_order(api: BotApiServer) -> None:
    api.set_fault("429", retry_after=3)
    api.set_fault("500")
    api.set_fault("delay", delay_s=0.3)
    url = f"{api.url}{TOKEN}/getMe"
    assert await call("POST", url) == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        },
    )
    assert (await call("POST", url))[0] == 500
    t0 = time.monotonic()
    status, body = await call("POST", url)
    assert time.monotonic() - t0 >= 0.29
    assert (status, body["result"]["username"]) == (200, "cockpit_sim_bot")
    assert [c.status for c in api.calls] == [429, 500, 200]


async def test_hang_fault_released_by_stop() -> None:
    server = BotApiServer(TOKEN)
    await server.start()
    server.set_fault("hang")
    req = asyncio.create_task(call("POST", f"{server.url}{TOKEN}/getMe"))
    await asyncio.sleep(0.2)
    assert not req.done()
    t0 = time.monotonic()
    await server.stop()
    await asyncio.wait({req}, timeout=2.0)
    assert time.monotonic() - t0 < 2.0
    assert req.done()  # answered (500) or cut off: never left hanging


async def test_admin_endpoints(api: BotApiServer) -> None:
    base = f"http://127.0.0.1:{api.port}"
    status, body = await call("POST", f"{base}/_admin/fault", json={"kind": "429", "count": 2})
    assert (status, len(body["pending"])) == (200, 1)
    assert (await call("POST", f"{base}/_admin/fault", json={"kind": "teapot"}))[0] == 400
    send = f"{api.url}{TOKEN}/sendMessage"
    for _ in range(3):
        await call("POST", send, data={"chat_id": "5", "text": "t"})
    status, body = await call("GET", f"{base}/_admin/messages")
    assert [(m["chat_id"], m["text"], m["message_id"]) for m in body["messages"]] == [("5", "t", 1)]
    status, body = await call("GET", f"{base}/_admin/calls")
    assert [c["status"] for c in body["calls"]] == [429, 429, 200]
    await call("DELETE", f"{base}/_admin/messages")
    assert api.messages == []


async def test_unmodified_ptb_when_pointed_at_server_then_works(api: BotApiServer) -> None:
    async with telegram.Bot(TOKEN, base_url=api.url) as bot:  # initialize() calls getMe
        assert bot.username == "cockpit_sim_bot"
        msg = await bot.send_message(chat_id=-100777, text="from PTB")
    assert (msg.message_id, msg.chat.type, msg.text) == (1, "supergroup", "from PTB")
    assert api.messages[0].params == {"chat_id": "-100777", "text": "from PTB"}


def test_serve_in_thread_for_synchronous_callers() -> None:
    with serve_in_thread(TOKEN) as api:
        data = urllib.parse.urlencode({"chat_id": "9", "text": "sync"}).encode()
        with urllib.request.urlopen(f"{api.url}{TOKEN}/sendMessage", data=data) as resp:
            assert json.loads(resp.read())["ok"] is True
        api.set_fault("500")
        assert [(m.chat_id, m.text) for m in api.messages()] == [("9", "sync")]
        assert api.server.calls[0].status == 200


def test_cli_prints_url_and_serves_until_terminated() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "venuesim.botapi", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["base_url"] == f"http://127.0.0.1:{info['port']}/bot"
        with urllib.request.urlopen(f"{info['base_url']}{info['token']}/getMe") as resp:
            assert json.loads(resp.read())["result"]["is_bot"] is True
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
