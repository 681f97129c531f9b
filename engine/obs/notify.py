"""Optional Telegram notifier: engine events as plain-text Bot API messages, never in the way.

Role: ``TelegramNotifier.notify(kind, text)`` is called on the engine's event-loop thread and only
appends to a bounded in-memory queue; ``run()`` (a task of its own) drains it through
python-telegram-bot (``telegram.Bot.send_message``). ``send_test_message`` is the one-shot send
behind ``cockpit notify test``.

Invariants:
- ``notify`` never blocks, never awaits, never raises and does O(1) work: a dead, slow or
  rate-limiting Telegram costs the engine nothing. Call it from the loop's thread only.
- The queue holds at most ``queue_size`` messages. A burst beyond it evicts the OLDEST queued
  message (counted in ``dropped``): after an outage the operator gets the newest state (e.g. a
  breaker's "resolved") rather than stale onsets, and the next message sent starts with
  "[N earlier notifications dropped]". ``notify`` returns False only when the message itself will
  never be sent (notifier disabled or closed, also counted in ``dropped``).
- Sends are at least ``min_interval_s`` apart (Telegram allows about one message a second per
  chat). HTTP 429 waits the server's ``retry_after`` (capped at ``max_retry_after_s``); network
  errors, timeouts and 5xx back off exponentially with jitter. Each try counts toward
  ``max_attempts``; then the message is ``failed`` and the next one goes. A 400 (e.g. chat not
  found) fails the message at once. 401/404 (token rejected) or 403 (bot blocked / not in the
  chat) disable the notifier for good with ONE error log line; queued messages are dropped.
- Every PTB request has short timeouts (``timeout_s``, 5 s) so a hanging endpoint releases a
  message within ``max_attempts`` tries.
- ``aclose(flush_timeout_s)`` refuses new messages, lets the worker flush the queue for at most
  that long, then cancels it; whatever is still queued or in flight is counted in ``dropped``.
- Secret hygiene: the token (whole, and its secret half after the ``:``) and the given secret
  values are registered with one process-wide redacting ``logging.Filter`` before any PTB object
  exists. It sits on this module's logger and on every ``httpx``/``httpcore``/``telegram`` logger
  (PTB logs its base URL, which holds the token, at DEBUG; httpx logs request URLs at INFO),
  whose levels are also raised to WARNING. Outgoing text, log lines and returned reasons all pass
  through the same redaction (``***``). Values shorter than 6 characters are not redacted (they
  would mangle every message and are no credentials).
- Importing this module does not import PTB (about 0.3 s; loaded on first send) and makes sure
  httpx, once PTB loads it, cannot pull in rich/click/pygments for its command-line tool (an
  ``httpx._main`` = None entry in ``sys.modules``): the engine never loads UI packages.
- Outgoing text is plain (no ``parse_mode``); control characters other than newline and tab,
  bidi overrides, line separators and lone surrogates are escaped (``\\x1b``, ``\\u202e``); the
  result is cut to Telegram's 4096 UTF-16 code units.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import random
import re
import sys
import time
import traceback
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import telegram
    from telegram.error import RetryAfter
    from telegram.request import HTTPXRequest

# httpx (under PTB) imports its own command-line tool, and with it rich, click and pygments,
# whenever they are installed (textual brings rich): the engine must never load UI packages. A None
# entry makes that optional import fail the way httpx expects (it then stubs its CLI ``main``).
# It must precede httpx's first import; PTB itself is imported lazily (about 0.3 s), on first use.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
MAX_TEXT = 4096  # Bot API limit for sendMessage text, in UTF-16 code units
REDACTED = "***"
MIN_SECRET_LEN = 6
_LIBRARY_LOGGERS = ("httpx", "httpcore", "telegram")
# Raw text kept per queued message: bounds memory under a hostile flood; the rendered message is
# cut to MAX_TEXT anyway (escaping only makes text longer).
_RAW_CAP = 4 * MAX_TEXT
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
_TRUNCATED = "… [truncated]"


class _Redactor(logging.Filter):
    """Replaces registered secrets in text and in log records (message and traceback)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        known = set(self._secrets) | {v for v in values if len(v) >= MIN_SECRET_LEN}
        self._secrets = tuple(sorted(known, key=len, reverse=True))  # longest first

    def redact(self, text: str, extra: tuple[str, ...] = ()) -> str:
        for secret in (*extra, *self._secrets):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's problem, not a leak
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info))
            clean = self.redact(text)
            if clean != text:  # formatters print exc_text when exc_info is gone
                record.exc_info, record.exc_text = None, clean.rstrip("\n")
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


_REDACTOR = _Redactor()


def token_secrets(token: str) -> list[str]:
    """The token and its secret half (``<bot id>:<secret>``; the bot id alone is public)."""
    return [token, token.split(":", 1)[1]] if ":" in token else [token]


def protect_logs(secrets: Iterable[str]) -> None:
    """Register ``secrets`` for redaction and guard the HTTP/PTB loggers (idempotent)."""
    _REDACTOR.add(secrets)
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET too: INFO/DEBUG would print request URLs
            logger.setLevel(logging.WARNING)
    names = [
        n for n in list(logging.Logger.manager.loggerDict) if n.split(".")[0] in _LIBRARY_LOGGERS
    ]
    # A filter applies only to records logged on its own logger (not on children), so each
    # library logger gets one; a child whose level someone lowers still cannot leak.
    for name in [*names, *_LIBRARY_LOGGERS, __name__]:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every registered secret and every value in ``secrets`` replaced by ***."""
    extra = tuple(sorted((s for s in secrets if len(s) >= MIN_SECRET_LEN), key=len, reverse=True))
    return _REDACTOR.redact(text, extra)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _truncate(text: str) -> str:
    if len(text) <= MAX_TEXT // 2 or _utf16_len(text) <= MAX_TEXT:
        return text
    keep = MAX_TEXT - len(_TRUNCATED)
    cut = text[:keep]
    while _utf16_len(cut) > keep:  # astral characters count twice
        cut = cut[: -max(1, (_utf16_len(cut) - keep) // 2)]
    return cut + _TRUNCATED


def _strip_partial_secret(text: str, secrets: Iterable[str]) -> str:
    """A raw text cut at ``_RAW_CAP`` may end inside a secret: drop that prefix too."""
    for secret in secrets:
        for k in range(len(secret) - 1, 0, -1):
            if text.endswith(secret[:k]):
                return text[:-k] + REDACTED
    return text


def clean_text(text: str, secrets: Iterable[str] = ()) -> str:
    """What is sent: secrets redacted, control characters escaped, cut to 4096 UTF-16 units."""
    text = redact(text, secrets)
    text = redact(_CONTROL.sub(_escape, text), secrets)
    return _truncate(text) if text.strip() else "(empty)"  # Telegram refuses an empty text


def _host_port(base_url: str) -> str:
    parts = urlsplit(base_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    return f"{parts.hostname or '?'}:{port}"


def _retry_after_s(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int form becomes a timedelta
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def describe_error(exc: BaseException, base_url: str, timeout_s: float = 5.0) -> str:
    """One line, secret-free, saying what went wrong and what to check."""
    from telegram.error import (
        BadRequest,
        Forbidden,
        InvalidToken,
        NetworkError,
        RetryAfter,
        TelegramError,
        TimedOut,
    )

    where = _host_port(base_url)
    msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, RetryAfter):
        reason = f"429 rate limited: retry after {_retry_after_s(exc):g} s"
    elif isinstance(exc, InvalidToken):
        code = "401 Unauthorized" if "Unauthorized" in msg else f"token rejected ({msg})"
        reason = f"{code}: check TELEGRAM_BOT_TOKEN"
    elif isinstance(exc, Forbidden):
        reason = f"403 Forbidden ({msg}): the bot cannot write to TELEGRAM_CHAT_ID"
    elif isinstance(exc, BadRequest):
        reason = f"400 {msg}: check TELEGRAM_CHAT_ID"
    elif isinstance(exc, TimedOut):
        reason = f"no answer from {where} within {timeout_s:g} s"
    elif isinstance(exc, NetworkError):
        unreachable = msg.startswith("httpx.") or "HTTP implementation" in msg
        reason = (
            f"cannot reach {where}: {msg}" if unreachable else f"server error at {where}: {msg}"
        )
    elif isinstance(exc, TelegramError):
        reason = f"telegram error: {msg}"
    else:
        reason = f"unexpected error: {type(exc).__name__}: {msg}"
    return redact(" ".join(reason.split()))


def _make_bot(token: str, base_url: str, timeout_s: float) -> tuple[telegram.Bot, HTTPXRequest]:
    """A PTB bot that is never ``initialize()``d: that calls getMe and, on a bad token, raises an
    error quoting the token. One request object serves both of PTB's request slots."""
    import telegram
    from telegram.request import HTTPXRequest

    protect_logs(token_secrets(token))  # again now that PTB's and httpx's loggers exist
    # PTB's own RetryAfter.__init__ reads its deprecated int property; we accept either form
    # (_retry_after_s), so the notice is noise in the engine's logs. Re-adding is idempotent.
    warnings.filterwarnings("ignore", message=r".*attribute `retry_after` will be of type")
    request = HTTPXRequest(
        connection_pool_size=2,
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        write_timeout=timeout_s,
        pool_timeout=timeout_s,
    )
    return telegram.Bot(
        token, base_url=base_url, request=request, get_updates_request=request
    ), request


async def send_test_message(
    token: str, chat_id: str, base_url: str | None, text: str, *, timeout_s: float = 5.0
) -> tuple[bool, str]:
    """Send ``text`` once (no retries); returns (ok, one-line secret-free reason)."""
    protect_logs(token_secrets(token))
    url = base_url or DEFAULT_BASE_URL
    bot, request = _make_bot(token, url, timeout_s)
    try:
        await request.initialize()
        message = await bot.send_message(chat_id=chat_id, text=clean_text(text))
    except Exception as exc:  # noqa: BLE001 - every failure becomes the reason, never a traceback
        return False, describe_error(exc, url, timeout_s)
    finally:
        with contextlib.suppress(Exception):
            await request.shutdown()
    return True, f"sent (message_id {message.message_id})"


@dataclass(frozen=True, slots=True)
class _Item:
    kind: str
    text: str
    cut: bool  # raw text was longer than _RAW_CAP


class TelegramNotifier:
    """See the module docstring. ``start()`` (or run ``run()`` as a task); stop with ``aclose()``."""

    def __init__(
        self,
        token: str,
        chat_id: str | int,
        base_url: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        queue_size: int = 100,
        min_interval_s: float = 1.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        timeout_s: float = 5.0,
        secrets: Iterable[str] = (),
    ) -> None:
        if not token or not str(chat_id):
            raise ValueError("a Telegram notifier needs TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID")
        if queue_size < 1 or max_attempts < 1:
            raise ValueError("queue_size and max_attempts must be >= 1")
        self._secrets = tuple({*token_secrets(token), *secrets})
        protect_logs(self._secrets)  # before PTB exists: its Bot logs the URL with the token
        self._token, self._chat_id = token, chat_id
        self.base_url = base_url or DEFAULT_BASE_URL
        self._clock, self._sleep = clock, sleep
        self.queue_size, self.min_interval_s = queue_size, min_interval_s
        self.max_attempts = max_attempts
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.max_retry_after_s, self.timeout_s = max_retry_after_s, timeout_s
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._rng = random.Random()  # noqa: S311 - backoff jitter, not security relevant
        self._task: asyncio.Task[None] | None = None
        self._last_try = -float("inf")
        self._unreported_drops = 0
        self._closed = False
        self._last_warning = ""
        self.sent = self.dropped = self.failed = self.retried = 0
        self.disabled = False

    # --- the engine side: synchronous, O(1) ---------------------------------------------------

    def notify(self, kind: str, text: str) -> bool:
        """Queue a message; False when it will never be sent (disabled / closed)."""
        try:
            if self._closed or self.disabled:
                self.dropped += 1
                return False
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped += 1
                self._unreported_drops += 1
            raw = text if isinstance(text, str) else str(text)
            self._queue.append(_Item(str(kind), raw[:_RAW_CAP], len(raw) > _RAW_CAP))
            self._wake.set()
            return True
        except Exception:  # noqa: BLE001 - the engine must never see a notifier error
            return False

    def stats(self) -> dict[str, int | bool]:
        return {
            "sent": self.sent,
            "dropped": self.dropped,
            "failed": self.failed,
            "retried": self.retried,
            "queued": len(self._queue),
            "disabled": self.disabled,
        }

    # --- the worker ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """``run()`` as a task of the running loop (known to ``aclose`` at once)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="telegram-notify")
        return self._task

    async def run(self) -> None:
        """Drain the queue until closed (and empty) or disabled."""
        self._task = asyncio.current_task()
        bot, request = _make_bot(self._token, self.base_url, self.timeout_s)
        try:
            await request.initialize()
            while not self.disabled:
                if not self._queue:
                    if self._closed:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = self._queue.popleft()
                try:
                    await self._deliver(bot, item)
                except asyncio.CancelledError:
                    self.dropped += 1  # in flight when aclose gave up waiting
                    raise
        finally:
            with contextlib.suppress(Exception):
                await request.shutdown()

    async def aclose(self, flush_timeout_s: float = 2.0) -> None:
        """Refuse new messages, flush for at most ``flush_timeout_s``, then stop the worker."""
        self._closed = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            _done, pending = await asyncio.wait({task}, timeout=flush_timeout_s)
            if pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._drop_queued()

    def _drop_queued(self) -> None:
        self.dropped += len(self._queue)
        self._queue.clear()

    def _render(self, item: _Item) -> str:
        text = _strip_partial_secret(item.text, self._secrets) if item.cut else item.text
        if self._unreported_drops:
            text = f"[{self._unreported_drops} earlier notifications dropped]\n{text}"
        return clean_text(text, self._secrets)

    async def _pace(self) -> None:
        wait = self._last_try + self.min_interval_s - self._clock()
        if wait > 0:
            await self._sleep(wait)
        self._last_try = self._clock()

    async def _deliver(self, bot: telegram.Bot, item: _Item) -> None:
        text = self._render(item)
        for attempt in range(1, self.max_attempts + 1):
            await self._pace()
            try:
                await bot.send_message(chat_id=self._chat_id, text=text)
            except Exception as exc:  # noqa: BLE001 - classified below; nothing escapes the worker
                from telegram.error import Forbidden, InvalidToken

                if isinstance(exc, InvalidToken | Forbidden):  # refused for good
                    self.failed += 1
                    self._disable(exc)
                    return
                wait = self._retry_wait(exc, attempt)
                if wait is None or attempt == self.max_attempts:
                    self.failed += 1
                    reason = describe_error(exc, self.base_url, self.timeout_s)
                    self._warn(f"telegram: {item.kind} notification not sent: {reason}")
                    return
                self.retried += 1
                await self._sleep(wait)
            else:
                self.sent += 1
                self._unreported_drops = 0
                self._last_warning = ""
                return

    def _retry_wait(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before the next try, or None when retrying cannot help."""
        from telegram.error import BadRequest, ChatMigrated, NetworkError, RetryAfter

        if isinstance(exc, RetryAfter):
            return min(_retry_after_s(exc), self.max_retry_after_s)
        if isinstance(exc, ChatMigrated):  # a group became a supergroup: Telegram says where
            self._chat_id = exc.new_chat_id
            self._warn(f"telegram: chat migrated to {exc.new_chat_id}; update TELEGRAM_CHAT_ID")
            return 0.0
        if isinstance(exc, BadRequest) or not isinstance(exc, NetworkError):
            return None
        step = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        return step * (0.5 + 0.5 * self._rng.random())  # jitter: many clients, no lockstep

    def _disable(self, exc: Exception) -> None:
        if self.disabled:
            return
        self.disabled = True
        self._drop_queued()
        log.error(
            "telegram notifications disabled: %s",
            describe_error(exc, self.base_url, self.timeout_s),
        )

    def _warn(self, line: str) -> None:
        """One warning per distinct reason in a row: a wrong chat id must not log every second."""
        if line != self._last_warning:
            self._last_warning = line
            log.warning("%s", redact(line, self._secrets))
