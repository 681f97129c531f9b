"""The configuration's one error type (re-exported by :mod:`engine.config.loader`).

Kept in its own module so the loader's helpers (:mod:`engine.config.profiles`,
:mod:`engine.config.edit`) raise the same class without importing the loader.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Invalid configuration. ``str(err)`` is one line: ``<origin>: <dotted.key>: <problem>``."""

    def __init__(self, problem: str, *, origin: str | None = None, key: str | None = None) -> None:
        self.origin = origin
        self.key = key
        self.problem = problem
        # One line even when the problem quotes a multi-line parser message.
        text = ": ".join(p for p in (origin, key, problem) if p)
        super().__init__(" ".join(text.split()))
