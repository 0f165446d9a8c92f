"""Download function (Lambda Function URL): a signed link from an oversize notice -> the stored .eml."""

from __future__ import annotations

from functools import cache
from typing import Any

from forwarder.config import DownloadSettings, load_settings
from forwarder.links import LinkError, verify_link
from forwarder.observability import logger

REDIRECT_SECONDS = 300


@cache
def _runtime() -> tuple[DownloadSettings, Any, bytes]:
    import boto3
    from aws_lambda_powertools.utilities.parameters import get_secret

    from forwarder.wiring import s3_config

    settings = load_settings(DownloadSettings)
    key = str(get_secret(settings.link_secret, max_age=300)).encode()
    return settings, boto3.client("s3", config=s3_config()), key


def _answer(status: int, text: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", **(headers or {})},
        "body": text + "\n",
    }


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Check the link's signature and expiry, then redirect to a presigned URL valid for minutes."""
    settings, s3, key = _runtime()
    try:
        token = verify_link(event.get("queryStringParameters") or {}, key)
    except LinkError as error:
        logger.warning("download refused", extra={"status": error.status, "reason": str(error)})
        return _answer(error.status, str(error))
    object_key = f"{settings.prefix}{token.message_id}"
    try:
        s3.head_object(Bucket=settings.bucket, Key=object_key)
    except s3.exceptions.ClientError:
        logger.warning("download of a message that is no longer stored", extra={"message_id": token.message_id})
        return _answer(404, "this message is no longer stored")
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": settings.bucket,
            "Key": object_key,
            "ResponseContentType": "message/rfc822",
            "ResponseContentDisposition": f'attachment; filename="{token.message_id}.eml"',
        },
        ExpiresIn=REDIRECT_SECONDS,
    )
    logger.info("download", extra={"message_id": token.message_id})
    return _answer(302, "redirecting to the message", {"Location": url})
