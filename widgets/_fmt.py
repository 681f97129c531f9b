"""Formatting helpers shared by the cockpit widgets.

Invariants:
- Every string that may come from outside (venue errors, symbols, client ids, audit kinds) goes
  through :func:`lit`, which builds a ``rich.text.Text`` without parsing markup or emoji codes,
  so ``[bold]x[/]`` or ``[link=...]`` shows exactly as typed, and escapes control characters
  (``\\x1b`` shows as the four characters ``\\x1b``): a venue message must not move the cursor,
  retitle the terminal or break a table row. Invisible format and separator characters (Unicode
  categories Cf, Zl, Zp, Cs: bidi overrides and isolates such as U+202E, LRM/RLM, U+2028/2029,
  zero-width characters) are escaped the same way (``\\u202e``): they would reorder or split
  what the operator reads. Everything else (accents, CJK, emoji) is shown as typed.
- Styles used here are text attributes only (bold, reverse); colours come from theme variables in
  the widgets' ``DEFAULT_CSS``, toggled with CSS classes.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from rich.text import Text

FLAG_STYLE = "bold reverse"

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class _Escapes(dict[int, str]):
    """``str.translate`` table: C0 controls (tab and newline included), DEL and C1 as ``\\xNN``;
    other code points are classified on first sight (``unicodedata.category``) and cached, so a
    string costs one dict hit per character. The cache is bounded: a hostile stream cycling
    through code points cannot grow it without limit (past the bound, each is classified again).
    """

    LIMIT = 4096

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        if unicodedata.category(ch) in _HIDDEN:
            ch = f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"
        if len(self) < self.LIMIT:
            self[cp] = ch
        return ch


_ESCAPES = _Escapes({c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))})


def plain(value: object) -> str:
    """``value`` as a string safe to show: controls and invisible format characters escaped."""
    s = str(value)
    # isprintable() is False for every category escaped here (and a few harmless ones, such as
    # no-break space, which translate leaves alone): the common case costs one C-level scan
    return s if s.isprintable() else s.translate(_ESCAPES)


def lit(value: object, style: str = "") -> Text:
    """A literal Text: never markup, never emoji codes, never a control or bidi character."""
    return Text(plain(value), style=style, no_wrap=True, end="")


def age(now_us: int, then_us: int) -> str:
    """Compact age like '12s', '3m05s', '2h04m', '4d'; '-' when unknown."""
    if then_us <= 0:
        return "-"
    s = max(0, (now_us - then_us) // 1_000_000)
    return duration(s)


def duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock(ts_us: int) -> str:
    """HH:MM:SS in UTC, '-' when unknown."""
    if ts_us <= 0:
        return "-"
    return datetime.fromtimestamp(ts_us / 1_000_000, UTC).strftime("%H:%M:%S")


def utc(ts_us: int) -> str:
    """Date and time in UTC (``2026-11-22 04:03:45Z``), '-' when unknown."""
    if ts_us <= 0:
        return "-"
    return datetime.fromtimestamp(ts_us / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ms(value: float) -> str:
    """Milliseconds; negative means 'never seen'."""
    if value < 0:
        return "-"
    return f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def money(value: float) -> str:
    return f"{value:,.2f}"


def signed(value: float) -> str:
    return f"{value:+,.2f}"


def qty(value: float) -> str:
    return f"{value:.8g}"


def same(a: Text, b: Text) -> bool:
    """Text equality that also sees the base style (``Text.__eq__`` ignores it)."""
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans


def second_bucket(ts_us: int) -> int:
    """Ages are shown to the second: widgets re-render ages only when this changes."""
    return ts_us // 1_000_000
