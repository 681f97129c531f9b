"""Request authentication of the venue simulator, as Binance spot does it.

Invariants:
- REST: the HMAC-SHA256 is computed over the RAW bytes the client sent ("totalParams" = raw query
  string followed by the raw body), minus the trailing ``signature`` parameter. Parsing and
  re-encoding would accept signatures a real venue rejects (different percent-encoding).
- WS-API: the payload is ``key=value`` pairs of all params except ``signature``, sorted by key,
  joined with ``&``, values raw (what ccxt's ``sign_params`` signs).
- Timestamp window (Binance): accept iff ``timestamp < serverTime + 1000`` and
  ``serverTime - timestamp <= recvWindow``; ``recvWindow`` defaults to 5000 and may not exceed
  60000. The key is checked first, then the window, then the signature.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl

from venuesim.protocol import VenueError, bad

MAX_RECV_WINDOW_MS = 60_000


def _strip_signature(raw: str) -> tuple[str, str | None]:
    kept, sig = [], None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            sig = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), sig


def check_api_key(got: str | None, api_key: str) -> None:
    if not got:
        raise VenueError(401, -2014, "API-key format invalid.")
    if not hmac.compare_digest(got, api_key):
        raise VenueError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def check_timestamp(params: dict[str, Any], server_ms: int) -> None:
    raw_ts = params.get("timestamp")
    if raw_ts in (None, ""):
        raise bad(
            -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        )
    try:
        ts = int(str(raw_ts))
        recv = int(str(params.get("recvWindow") or 5000))
    except ValueError:
        raise bad(-1100, "Illegal characters found in parameter 'timestamp'.") from None
    if recv > MAX_RECV_WINDOW_MS or recv <= 0:
        raise bad(-1131, "recvWindow must be less than 60000")
    if not (ts < server_ms + 1000 and server_ms - ts <= recv):
        raise bad(-1021, "Timestamp for this request is outside of the recvWindow.")


def _check_signature(payload: str, sig: str | None, secret: str) -> None:
    if not sig:
        raise bad(
            -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
        )
    want = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig.lower()):
        raise bad(-1022, "Signature for this request is not valid.")


def verify_rest(
    header_key: str | None,
    raw_query: str,
    raw_body: str,
    api_key: str,
    secret: str,
    server_ms: int,
) -> dict[str, str]:
    """Authenticate a signed REST call; returns its merged (query + body) parameters."""
    check_api_key(header_key, api_key)
    query, qsig = _strip_signature(raw_query)
    body, bsig = _strip_signature(raw_body)
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    params.update(parse_qsl(raw_body, keep_blank_values=True))
    check_timestamp(params, server_ms)
    _check_signature(query + body, bsig or qsig, secret)
    params.pop("signature", None)
    return params


def verify_ws(params: dict[str, Any], api_key: str, secret: str, server_ms: int) -> None:
    """Authenticate a WS-API signed request (``params`` as sent, with ``signature``)."""
    check_api_key(params.get("apiKey"), api_key)
    check_timestamp(params, server_ms)
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    sig = params.get("signature")
    _check_signature(payload, str(sig) if sig is not None else None, secret)
