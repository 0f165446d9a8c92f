"""The HMAC keys that sign download links and reply addresses, from one Secrets Manager secret.

Signing always uses the current key (the secret's `AWSCURRENT` version). Verifying also accepts the
previous key (`AWSPREVIOUS`) for a grace period after a rotation, so that links and reply addresses
already sent keep working while they are meant to: rotating is `PutSecretValue` with a new random
value (`forwarder links rotate-key`), which moves `AWSCURRENT` to the new version and `AWSPREVIOUS`
to the old one. Keys are re-read after `refresh_seconds`, so a warm function sees a rotation within
minutes, not when its container is recycled.

The grace depends on what is verified: a download link lives at most 30 days, so the download function
accepts the previous key `GRACE_SECONDS`; a reply address works as long as its record in the reply table,
up to `FORWARDER_REPLY_EXPIRY_DAYS` after it was last saved, so the forwarder (which verifies only reply
addresses) accepts it `reply_grace_seconds` (the key itself is never stored with the record: a token
without our MAC stays refused however the table reads).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

REFRESH_SECONDS = 300
# The least age of a cached ring that `renewed` reads again: a signature no cached key matches may come from a
# rotation within the last `REFRESH_SECONDS`, or be forged; forged ones must not flood Secrets Manager.
RENEW_SECONDS = 60
# Download links live up to 30 days (FORWARDER_LINK_EXPIRY_DAYS): the download function accepts the previous key
# this long after the current one was created. The last link signed with it was signed up to `REFRESH_SECONDS`
# after the rotation (a warm forwarder signs with its cached ring until it reads it again), and lives 30 days
# from then.
LINK_MAX_SECONDS = 30 * 86_400
GRACE_SECONDS = LINK_MAX_SECONDS + REFRESH_SECONDS


def reply_grace_seconds(reply_expiry_days: int) -> int:
    """How long after a rotation the forwarder accepts the previous key: as long as a reply record signed with
    it may live. The last such record was saved at most `REFRESH_SECONDS` after the rotation (a warm function
    signs with its cached ring until it re-reads it) and lives `reply_expiry_days` from then; a relay never
    renews it, and a forward after the rotation saves a record under the new key's id instead. Never shorter
    than `GRACE_SECONDS`."""
    return max(GRACE_SECONDS, reply_expiry_days * 86_400 + REFRESH_SECONDS)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The key to sign with, and every key a signature may be checked against (current first)."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    @property
    def accepted(self) -> tuple[bytes, ...]:
        return (self.current, *self.previous)


def _created(answer: dict[str, Any]) -> float | None:
    created = answer.get("CreatedDate")
    if isinstance(created, datetime):
        return (created if created.tzinfo else created.replace(tzinfo=UTC)).timestamp()
    return None


def read_keyring(
    client: Any, secret_id: str, *, grace_seconds: int = GRACE_SECONDS, now: float | None = None
) -> KeyRing:
    """The secret's current key and, within the grace period after it was created, the previous one."""
    current = client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
    ring = KeyRing(str(current["SecretString"]).encode())
    created = _created(current)
    now = time.time() if now is None else now
    if created is not None and now - created > grace_seconds:
        return ring
    try:
        previous = client.get_secret_value(SecretId=secret_id, VersionStage="AWSPREVIOUS")
    except Exception as error:  # no previous version yet: a ClientError ResourceNotFoundException
        if getattr(error, "response", {}).get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return ring
    return KeyRing(ring.current, (str(previous["SecretString"]).encode(),))


class CachedKeyRing:
    """`read_keyring` re-read every `refresh_seconds` (a warm function sees a rotation within minutes)."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        secret_id: str,
        *,
        refresh_seconds: int = REFRESH_SECONDS,
        grace_seconds: int = GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self.secret_id = secret_id
        self.refresh_seconds = refresh_seconds
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._ring: KeyRing | None = None
        self._read_at = 0.0

    def get(self) -> KeyRing:
        """The key ring, read again when the cached copy is older than `refresh_seconds`. When Secrets Manager
        does not answer that read (throttled, unavailable), the cached copy is kept until the next refresh:
        its keys are as good as they were, and every link and reply meanwhile would fail instead."""
        if self._ring is None:
            return self._read()
        if self._clock() - self._read_at >= self.refresh_seconds:
            return self._read_or_none() or self._ring
        return self._ring

    def renewed(self, min_age_seconds: float = RENEW_SECONDS) -> KeyRing | None:
        """The ring read again now, for a signature no cached key matched (a rotation since the last read);
        None when the cached copy is younger than `min_age_seconds` (read again at most that often), or when
        Secrets Manager does not answer: the signature then stays unmatched, as a forged one is, rather than
        failing the request (a public URL's 502 and alarm, a reply's retries)."""
        if self._ring is not None and self._clock() - self._read_at < min_age_seconds:
            return None
        return self._read_or_none()

    def _read_or_none(self) -> KeyRing | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._read()
        except (BotoCoreError, ClientError) as error:
            from forwarder.observability import logger

            logger.warning("key ring not read again", extra={"error": type(error).__name__})
            # A failed read counts as one: the next is tried after the same wait, not on every request (a flood of
            # forged links would otherwise call a throttled Secrets Manager, retries and all, once each).
            self._read_at = self._clock()
            return None

    def _read(self) -> KeyRing:
        if self._client is None:
            self._client = self._client_factory()
        self._ring = read_keyring(self._client, self.secret_id, grace_seconds=self.grace_seconds)
        self._read_at = self._clock()
        return self._ring
