"""Structured logging off the calling thread: JSON lines written by one ``log-writer`` thread,
nothing lost at stop, synchronous afterwards, tracebacks kept."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.obs import logs


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logs.stop_logging()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def _lines(d: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (d / "logs" / "engine.log").read_text().splitlines()]


def test_log_when_engine_thread_logs_then_written_by_log_writer_in_order(
    tmp_path: Path, restore_root: None
) -> None:
    logs.setup_logging(tmp_path, "INFO", stdout=False)
    (file_handler,) = logs._state["handlers"]
    writers: set[str] = set()
    emit = file_handler.emit

    def spy(record: logging.LogRecord) -> None:
        writers.add(threading.current_thread().name)
        emit(record)

    file_handler.emit = spy  # type: ignore[method-assign]
    log = logging.getLogger("engine.test")
    for i in range(500):
        log.info("order %d of %s", i, "batch", extra={"fields": {"i": i}})
    logs.stop_logging()  # drains the queue: nothing logged before it is lost
    lines = _lines(tmp_path)
    assert [x["i"] for x in lines] == list(range(500))
    assert lines[7]["msg"] == "order 7 of batch"
    assert lines[7]["logger"] == "engine.test"
    assert writers == {"log-writer"}  # the caller never formatted or wrote
    assert not any(t.name == "log-writer" for t in threading.enumerate())

    log.warning("after stop")  # synchronous from now on, still to the same file
    assert _lines(tmp_path)[-1]["msg"] == "after stop"


def test_log_when_exception_then_traceback_crosses_the_thread(
    tmp_path: Path, restore_root: None
) -> None:
    logs.setup_logging(tmp_path, "INFO", stdout=False)
    try:
        raise ValueError("venue said [red]no[/red]")
    except ValueError:
        logging.getLogger("engine.test").exception("submit failed")
    logs.setup_logging(tmp_path, "INFO", stdout=False)  # a second setup stops the first cleanly
    logs.stop_logging()
    (line,) = [x for x in _lines(tmp_path) if x["msg"] == "submit failed"]
    assert "ValueError: venue said [red]no[/red]" in str(line["exc"])
    assert "Traceback" in str(line["exc"])
