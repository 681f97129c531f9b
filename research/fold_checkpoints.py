"""Finished folds of a campaign that is not saved yet: kept so a killed or unsaved run resumes.

Role: ``FoldCheckpoints(data_dir, spec_hash)`` lives in
``<data-dir>/research/campaign-work/<spec_hash>/``. ``put`` writes one fold's result the moment it
is done; ``load`` returns the folds an earlier run of the same spec finished (a campaign killed
with kill -9, or one whose save failed on a full disk); ``clear`` removes them once the campaign
is saved.

Invariants:
- Keyed by the spec hash, which covers the code version, the dataset's sha256 and every setting:
  a fold's result is a deterministic function of those, so a reused fold equals a recomputed one.
- ``put`` is atomic (temp, fsync, rename; owner-only): a kill mid-write leaves the old state, never
  a half file. A failed ``put`` (a full disk) costs only the resume, never the campaign.
- A checkpoint that does not parse or is not this spec's fold is moved aside as
  ``fold-K.json.damaged-<utc>`` (named, never dropped) and the fold is computed again.
- ``clear`` deletes only the fold files it would load (and temp files of a cut ``put``); anything
  kept aside stays, and so does the folder holding it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from engine.core.fsutil import make_private_dir, write_private_atomic


class FoldCheckpoints:
    """One spec's finished folds on disk (see the module docstring)."""

    def __init__(self, data_dir: Path, spec_hash: str) -> None:
        self.spec_hash = spec_hash
        self.path = data_dir / "research" / "campaign-work" / spec_hash
        self.failed = ""  # why the last put could not be written ("" when it was)
        self.damaged: list[Path] = []  # checkpoints moved aside by load

    def _file(self, fold: int) -> Path:
        return self.path / f"fold-{fold}.json"

    def load(self, folds: int) -> dict[int, dict[str, Any]]:
        """The finished folds among ``0..folds-1``, by fold."""
        out: dict[int, dict[str, Any]] = {}
        for fold in range(folds):
            path = self._file(fold)
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            result = self._parse(raw, fold)
            if result is None:
                aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ')}")
                os.replace(path, aside)
                self.damaged.append(aside)
                continue
            out[fold] = result
        return out

    def _parse(self, raw: bytes, fold: int) -> dict[str, Any] | None:
        try:
            doc = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(doc, dict) or doc.get("spec_hash") != self.spec_hash:
            return None
        result = doc.get("result")
        if not isinstance(result, dict) or result.get("fold") != fold:
            return None
        if not isinstance(result.get("runs"), list):
            return None
        return result

    def put(self, result: dict[str, Any]) -> bool:
        """Keep one finished fold; False (and ``failed`` says why) when it could not be."""
        doc = {"spec_hash": self.spec_hash, "result": result}
        try:
            make_private_dir(self.path)
            write_private_atomic(self._file(int(result["fold"])), json.dumps(doc).encode())
        except OSError as exc:
            self.failed = f"{self.path}: {exc.strerror or exc}"
            return False
        return True

    def clear(self, folds: int) -> None:
        """The campaign is saved: its fold files go (the folder too, when nothing else is in it)."""
        for fold in range(folds):
            self._file(fold).unlink(missing_ok=True)
        for tmp in self.path.glob(".fold-*.json.*.tmp"):  # a put cut short by kill -9
            tmp.unlink(missing_ok=True)
        for folder in (self.path, self.path.parent):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (a damaged checkpoint kept aside, another spec's folds)
