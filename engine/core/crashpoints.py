"""Named crash points for crash-safety tests: SIGKILL this process at an exact instant.

``COCKPIT_CRASH_AT="after_intent_durable:3"`` kills the process (SIGKILL, no cleanup, exactly like
``kill -9``) the 3rd time execution passes that point. Points:

- ``after_intent_durable``: an outside-venue intent is fsynced in the journal, not yet sent;
- ``after_venue_accept``: the venue accepted the order and answered; the answer is not yet applied;
- ``before_commit``: a DB batch is written but not committed;
- ``after_commit``: a DB batch is committed; the external audit head not yet advanced.

Invariant: with the variable unset, ``ENABLED`` is False and callers skip the call entirely, so
production paths pay one global bool check. The live profile refuses to start with it set.
"""

from __future__ import annotations

import os
import signal

from engine.core.envvars import COCKPIT_CRASH_AT

ENV = COCKPIT_CRASH_AT
POINTS = ("after_intent_durable", "after_venue_accept", "before_commit", "after_commit")

_spec = os.environ.get(ENV, "")
_name, _, _count = _spec.partition(":")
ENABLED = bool(_spec)
_left = int(_count or 1) if ENABLED else 0
if ENABLED and _name not in POINTS:
    raise SystemExit(f"{ENV}={_spec!r}: unknown crash point (known: {', '.join(POINTS)})")


def hit(name: str) -> None:
    """Count a pass through ``name``; SIGKILL ourselves on the configured pass."""
    global _left
    if name != _name:
        return
    _left -= 1
    if _left <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
