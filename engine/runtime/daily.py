"""The day's files on request: one planning step and one writing step, shared by the running
engine (``door``: control socket and TUI) and the stopped-engine CLI (``cockpit.report_cli``), so
both answer the same request with the same file.

``plan`` checks the request before anything is read (bad date or target: ``ValueError``, one line
naming the value); ``produce`` writes on a connection it is given (a cursor of the engine's, or a
read-only connection under the data-dir lock).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config.loader import Config
from engine.runtime.regulatory import default_regulatory_path, write_regulatory
from engine.runtime.reports import (
    default_report_path,
    parse_day,
    report_meta,
    report_target,
    utc_today,
    write_report,
)

KINDS = ("report", "regulatory")


@dataclass(frozen=True, slots=True)
class DayRequest:
    kind: str  # report | regulatory
    day: dt.date
    out: Path


def plan(
    kind: str, data_dir: Path, date_text: str | None, out: str | None, now_us: int
) -> DayRequest:
    if kind not in KINDS:
        raise ValueError(f"unknown daily file {kind!r} (known: {', '.join(KINDS)})")
    day = parse_day(date_text or "today", utc_today(now_us))
    default = (default_report_path if kind == "report" else default_regulatory_path)(data_dir, day)
    return DayRequest(kind, day, report_target(data_dir, out, default))


def produce(con: Any, req: DayRequest, cfg: Config, venue: str, now_us: int) -> dict[str, Any]:
    """Write the requested file; the result names it and its row counts (never the metadata)."""
    if req.kind == "regulatory":
        return write_regulatory(con, req.day, req.out, venue=venue, dea=cfg.ops.dea)
    res = write_report(con, req.day, req.out, report_meta(cfg, venue, now_us))
    return {k: v for k, v in res.items() if k != "meta"}
