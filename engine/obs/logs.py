"""Structured logging: one JSON object per line, to stdout and ``<data-dir>/logs/engine.log``.

Invariants:
- Log records carry no secrets — the engine never logs config secrets, and ccxt's debug logging
  (which prints API-key headers) is never enabled here.
- The thread that logs never formats JSON nor writes: records go through a queue to one
  ``log-writer`` thread. A ``write()`` on the engine thread drops the GIL, and getting it back
  from a busy UI thread costs up to a switch interval — every log line used to delay the next tick.
- A log file that cannot be written (full disk, removed directory) never floods stderr with
  tracebacks: ``_QuietFileHandler`` says so in one line on stderr, drops records while it fails,
  and says so again (one line) when writing works again. Logs are not the record; trading is
  stopped by the DB writer's failure, not by the logger's.
- Nothing queued is lost on a normal exit: ``stop_logging`` (also run at exit) drains the queue,
  then attaches the handlers directly so later records are written synchronously. A SIGKILL can
  lose the last few milliseconds of log lines; logs are not the record (the DB and journal are).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import logging.handlers
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine.core.fsutil import make_private_dir


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted by _Enqueue before the record crossed threads
            out["exc"] = record.exc_text
        return json.dumps(out, default=str)


class _Enqueue(logging.handlers.QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # only what cannot wait: the message (its args may change later) and a traceback (its
        # frames are gone later); JSON formatting happens on the log-writer thread
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


class _QuietFileHandler(logging.FileHandler):
    """A ``FileHandler`` that degrades to one stderr line instead of a traceback per record."""

    def __init__(self, filename: Path) -> None:
        super().__init__(filename, encoding="utf-8")
        self.failing: str | None = None
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
        except Exception:  # noqa: BLE001 - a formatting bug: the stdlib's report
            self.handleError(record)
            return
        try:
            stream = self.stream if self.stream is not None else self._open()
            self.stream = stream
            stream.write(msg + self.terminator)
            stream.flush()
        except OSError as exc:
            self._failed(exc)
            return
        if self.failing is not None:
            sys.stderr.write(
                f"cockpit: log file {self.baseFilename}: writing again "
                f"({self.dropped} record(s) lost)\n"
            )
            self.failing, self.dropped = None, 0

    def _failed(self, exc: OSError) -> None:
        self.dropped += 1
        if self.failing is None:
            self.failing = exc.strerror or type(exc).__name__
            sys.stderr.write(
                f"cockpit: log file {self.baseFilename}: cannot write ({self.failing})"
                "; log records are dropped until it works again\n"
            )
        # the unwritten buffer would be retried (and fail) at every flush: drop it, reopen later
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


class _Listener(logging.handlers.QueueListener):
    def start(self) -> None:
        monitor = self._monitor  # type: ignore[attr-defined]  # the stdlib loop, not in typeshed
        self._thread = t = threading.Thread(target=monitor, name="log-writer", daemon=True)
        t.start()


_state: dict[str, Any] = {"listener": None, "handlers": [], "atexit": False}


def stop_logging() -> None:
    """Write every queued record, stop the log-writer thread, and log synchronously from now on."""
    listener: _Listener | None = _state["listener"]
    if listener is None:
        return
    _state["listener"] = None
    listener.stop()
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _Enqueue):
            root.removeHandler(h)
    for h in _state["handlers"]:
        root.addHandler(h)


def setup_logging(data_dir: Path | None, level: str = "INFO", stdout: bool = True) -> None:
    stop_logging()
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(level)
    fmt = JsonFormatter()
    handlers: list[logging.Handler] = []
    if stdout:
        handlers.append(logging.StreamHandler(sys.stdout))
    if data_dir is not None:
        logs = make_private_dir(data_dir / "logs")
        handlers.append(_QuietFileHandler(logs / "engine.log"))
    for h in handlers:
        h.setFormatter(fmt)
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    listener = _Listener(q, *handlers, respect_handler_level=True)
    listener.start()
    _state.update(listener=listener, handlers=handlers)
    root.addHandler(_Enqueue(q))
    if not _state["atexit"]:
        _state["atexit"] = True
        atexit.register(stop_logging)  # registered after logging's own: runs before its shutdown
    logging.getLogger("ccxt").setLevel(logging.WARNING)  # never debug: it prints key headers
