"""Local control channel: operator commands reach a running engine over a Unix socket.

Only one process can open the DuckDB file, so while the engine runs, ``cockpit reconcile``,
``healthcheck``, ``audit verify``, ``backup`` (and later every command) talk to it here; with no
engine running the CLI opens the DB itself and prints the same output.

Protocol: ``<data-dir>/control.sock`` (mode 0600, owner only); one JSON object per line in each
direction: ``{"cmd": "reconcile", "args": {...}}`` → ``{"ok": true, "result": {...}}`` or
``{"ok": false, "error": "one line"}``. A malformed or oversized request gets an error line, never
a crash; handlers run on the engine loop, one request at a time per connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("engine.control")

SOCKET_NAME = "control.sock"
MAX_LINE = 64 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


class ControlServer:
    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # we hold the data-dir lock, so a socket file here is a leftover of a dead engine
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)  # created 0600 from the start, not chmod-ed after a window
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                           limit=MAX_LINE)  # fmt: skip
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    await self._send(
                        writer, {"ok": False, "error": f"request over {MAX_LINE} bytes"}
                    )
                    return
                if not line:
                    return
                await self._send(writer, await self._dispatch(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                raise ValueError('expected {"cmd": str, "args": {...}}')
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        handler = self.handlers.get(req["cmd"])
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return {"ok": False, "error": f"unknown command {req['cmd']!r} (known: {known})"}
        args = req.get("args") or {}
        try:
            return {"ok": True, "result": await handler(args if isinstance(args, dict) else {})}
        except Exception as exc:  # noqa: BLE001 - reported to the caller, engine keeps running
            log.warning("control command %s failed: %s", req["cmd"], exc)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        writer.write(json.dumps(obj, default=str).encode() + b"\n")
        await writer.drain()


class NotRunning(Exception):
    """No engine answers on this data dir's control socket."""


def call(data_dir: Path, cmd: str, args: dict[str, Any] | None = None,
         timeout_s: float = 60.0) -> Any:  # fmt: skip
    """Send one command to the running engine; raise NotRunning when nobody listens."""
    path = socket_path(data_dir)
    if not path.exists():
        raise NotRunning(str(path))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        try:
            s.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise NotRunning(str(path)) from exc
        s.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"{path}: engine closed the connection")
            buf += chunk
    finally:
        s.close()
    resp = json.loads(buf)
    if not resp.get("ok"):
        raise RuntimeError(resp.get("error", "engine refused the command"))
    return resp["result"]
