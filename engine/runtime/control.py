"""Local control channel: operator commands reach a running engine over a Unix socket.

Only one process can open the DuckDB file, so while the engine runs, ``cockpit reconcile``,
``healthcheck``, ``audit verify``, ``backup`` (and later every command) talk to it here; with no
engine running the CLI opens the DB itself and prints the same output.

Protocol: ``<data-dir>/control.sock`` (mode 0600, owner only); one JSON object per line in each
direction: ``{"cmd": "reconcile", "args": {...}}`` → ``{"ok": true, "result": {...}}`` or
``{"ok": false, "error": "one line"}``. A malformed or oversized request gets an error line, never
a crash; handlers run on the engine loop, one request at a time per connection.

Who is asking: the kernel's peer credentials (``SO_PEERCRED``: uid, pid), never anything the
request says. The roles file (``engine.runtime.roles``) maps the uid to operator or observer;
a uid it does not grant is refused (by default only the engine's own user, as operator; the 0600
mode keeps other users out too). Handlers read the caller with :func:`peer` (a context variable
set per connection) and audit it as ``Peer.actor``, e.g. ``unix:alice(uid 1000,pid 123)``;
commands that change engine state go through ``EngineAPI`` with the peer's role.

Long paths: ``sun_path`` holds 107 bytes. A socket path longer than that is bound and connected
through ``/proc/self/fd/<dir fd>/control.sock`` (the directory opened first), so a data dir of
any length works, on both sides, without chdir (the cockpit has other threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.runtime.roles import ROLES_FILE, Roles

log = logging.getLogger("engine.runtime.control")

SOCKET_NAME = "control.sock"
MAX_LINE = 64 * 1024

SUN_PATH_MAX = 107  # bytes of sun_path usable for a path (108 with the terminating NUL)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Peer:
    """The process on the other end of a control connection, as the kernel reports it."""

    uid: int
    pid: int
    user: str
    role: str = "operator"

    @property
    def actor(self) -> str:
        return f"unix:{self.user}(uid {self.uid},pid {self.pid})"


_PEER: contextvars.ContextVar[Peer | None] = contextvars.ContextVar("control_peer", default=None)


def peer() -> Peer:
    """The caller of the control command being handled (set by the server per connection)."""
    p = _PEER.get()
    if p is None:
        raise RuntimeError("no control peer: not inside a control command")
    return p


def _peer_of(sock: Any) -> Peer:
    pid, uid, _gid = struct.unpack(
        "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    )
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return Peer(uid=uid, pid=pid, user=user)


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    """An address ``bind``/``connect`` accept for ``path``, however long its directory."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class ControlServer:
    """The control socket: an owner-only Unix socket; each request names a handler (a command through
    ``EngineAPI.handle`` or a query) and carries the peer's uid (``SO_PEERCRED``) as the actor."""

    def __init__(
        self, path: Path, handlers: dict[str, Handler], roles: Roles | None = None
    ) -> None:
        self.path = path
        self.handlers = handlers
        self.roles = roles or Roles(os.geteuid())
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # we hold the data-dir lock, so a socket file here is a leftover of a dead engine
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600 from the start, not chmod-ed after a window
        try:
            with _address(self.path) as address:
                sock.bind(address)
        except BaseException:
            sock.close()
            raise
        finally:
            os.umask(old)
        # another user granted a role must be able to connect; the kernel check decides
        os.chmod(self.path, 0o666 if self.roles.shared() else 0o600)
        self._server = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_LINE)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            caller = _peer_of(writer.get_extra_info("socket"))
            role = self.roles.role_of(caller.uid)
            if role is None:
                log.warning("control connection refused: %s has no role here", caller.actor)
                with contextlib.suppress(asyncio.TimeoutError, ValueError, ConnectionError):
                    # take its request first, so the caller is never cut off mid-send
                    await asyncio.wait_for(reader.readline(), 1.0)
                await self._send(
                    writer,
                    {
                        "ok": False,
                        "error": f"refused: {caller.actor} is not the engine's user (uid "
                        f"{os.geteuid()}) and has no role in {ROLES_FILE}",
                    },
                )
                return
            caller = dataclasses.replace(caller, role=role)
            _PEER.set(caller)  # this connection's own task: its context only
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
        except Refused as exc:  # the engine said no: its own one-line reason, as is
            return {"ok": False, "error": str(exc).splitlines()[0]}
        except Exception as exc:  # noqa: BLE001 - reported to the caller, engine keeps running
            log.warning("control command %s failed: %s", req["cmd"], exc)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        writer.write(json.dumps(obj, default=str).encode() + b"\n")
        await writer.drain()


class Refused(Exception):
    """A handler's refusal (a command the engine declined): sent as its message alone."""


class NotRunning(Exception):
    """No engine answers on this data dir's control socket."""


def call(
    data_dir: Path, cmd: str, args: dict[str, Any] | None = None, timeout_s: float = 60.0
) -> Any:
    """Send one command to the running engine; raise NotRunning when nobody listens."""
    path = socket_path(data_dir)
    if not path.exists():
        raise NotRunning(str(path))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        try:
            with _address(path) as address:
                s.connect(address)
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise NotRunning(str(path)) from exc
        # refused at connect, the engine writes why and closes: the reply is still read below
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionError(f"{path}: engine closed the connection")
            buf += chunk
    finally:
        s.close()
    resp = json.loads(buf)
    if not resp.get("ok"):
        raise RuntimeError(resp.get("error", "engine refused the command"))
    return resp["result"]
