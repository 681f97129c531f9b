"""Venue failures the operator fixes outside the process, kept free of ccxt so the CLI can catch
them without importing it (ccxt costs ~0.5 s of start-up and only ccxt profiles load it)."""

from __future__ import annotations


class VenueUnreachable(Exception):
    """The exchange did not answer at start. ``str()`` is one line naming the host and the remedy;
    the CLI prints it and exits 2 instead of a chain of network tracebacks."""
