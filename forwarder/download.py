"""Download function (Lambda Function URL): a signed link from an oversize notice -> the stored .eml."""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING, Any

from forwarder.aws.store import S3MailStore
from forwarder.config import DownloadSettings, load_settings
from forwarder.links import LinkError, Token, message_id_of, verify_link
from forwarder.observability import logger

if TYPE_CHECKING:
    from forwarder.keyring import CachedKeyRing
from forwarder.ports import StoredMailError

REDIRECT_SECONDS = 300
# A link is read, never posted to: a form post or a probe with another method gets 405, not the redirect.
READ_METHODS = ("GET", "HEAD")


@cache
def _runtime() -> tuple[S3MailStore, CachedKeyRing]:
    import boto3

    from forwarder.clients import client_config
    from forwarder.keyring import GRACE_SECONDS
    from forwarder.wiring import signing_keys

    settings = load_settings(DownloadSettings)
    store = S3MailStore(boto3.client("s3", config=client_config("s3")), settings.bucket, settings.prefix)
    # Links live at most 30 days: the previous key is accepted that long after a rotation (and the refresh time).
    return store, signing_keys(settings.link_secret, GRACE_SECONDS)


# On every answer: no cache keeps it (a 302's Location is a presigned URL to private mail), no browser guesses
# another type than the plain text, and the redirect to S3 carries no Referer (the page the link was opened from).
SAFE_HEADERS = {
    "Content-Type": "text/plain; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _answer(status: int, text: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {**SAFE_HEADERS, **(headers or {})},
        "body": text + "\n",
    }


def _method(event: object) -> str | None:
    """The HTTP method of a Function URL event (payload format 2.0); None when the event names none (a direct
    invocation, which has no method to refuse)."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    return method if isinstance(method, str) else None


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event's query is a link, a credential for up to 30
# days, and the log group keeps it 90.
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Check the link's signature and expiry, then redirect to a presigned URL valid for minutes."""
    store, keys = _runtime()
    return answer(event, store, keys)


def _verified(query: object, keys: CachedKeyRing) -> Token:
    """The link's token; a signature no cached key matches is checked again with the ring read anew: the
    forwarder signs with a rotated key at once, while this function's cached ring lags up to its refresh time."""
    try:
        return verify_link(query, keys.get().accepted)
    except LinkError as error:
        if error.status != 403 or (ring := keys.renewed()) is None:
            raise
        return verify_link(query, ring.accepted)


def answer(event: object, store: S3MailStore, keys: CachedKeyRing) -> dict[str, Any]:
    """The response to one request: 302 to the stored message, else 400, 403, 404, 405 or 410.

    The URL is public: whatever an anonymous caller sends gets one of these answers, never an exception
    (an exception is a 502 and fires the download errors alarm).
    """
    method = _method(event)
    if method is not None and method not in READ_METHODS:
        logger.warning("download refused", extra={"status": 405, "reason": "method not allowed"})
        return _answer(405, "only GET and HEAD are answered", {"Allow": ", ".join(READ_METHODS)})
    query = event.get("queryStringParameters") if isinstance(event, dict) else None
    try:
        token = _verified(query or {}, keys)
    except LinkError as error:
        logger.warning(
            "download refused",
            extra={"status": error.status, "reason": str(error), "message_id": message_id_of(query)},
        )
        return _answer(error.status, str(error))
    try:
        store.size(token.message_id)
    except StoredMailError:
        logger.warning("download of a message that is no longer stored", extra={"message_id": token.message_id})
        return _answer(404, "this message is no longer stored")
    logger.info("download", extra={"message_id": token.message_id})
    # The presigned URL ends with the link at the latest: a link in its last minutes gives no minutes more.
    seconds = max(1, min(REDIRECT_SECONDS, token.expires - int(time.time())))
    return _answer(302, "redirecting to the message", {"Location": store.download_link(token.message_id, seconds)})
