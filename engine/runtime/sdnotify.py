"""sd_notify(3) client: tell systemd the engine is ready, alive, stopping, and what it is doing.

Role: under ``Type=notify`` systemd considers the engine started only on ``READY=1``, and with
``WatchdogSec=`` it kills and restarts the engine when ``WATCHDOG=1`` stops arriving. The protocol
is one datagram of newline-separated ``KEY=value`` assignments sent to ``$NOTIFY_SOCKET``, so this
module is plain ``socket`` code, no third-party library.

Invariants:
- Outside systemd (``NOTIFY_SOCKET`` unset or empty) every call is a no-op returning False: the
  same engine runs from a terminal, a test or a unit without a single ``if``.
- A send never raises and never blocks the event loop (``MSG_DONTWAIT``): a service manager that
  is gone, restarting or backlogged must not stop trading; the call returns False and logs once
  per distinct failure.
- ``NOTIFY_SOCKET`` is an absolute path or ``@name`` (Linux abstract namespace, sent with a leading
  NUL byte); anything else (a relative path, ``vsock:``) is unsupported and returns False.
- ``status()`` flattens newlines: a STATUS text built from an error message can never inject a
  second assignment (``READY=1``, ``MAINPID=``) into the datagram.
- The watchdog pings only while ``alive()`` says the engine is healthy, and from the engine's own
  event loop: a wedged loop or an unhealthy engine both stop the pings, and systemd restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

from engine.core.envvars import NOTIFY_SOCKET, WATCHDOG_PID, WATCHDOG_USEC

log = logging.getLogger("engine.runtime.sdnotify")

# Never sleep shorter than this between pings, whatever WATCHDOG_USEC says: a tiny (mistyped)
# WatchdogSec must not turn the watchdog task into a busy loop on the trading event loop.
MIN_PING_INTERVAL_S = 0.01

_warned: set[str] = set()


def _address(raw: str) -> str | bytes | None:
    """The socket address for ``$NOTIFY_SOCKET``, or None when unsupported."""
    if raw.startswith("/"):
        return raw
    if raw.startswith("@") and len(raw) > 1:
        # Abstract namespace: the kernel name starts with NUL; systemd spells it with '@'.
        return b"\0" + raw[1:].encode("utf-8", "surrogateescape")
    return None


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg)


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=trading"``) to the service manager.

    True when the datagram was handed to the kernel; False when not under systemd or when the
    send failed (never raises)."""
    environ = os.environ if env is None else env
    raw = environ.get(NOTIFY_SOCKET, "")
    if not raw:
        return False
    addr = _address(raw)
    if addr is None:
        _warn_once(f"addr:{raw}", f"NOTIFY_SOCKET={raw!r} is not a path or @name; not notifying")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL, addr)
    except OSError as exc:  # gone (ENOENT/ECONNREFUSED), backlogged (EAGAIN), denied: trade on
        _warn_once(
            f"send:{raw}:{exc.errno}",
            f"sd_notify to {raw} failed ({exc.strerror or exc}); the engine carries on",
        )
        return False
    return True


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()).strip()


def ready(status_text: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """``READY=1`` (start-up complete; systemd's watchdog starts counting now), with a STATUS."""
    msg = "READY=1"
    if status_text:
        msg += f"\nSTATUS={_one_line(status_text)}"
    return notify(msg, env)


def stopping(env: Mapping[str, str] | None = None) -> bool:
    """``STOPPING=1``: a clean stop has begun (systemd then stops expecting watchdog pings)."""
    return notify("STOPPING=1", env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    """``STATUS=<text>``, shown by ``systemctl status``; newlines are flattened to spaces."""
    return notify(f"STATUS={_one_line(text)}", env)


def watchdog(env: Mapping[str, str] | None = None) -> bool:
    """One ``WATCHDOG=1`` keep-alive ping."""
    return notify("WATCHDOG=1", env)


def main_pid(pid: int, env: Mapping[str, str] | None = None) -> bool:
    """``MAINPID=<pid>``: which process systemd should treat as the service's main process."""
    return notify(f"MAINPID={int(pid)}", env)


def extend_timeout(seconds: float, env: Mapping[str, str] | None = None) -> bool:
    """``EXTEND_TIMEOUT_USEC=``: ask for more time during a slow start or a long clean stop."""
    return notify(f"EXTEND_TIMEOUT_USEC={max(1, int(seconds * 1_000_000))}", env)


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``, as sd_watchdog_enabled(3) recommends),
    or None when no watchdog is expected from *this* process.

    None when ``WATCHDOG_USEC`` is unset, not a positive decimal integer, or when ``WATCHDOG_PID``
    is set to another process (a child inheriting the variables must not ping for its parent)."""
    environ = os.environ if env is None else env
    usec_raw = environ.get(WATCHDOG_USEC, "").strip()
    if not (usec_raw.isascii() and usec_raw.isdigit()) or int(usec_raw) <= 0:
        return None
    pid_raw = environ.get(WATCHDOG_PID)
    if pid_raw is not None:
        pid_raw = pid_raw.strip()
        if not (pid_raw.isascii() and pid_raw.isdigit()) or int(pid_raw) != os.getpid():
            return None
    return int(usec_raw) / 2_000_000


class ServiceNotifier:
    """The engine's link to systemd, bound to one environment snapshot (``os.environ`` when None).

    The runner calls ``ready()`` once start-up is complete, runs ``run_watchdog(alive)`` as a task
    on its own event loop, and calls ``stopping()`` when a clean stop begins."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env: Mapping[str, str] = dict(os.environ if env is None else env)

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens (``NOTIFY_SOCKET`` set)."""
        return bool(self._env.get(NOTIFY_SOCKET))

    @property
    def watchdog_interval_s(self) -> float | None:
        return watchdog_interval_s(self._env)

    def ready(self, status_text: str | None = None) -> bool:
        return ready(status_text, self._env)

    def status(self, text: str) -> bool:
        return status(text, self._env)

    def stopping(self) -> bool:
        return stopping(self._env)

    def watchdog(self) -> bool:
        return watchdog(self._env)

    async def run_watchdog(self, alive: Callable[[], bool]) -> None:
        """Ping ``WATCHDOG=1`` every interval while ``alive()`` is true; runs until cancelled.

        Returns at once when no watchdog is configured. While ``alive()`` is false (or raises) no
        ping is sent, so systemd's timeout expires and it restarts the engine; if the engine
        recovers before that, pings resume. A wedged event loop cannot run this task at all,
        which stops the pings just the same."""
        interval = self.watchdog_interval_s
        if interval is None:
            return
        interval = max(interval, MIN_PING_INTERVAL_S)
        was_alive = True
        while True:
            try:
                healthy = bool(alive())
            except Exception:  # a broken health probe is an unhealthy engine, not a dead task
                log.exception("watchdog health check raised; withholding the ping")
                healthy = False
            if healthy:
                self.watchdog()
            elif was_alive:
                log.error("engine unhealthy: withholding systemd watchdog pings (restart follows)")
            was_alive = healthy
            await asyncio.sleep(interval)
