"""Loopback Telegram Bot API server: what the cockpit's Telegram notifier talks to in tests.

Role: an aiohttp app on 127.0.0.1 speaking the real Bot API HTTP protocol closely enough that
UNMODIFIED python-telegram-bot (``telegram.Bot(token, base_url=f"{url}")``) sends to it:

- ``/bot<token>/sendMessage`` and ``/bot<token>/getMe`` (GET or POST; parameters from the query
  string, an ``application/x-www-form-urlencoded`` or multipart body, which is what PTB sends
  (every non-string value JSON-encoded), or a JSON body), answering the Bot API envelope
  ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description"[, "parameters"]}``.
- A wrong token is HTTP 401 ``Unauthorized``; an unknown method 404 ``Not Found``; a missing
  chat id / empty or over-long text 400 ``Bad Request: ...`` like Telegram's.
- Faults, consumed in order by the next Bot API requests (``set_fault``): ``429`` (with
  ``parameters.retry_after``), ``500``, ``delay`` (``delay_s`` then a normal answer) and
  ``hang`` (no answer until the server stops).
- Admin endpoints for a test driving another process (no token): ``GET /_admin/messages``,
  ``GET /_admin/calls``, ``POST /_admin/fault {"kind", "count", "retry_after", "delay_s"}``,
  ``DELETE /_admin/fault``, ``DELETE /_admin/messages``.

Invariants: binds 127.0.0.1 only; every delivered message is recorded in ``messages`` (chat id as
the string received, text, all parameters) and every Bot API request in ``calls`` (method,
monotonic time, HTTP status); ``stop()`` releases hanging requests. Nothing here imports the
engine: the simulator is a separate process in spirit. ``python -m venuesim.botapi --port N``
prints the base URL and token and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

LOOPBACK = "127.0.0.1"
DEFAULT_TOKEN = "123456:sim-bot-token"  # noqa: S105 - the simulator's fixed fake token
MAX_TEXT = 4096  # Telegram's limit, in UTF-16 code units
FAULT_KINDS = ("429", "500", "delay", "hang")
BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "Cockpit Sim",
    "username": "cockpit_sim_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


@dataclass(frozen=True, slots=True)
class SentMessage:
    chat_id: str
    text: str
    message_id: int
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    at: float  # time.monotonic() when the request arrived
    status: int


@dataclass(slots=True)
class Fault:
    kind: str
    count: int = 1
    retry_after: int = 1
    delay_s: float = 0.0


@dataclass(slots=True)
class _State:
    messages: list[SentMessage] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)


def _envelope_error(status: int, description: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    body.update(extra)
    return web.json_response(body, status=status)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _chat(chat_id: str) -> dict[str, Any]:
    if chat_id.startswith("@"):
        return {"id": -1001000000000, "type": "channel", "username": chat_id[1:], "title": chat_id}
    numeric = int(chat_id) if chat_id.lstrip("-").isdigit() else 0
    if numeric < 0:
        kind = "supergroup" if chat_id.startswith("-100") else "group"
        return {"id": numeric, "type": kind, "title": "Cockpit alerts"}
    return {"id": numeric, "type": "private", "first_name": "Operator"}


async def _params(request: web.Request) -> dict[str, Any]:
    """Bot API parameters: query string, then the body (JSON, urlencoded or multipart)."""
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    else:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def parse_fault(payload: dict[str, Any]) -> Fault:
    """A ``Fault`` from an admin payload; ValueError names the bad field."""
    kind = str(payload.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)} (got {kind!r})")
    fault = Fault(
        kind=kind,
        count=int(payload.get("count", 1)),
        retry_after=int(payload.get("retry_after", 1)),
        delay_s=float(payload.get("delay_s", 0.0)),
    )
    if fault.count < 1 or fault.retry_after < 0 or fault.delay_s < 0:
        raise ValueError("count must be >= 1, retry_after and delay_s >= 0")
    return fault


class BotApiServer:
    """One loopback Bot API server; ``await start()`` returns the PTB ``base_url``."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self._state = _State()
        self._next_id = 1
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._release = asyncio.Event()

    @property
    def messages(self) -> list[SentMessage]:
        return self._state.messages

    @property
    def calls(self) -> list[Call]:
        return self._state.calls

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """PTB's ``base_url``: it appends the token and ``/<method>``."""
        return f"http://{LOOPBACK}:{self._port}/bot"

    def set_fault(
        self, kind: str, count: int = 1, *, retry_after: int = 1, delay_s: float = 0.0
    ) -> None:
        """Queue a fault for the next ``count`` Bot API requests (after faults already queued)."""
        self._state.faults.append(
            parse_fault(
                {"kind": kind, "count": count, "retry_after": retry_after, "delay_s": delay_s}
            )
        )

    def clear_faults(self) -> None:
        self._state.faults.clear()

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._bot_api)
        app.router.add_get("/_admin/messages", self._admin_messages)
        app.router.add_delete("/_admin/messages", self._admin_clear_messages)
        app.router.add_get("/_admin/calls", self._admin_calls)
        app.router.add_post("/_admin/fault", self._admin_fault)
        app.router.add_delete("/_admin/fault", self._admin_clear_faults)
        # A short shutdown bound: a hanging request must not hold stop() for aiohttp's 60 s.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, port, reuse_address=True)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _fault(self) -> web.Response | None:
        """The answer a queued fault imposes on this request, or None (answer normally)."""
        if not self._state.faults:
            return None
        fault = self._state.faults[0]
        fault.count -= 1
        if fault.count <= 0:
            self._state.faults.pop(0)
        if fault.kind == "429":
            return _envelope_error(
                429,
                f"Too Many Requests: retry after {fault.retry_after}",
                parameters={"retry_after": fault.retry_after},
            )
        if fault.kind == "500":
            return _envelope_error(500, "Internal Server Error")
        if fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)
            return None
        await self._release.wait()  # "hang": until stop(), or the client gives up
        return _envelope_error(500, "Internal Server Error")

    async def _bot_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        arrived = time.monotonic()
        response = await self._fault()
        if response is None:
            response = await self._answer(request, method)
        self._state.calls.append(Call(method, arrived, response.status))
        return response

    async def _answer(self, request: web.Request, method: str) -> web.Response:
        if request.match_info["token"] != self.token:
            return _envelope_error(401, "Unauthorized")
        if method == "getMe":
            return web.json_response({"ok": True, "result": BOT_USER})
        if method == "sendMessage":
            return self._send_message(await _params(request))
        return _envelope_error(404, "Not Found")

    def _send_message(self, params: dict[str, Any]) -> web.Response:
        chat_id = str(params.get("chat_id", "")).strip()
        text = str(params.get("text", ""))
        if not chat_id:
            return _envelope_error(400, "Bad Request: chat_id is empty")
        if not text.strip():
            return _envelope_error(400, "Bad Request: message text is empty")
        if _utf16_len(text) > MAX_TEXT:
            return _envelope_error(400, "Bad Request: message is too long")
        message_id, self._next_id = self._next_id, self._next_id + 1
        self._state.messages.append(SentMessage(chat_id, text, message_id, dict(params)))
        result = {
            "message_id": message_id,
            "from": BOT_USER,
            "chat": _chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        return web.json_response({"ok": True, "result": result})

    async def _admin_messages(self, request: web.Request) -> web.Response:
        return web.json_response({"messages": [asdict(m) for m in self._state.messages]})

    async def _admin_clear_messages(self, request: web.Request) -> web.Response:
        self._state.messages.clear()
        return web.json_response({"ok": True})

    async def _admin_calls(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": [asdict(c) for c in self._state.calls]})

    async def _admin_fault(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError("payload must be a JSON object")
            fault = parse_fault(payload)
        except (ValueError, TypeError) as exc:
            return web.json_response({"ok": False, "description": str(exc)}, status=400)
        self._state.faults.append(fault)
        return web.json_response({"ok": True, "pending": [asdict(f) for f in self._state.faults]})

    async def _admin_clear_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"ok": True})


class BotApiThread:
    """A ``BotApiServer`` on its own event loop in a background thread, for synchronous tests
    (e.g. a subprocess under test): ``url``, ``messages()``, ``calls()``, ``set_fault(...)``."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.server = BotApiServer(token)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="botapi", daemon=True)
        self.url = ""

    def _call(self, fn: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
        async def wrapped() -> Any:
            return await fn()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def start(self) -> str:
        self._thread.start()
        self.url = self._call(self.server.start)
        return self.url

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self.server.stop)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10.0)
        self._loop.close()

    def messages(self) -> list[SentMessage]:
        async def copy() -> list[SentMessage]:
            return list(self.server.messages)

        return list(self._call(copy))

    def calls(self) -> list[Call]:
        async def copy() -> list[Call]:
            return list(self.server.calls)

        return list(self._call(copy))

    def set_fault(self, kind: str, count: int = 1, **kw: Any) -> None:
        async def apply() -> None:
            self.server.set_fault(kind, count, **kw)

        self._call(apply)


@contextlib.contextmanager
def serve_in_thread(token: str = DEFAULT_TOKEN) -> Iterator[BotApiThread]:
    """``with serve_in_thread() as api: ... api.url ... api.messages()``; stopped on exit."""
    api = BotApiThread(token)
    api.start()
    try:
        yield api
    finally:
        api.stop()


async def _serve(port: int, token: str) -> None:
    server = BotApiServer(token)
    url = await server.start(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # A fake token of the simulator's own, printed so a person can point the cockpit at it.
    print(json.dumps({"base_url": url, "token": token, "port": server.port}), flush=True)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m venuesim.botapi", description=__doc__)
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free)")
    ap.add_argument("--token", default=DEFAULT_TOKEN, help="the one bot token accepted")
    args = ap.parse_args(argv)
    asyncio.run(_serve(args.port, args.token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
