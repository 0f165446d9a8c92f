"""The composition root: settings, clients and adapters, built on first use and reused while warm."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from forwarder.clients import client_config
from forwarder.config import Settings, get_settings
from forwarder.observability import logger
from forwarder.service import ForwardingService

if TYPE_CHECKING:
    from forwarder.aws.claims import PendingWrites
    from forwarder.aws.store import S3MailStore
    from forwarder.keyring import CachedKeyRing
    from forwarder.ports import AliasDirectory, MailStore, Once, Sender
    from forwarder.relay import ReplyRelay


def build_service(settings: Settings) -> ForwardingService:
    """Wire the real AWS adapters for `settings` (clients use the ambient credentials and region)."""
    import boto3
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from forwarder.aws.directory import SsmAliasDirectory
    from forwarder.aws.parking import FailureQueue
    from forwarder.aws.sender import SesSender
    from forwarder.aws.store import S3MailStore

    config = client_config()
    # One DynamoDB client for the idempotency, reply and trace tables: each client costs cold start.
    tables = settings.idempotency_table or settings.reply_table or settings.trace_table
    dynamodb = boto3.client("dynamodb", config=client_config("dynamodb")) if tables else None
    once = pending = None
    if settings.idempotency_table and dynamodb is not None:
        from forwarder.aws.claims import DynamoDBClaims, PendingWrites

        # The reply addresses and the trace of a mail are written with its first send's claim.
        pending = PendingWrites(dynamodb)
        once = DynamoDBClaims(
            dynamodb,
            settings.idempotency_table,
            settings.idempotency_expiry_days,
            pending,
            settings.idempotency_completion,
        )
    else:
        logger.warning("FORWARDER_IDEMPOTENCY_TABLE is not set: a retried event may be forwarded twice")
    store = S3MailStore(boto3.client("s3", config=client_config("s3")), settings.bucket, settings.prefix)
    trace = None
    if settings.trace_table and dynamodb is not None:
        from forwarder.aws.trace import DynamoDBTrace

        trace = DynamoDBTrace(
            dynamodb,
            settings.trace_table,
            settings.trace_expiry_days,
            settings.trace_subjects,
            pending,
        )
    directory = SsmAliasDirectory(
        SSMProvider(boto3_client=boto3.client("ssm", config=config)),
        settings.alias_path,
        settings.alias_cache_seconds,
    )
    sender = SesSender(boto3.client("sesv2", config=config), settings.domain, settings.configuration_set)
    return ForwardingService(
        settings=settings,
        store=store,
        directory=directory,
        sender=sender,
        once=once,
        notice=_build_notice,
        links=make_links(settings, store),
        parking=FailureQueue(boto3.client("sqs", config=config), settings.failure_queue_url)
        if settings.failure_queue_url
        else None,
        trace=trace,
        relay=make_relay(settings, store, directory, sender, once, dynamodb, pending),
        pending=pending,
    )


def make_relay(
    settings: Settings,
    store: MailStore,
    directory: AliasDirectory,
    sender: Sender,
    once: Once | None,
    dynamodb: Any = None,
    pending: PendingWrites | None = None,
) -> ReplyRelay | None:
    """The reply relay in team mode; None in direct mode, and in team mode without the reply table or the
    signing secret (FORWARDER_REPLY_TABLE, FORWARDER_LINK_SECRET): then replies go straight to the sender,
    as the contract allows, with one warning per cold start."""
    if settings.reply_mode != "team":
        return None
    if not settings.reply_table or not settings.link_secret:
        missing = "FORWARDER_REPLY_TABLE" if not settings.reply_table else "FORWARDER_LINK_SECRET"
        logger.warning(f"FORWARDER_REPLY_MODE is team but {missing} is not set: replies go to the sender (direct)")
        return None
    import boto3

    from forwarder.aws.replies import DynamoDBReplies
    from forwarder.ports import Always
    from forwarder.relay import ReplyRelay

    keys = forwarder_keys(settings)
    return ReplyRelay(
        settings=settings,
        keys=lambda: keys().get(),
        renewed_keys=lambda: keys().renewed(),
        replies=DynamoDBReplies(
            dynamodb or boto3.client("dynamodb", config=client_config("dynamodb")), settings.reply_table, pending
        ),
        directory=directory,
        store=store,
        sender=sender,
        once=once or Always(),
    )


def _build_notice(**kwargs: Any) -> bytes:
    """`forwarder.mail.notice.build_notice`, imported on the first oversize mail: its imports (email.policy,
    email.headerregistry) would otherwise cost every cold start."""
    from forwarder.mail.notice import build_notice

    return build_notice(**kwargs)


@cache
def signing_keys(secret: str, grace_seconds: int) -> CachedKeyRing:
    """The HMAC keys of download links and reply addresses (current + previous within `grace_seconds` of the
    rotation), from the Secrets Manager secret `secret`, re-read every five minutes."""
    import boto3

    from forwarder.keyring import CachedKeyRing

    return CachedKeyRing(
        lambda: boto3.client("secretsmanager", config=client_config("secretsmanager")),
        secret,
        grace_seconds=grace_seconds,
    )


def forwarder_keys(settings: Settings) -> Callable[[], CachedKeyRing]:
    """The forwarder's key ring (its `link_secret` must be set): it verifies only reply addresses, so it accepts
    the previous key as long as a reply record signed with it may live (`keyring.reply_grace_seconds`), not
    only the download links' 30 days."""
    from forwarder.keyring import reply_grace_seconds

    secret, grace = str(settings.link_secret), reply_grace_seconds(settings.reply_expiry_days)
    return lambda: signing_keys(secret, grace)


def make_links(settings: Settings, store: S3MailStore) -> Callable[[str], str]:
    """Download links for oversize notices: signed for the download function, else S3-presigned."""
    lifetime = settings.link_expiry_days * 86_400
    if settings.link_url and settings.link_secret:
        base_url, keys = settings.link_url, forwarder_keys(settings)

        def signed(message_id: str) -> str:
            from forwarder.links import sign_link

            return sign_link(base_url, keys().get().current, message_id, lifetime)

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
