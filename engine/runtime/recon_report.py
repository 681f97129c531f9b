"""The reconciliation report: its mismatch classes, and how a run is recorded and shown.

Role: one typed ``ReconReport`` per run, persisted (``reconciliation_runs`` row) and audited by
``record_run``, rendered the same way whether the engine or the CLI ran it (``render``), and sent
over the control socket as sorted JSON (``to_json`` / ``from_wire``).
"""

from __future__ import annotations

import json

import msgspec

from engine.core.events import ReconReport
from engine.trading.engine import Engine

# every report counts each class, zero included (the panel and the CLI show all of them)
CLASSES = (
    "missing_in_db",
    "missing_in_broker",
    "status_mismatch",
    "missing_fill",
    "orphan",
    "position_mismatch",
)


def record_run(e: Engine, report: ReconReport) -> None:
    """Persist and audit one reconciliation run (rows leave with the next flush)."""
    e.recorder.add(
        "reconciliation_runs",
        (
            report.ts_us,
            report.source,
            report.venue,
            report.duration_ms,
            report.ok,
            msgspec.json.encode(report.mismatches).decode(),
            msgspec.json.encode(report.alerts).decode(),
        ),
    )
    e.recorder.audit(
        "reconciler",
        "reconciled",
        {
            "source": report.source,
            "ok": report.ok,
            "mismatches": report.mismatches,
            "alerts": report.alerts,
        },
    )


def render(report: ReconReport) -> str:
    """The human form of a report (same text whether the engine ran it or the CLI did)."""
    m = report.mismatches
    lines = [
        f"reconciliation {'OK' if report.ok else 'ALERT'} ({report.source}, "
        f"{report.venue}, {report.duration_ms:.1f} ms)",
        "  " + "  ".join(f"{k}={m[k]}" for k in CLASSES),
    ]
    lines += [f"  alert: {a}" for a in report.alerts]
    lines += [f"  standing: {a}" for a in report.standing]
    lines += [
        f"  {d.type} {d.symbol} {d.client_order_id} -> {d.action}"
        + (f" ({d.detail})" if d.detail else "")
        for d in report.details[:50]
    ]
    return "\n".join(lines)


def to_json(report: ReconReport) -> str:
    """The report as the socket and ``cockpit reconcile --json`` print it (sorted keys)."""
    return json.dumps(msgspec.to_builtins(report), sort_keys=True)


def from_wire(raw: object) -> ReconReport:
    """A report received as JSON (the control socket) back to its type."""
    return msgspec.convert(raw, ReconReport)
