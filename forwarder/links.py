"""Download links to a stored message that outlive the Lambda role's session: HMAC-signed tokens.

An S3 presigned URL signed with the function's temporary credentials dies with that session (hours).
Instead the notice carries `<download url>?m=<message id>&e=<expiry>&s=<signature>`; the download
function checks the signature and expiry and redirects to a presigned URL valid for minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

_MESSAGE_ID = re.compile(r"[A-Za-z0-9._=-]{1,200}")
# Expiry: Unix seconds, ASCII digits only (`str.isdigit` accepts "²", which `int` refuses) and short
# enough that `int` never meets Python's 4,300-digit limit.
_EXPIRES = re.compile(r"[0-9]{1,12}")
# What `_signature` produces: 64 lowercase hex digits (`hmac.compare_digest` raises on non-ASCII text).
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class LinkError(ValueError):
    """A download link that is malformed, forged or expired; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Token:
    message_id: str
    expires: int


def _signature(key: bytes, message_id: str, expires: int) -> str:
    return hmac.new(key, f"{message_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def sign_link(base_url: str, key: bytes, message_id: str, lifetime_seconds: int, now: float | None = None) -> str:
    """A link to `message_id` valid for `lifetime_seconds`."""
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError("not an SES message id")
    expires = int((time.time() if now is None else now) + lifetime_seconds)
    query = urlencode({"m": message_id, "e": expires, "s": _signature(key, message_id, expires)})
    return f"{base_url.rstrip('/')}/?{query}"


def message_id_of(query: object) -> str | None:
    """The `m` parameter of a request when it has the form of a message id (safe to log), else None."""
    message_id = query.get("m") if isinstance(query, Mapping) else None
    return message_id if isinstance(message_id, str) and _MESSAGE_ID.fullmatch(message_id) else None


def verify_link(query: object, keys: bytes | Sequence[bytes], now: float | None = None) -> Token:
    """The token of a link's query parameters, or `LinkError` (400 malformed, 403 forged, 410 expired).

    `query` is whatever the request carried (a Function URL event's `queryStringParameters`: a dict of
    strings, None without a query string; a repeated parameter arrives comma-joined): anything that is
    not one of our links is a 400, never an exception.
    `keys`: every key a valid link may be signed with (the current one and, after a rotation, the previous).
    """
    if not isinstance(query, Mapping):
        raise LinkError("malformed download link", 400)
    message_id, expires, signature = (query.get(name) for name in ("m", "e", "s"))
    if not (
        isinstance(message_id, str)
        and isinstance(expires, str)
        and isinstance(signature, str)
        and _MESSAGE_ID.fullmatch(message_id)
        and _EXPIRES.fullmatch(expires)
        and _SIGNATURE.fullmatch(signature)
    ):
        raise LinkError("malformed download link", 400)
    candidates = (keys,) if isinstance(keys, bytes) else tuple(keys)
    if not any(hmac.compare_digest(signature, _signature(key, message_id, int(expires))) for key in candidates):
        raise LinkError("invalid download link", 403)
    if int(expires) < (time.time() if now is None else now):
        raise LinkError("this download link has expired", 410)
    return Token(message_id, int(expires))
