"""The composition root: settings, clients and adapters, built on first use and reused while warm."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from forwarder.config import Settings, get_settings
from forwarder.observability import logger
from forwarder.service import ForwardingService

if TYPE_CHECKING:
    from forwarder.aws.store import S3MailStore
    from forwarder.keyring import CachedKeyRing


def client_config() -> Any:
    """botocore settings shared by every client: standard retries, bounded waits."""
    from botocore.config import Config

    return Config(retries={"total_max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)


def s3_config() -> Any:
    """S3 also signs presigned download links: SigV4, which every region accepts."""
    from botocore.config import Config

    return client_config().merge(Config(signature_version="s3v4"))


def build_service(settings: Settings) -> ForwardingService:
    """Wire the real AWS adapters for `settings` (clients use the ambient credentials and region)."""
    import boto3
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from forwarder.aws.directory import SsmAliasDirectory
    from forwarder.aws.idempotency import DynamoDBOnce
    from forwarder.aws.parking import FailureQueue
    from forwarder.aws.sender import SesSender
    from forwarder.aws.store import S3MailStore
    from forwarder.mail.notice import build_notice

    config = client_config()
    once = None
    if settings.idempotency_table:
        once = DynamoDBOnce(
            boto3.client("dynamodb", config=config),
            settings.idempotency_table,
            settings.idempotency_expiry_days,
        )
    else:
        logger.warning("FORWARDER_IDEMPOTENCY_TABLE is not set: a retried event may be forwarded twice")
    store = S3MailStore(boto3.client("s3", config=s3_config()), settings.bucket, settings.prefix)
    trace = None
    if settings.trace_table:
        from forwarder.aws.trace import DynamoDBTrace

        trace = DynamoDBTrace(
            boto3.client("dynamodb", config=config),
            settings.trace_table,
            settings.trace_expiry_days,
            settings.trace_subjects,
        )
    return ForwardingService(
        settings=settings,
        store=store,
        directory=SsmAliasDirectory(
            SSMProvider(boto3_client=boto3.client("ssm", config=config)),
            settings.alias_path,
            settings.alias_cache_seconds,
        ),
        sender=SesSender(boto3.client("sesv2", config=config), settings.domain, settings.configuration_set),
        once=once,
        notice=build_notice,
        links=make_links(settings, store),
        parking=FailureQueue(boto3.client("sqs", config=config), settings.failure_queue_url)
        if settings.failure_queue_url
        else None,
        trace=trace,
    )


@cache
def signing_keys(secret: str) -> CachedKeyRing:
    """The HMAC keys of download links and reply addresses (current + previous within the grace period),
    from the Secrets Manager secret `secret`, re-read every five minutes."""
    import boto3

    from forwarder.keyring import CachedKeyRing

    return CachedKeyRing(lambda: boto3.client("secretsmanager", config=client_config()), secret)


def make_links(settings: Settings, store: S3MailStore) -> Callable[[str], str]:
    """Download links for oversize notices: signed for the download function, else S3-presigned."""
    lifetime = settings.link_expiry_days * 86_400
    if settings.link_url and settings.link_secret:
        base_url, secret = settings.link_url, settings.link_secret

        def signed(message_id: str) -> str:
            from forwarder.links import sign_link

            return sign_link(base_url, signing_keys(secret).get().current, message_id, lifetime)

        return signed
    logger.warning("FORWARDER_LINK_URL is not set: download links are S3-presigned and end with the role session")
    return lambda message_id: store.download_link(message_id, min(lifetime, 7 * 86_400))


@cache
def get_service() -> ForwardingService:
    """The service of this process, built once."""
    return build_service(get_settings())


def reset() -> None:
    """Forget the cached settings and service (a new environment, e.g. in the local runner)."""
    get_settings.cache_clear()
    get_service.cache_clear()
    signing_keys.cache_clear()
    from forwarder.delivery import get_adapters

    get_adapters.cache_clear()
