"""``<data_dir>/engine.halt``: a halt survives a restart even when the DB could not record it.

Why: the commonest halt is "DB write failed" (a full disk). The kill switch is armed in memory and
queued for ``engine_state``, but that batch never commits, so without this file the next start
(after space was freed) would come up unarmed.

Invariants:
- The file is created at start with a fixed size (``SIZE`` bytes, allocated by writing them) and
  later only rewritten in place (``pwrite`` + ``fsync``): recording a halt needs no new block, so
  it works on a full file system.
- Content: a JSON object ``{"halted": reason}`` padded with spaces, or only spaces when clear.
  Anything unreadable counts as halted (fail closed).
- Cleared only after a start armed the kill switch from it and that state reached the DB.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

NAME = "engine.halt"
SIZE = 1024


class HaltFile:
    """The preallocated `engine.halt` file: written in place (no new blocks) when the engine halts,
    so a halt is remembered even on a full disk, and the next start comes up with the kill switch
    armed."""

    __slots__ = ("path",)

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / NAME

    def prepare(self) -> None:
        """Make sure the file exists at full size (at start, while there is space)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < SIZE:
                current = os.pread(fd, SIZE, 0)
                os.pwrite(fd, current.ljust(SIZE, b" "), 0)
                os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> str:
        """The recorded halt reason, or "" when clear (or no file)."""
        try:
            raw = self.path.read_bytes().strip(b" \0\n")
        except FileNotFoundError:
            return ""
        if not raw:
            return ""
        try:
            value = json.loads(raw)
            reason = value.get("halted") if isinstance(value, dict) else None
        except (ValueError, UnicodeDecodeError):
            reason = None
        return str(reason) if reason else f"unreadable halt record in {self.path}"

    def _put(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data.ljust(SIZE, b" ")[:SIZE], 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def write(self, reason: str) -> None:
        text = reason
        data = json.dumps({"halted": text}).encode()
        while len(data) > SIZE and text:  # a long reason is cut, never the JSON
            text = text[: len(text) // 2]
            data = json.dumps({"halted": text + "..."}).encode()
        self._put(data)

    def clear(self) -> None:
        self._put(b"")
