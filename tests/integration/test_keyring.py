"""The link/reply signing keys: current and previous versions of the Secrets Manager secret, re-read on a TTL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from moto import mock_aws

from forwarder.keyring import CachedKeyRing, read_keyring

SECRET = "link-key"


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name=SECRET, SecretString="first-key")
        yield client


def test_read_keyring_without_rotation_has_only_the_current_key(secrets: Any) -> None:
    # GIVEN a secret never rotated WHEN the ring is read THEN it signs with that key and accepts only it
    ring = read_keyring(secrets, SECRET)
    assert ring.current == b"first-key"
    assert ring.accepted == (b"first-key",)


def test_read_keyring_accepts_the_previous_key_within_the_grace_period(secrets: Any) -> None:
    # GIVEN a rotation (PutSecretValue moves AWSCURRENT to the new value, AWSPREVIOUS to the old)
    secrets.put_secret_value(SecretId=SECRET, SecretString="second-key")
    # WHEN the ring is read just after THEN it signs with the new key and still accepts the old one
    ring = read_keyring(secrets, SECRET)
    assert ring.current == b"second-key"
    assert ring.accepted == (b"second-key", b"first-key")
    # WHEN the grace period is over THEN the old key is refused
    later = read_keyring(secrets, SECRET, grace_seconds=60, now=time.time() + 3600)
    assert later.accepted == (b"second-key",)


def test_reply_grace_covers_the_life_of_a_reply_record_signed_before_the_rotation() -> None:
    from forwarder.keyring import GRACE_SECONDS, REFRESH_SECONDS, reply_grace_seconds

    # GIVEN reply records that live 90 days: the last one signed with the old key was saved up to a refresh
    # after the rotation THEN the previous key is accepted that long, not only the links' 30 days
    assert reply_grace_seconds(90) == 90 * 86_400 + REFRESH_SECONDS
    # AND never less than the links' grace
    assert reply_grace_seconds(1) == GRACE_SECONDS


def test_download_link_signed_with_the_old_key_just_after_a_rotation_works_until_it_expires(secrets: Any) -> None:
    from forwarder.keyring import REFRESH_SECONDS
    from forwarder.links import sign_link, verify_link

    # GIVEN a rotation, and a warm forwarder that still signs with its cached (old) key just before it reads
    # the ring again: a notice's link of the longest lifetime (30 days)
    secrets.put_secret_value(SecretId=SECRET, SecretString="second-key")
    signed_at = time.time() + REFRESH_SECONDS - 1
    link = sign_link("https://dl.example/", b"first-key", "msg-1", 30 * 86_400, now=signed_at)
    query = dict(parse_qsl(urlsplit(link).query))
    # WHEN the member opens it in its last minute THEN the download function's ring still accepts the old key
    # (before: the previous key was dropped 30 days after the rotation, and the link was a 403 that long early)
    last_minute = signed_at + 30 * 86_400 - 60
    ring = read_keyring(secrets, SECRET, now=last_minute)
    assert verify_link(query, ring.accepted, now=last_minute).message_id == "msg-1"


def test_read_keyring_with_the_reply_grace_accepts_the_previous_key_after_the_links_grace(secrets: Any) -> None:
    from forwarder.keyring import reply_grace_seconds

    # GIVEN a rotation 60 days ago
    secrets.put_secret_value(SecretId=SECRET, SecretString="second-key")
    later = time.time() + 60 * 86_400
    # WHEN the download function's ring is read THEN the old key is refused (links live 30 days at most)
    assert read_keyring(secrets, SECRET, now=later).accepted == (b"second-key",)
    # WHEN the forwarder's ring is read (90-day reply records) THEN the old key is still accepted
    ring = read_keyring(secrets, SECRET, grace_seconds=reply_grace_seconds(90), now=later)
    assert ring.accepted == (b"second-key", b"first-key")


def test_cached_keyring_rereads_after_its_refresh_time(secrets: Any) -> None:
    # GIVEN a cached ring with a fake clock
    now = [1000.0]
    cached = CachedKeyRing(lambda: secrets, SECRET, refresh_seconds=300, clock=lambda: now[0])
    assert cached.get().current == b"first-key"
    secrets.put_secret_value(SecretId=SECRET, SecretString="second-key")
    # WHEN less than the refresh time passed THEN the cached key is used
    now[0] += 299
    assert cached.get().current == b"first-key"
    # WHEN the refresh time passed THEN the rotation is seen
    now[0] += 1
    assert cached.get().current == b"second-key"
    assert b"first-key" in cached.get().accepted


class _OneMessage:
    """The S3 store as the download function uses it, holding every message."""

    def size(self, message_id: str) -> int:
        return 1

    def download_link(self, message_id: str, seconds: int) -> str:
        return f"https://bucket.s3.amazonaws.com/inbound/{message_id}"


def _link_query(key: bytes) -> dict[str, str]:
    from forwarder.links import sign_link

    return dict(parse_qsl(urlsplit(sign_link("https://dl.example/", key, "msg-1", 86_400)).query))


def test_download_link_signed_just_after_a_rotation_is_honoured_by_a_warm_function(secrets: Any) -> None:
    from forwarder.download import answer

    # GIVEN a warm download function that read the key ring a minute ago
    now = [1000.0]
    cached = CachedKeyRing(lambda: secrets, SECRET, refresh_seconds=300, clock=lambda: now[0])
    cached.get()
    now[0] += 60
    # AND a rotation since, after which the forwarder signs a notice's link with the new key
    secrets.put_secret_value(SecretId=SECRET, SecretString="second-key")
    event = {"queryStringParameters": _link_query(b"second-key")}
    # WHEN the member opens the link THEN it redirects (before: 403 until the cached ring expired)
    assert answer(event, _OneMessage(), cached)["statusCode"] == 302  # type: ignore[arg-type]


def test_download_forged_links_reread_the_key_ring_at_most_once_a_minute(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a warm download function and a flood of forged links
    cached, now = _warm_ring(secrets)
    reads: list[object] = []
    real = secrets.get_secret_value
    monkeypatch.setattr(secrets, "get_secret_value", lambda **kwargs: reads.append(kwargs) or real(**kwargs))
    # WHEN they arrive within a minute THEN each is refused, and Secrets Manager is asked once at most
    _refuse_forged_links_for_50_seconds(cached, now)
    assert len(reads) <= 2  # AWSCURRENT and AWSPREVIOUS of one re-read


def _warm_ring(secrets: Any) -> tuple[CachedKeyRing, list[float]]:
    """A cached ring read once, refreshed every five minutes, and its (fake) clock."""
    now = [1000.0]
    cached = CachedKeyRing(lambda: secrets, SECRET, refresh_seconds=300, clock=lambda: now[0])
    cached.get()
    return cached, now


def _refuse_forged_links_for_50_seconds(cached: CachedKeyRing, now: list[float]) -> None:
    from forwarder.download import answer

    forged = {"queryStringParameters": _link_query(b"not our key")}
    for _ in range(50):
        now[0] += 1
        assert answer(forged, _OneMessage(), cached)["statusCode"] == 403  # type: ignore[arg-type]


def _throttled(**kwargs: Any) -> Any:
    from botocore.exceptions import ClientError

    raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetSecretValue")


def test_cached_keyring_keeps_its_keys_when_secrets_manager_does_not_answer_a_refresh(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a warm function's cached ring
    cached, now = _warm_ring(secrets)
    # AND Secrets Manager throttled when the refresh time has passed
    monkeypatch.setattr(secrets, "get_secret_value", _throttled)
    now[0] += 300
    # WHEN the ring is asked for THEN the cached keys answer (before: the ClientError failed every download
    # and every reply until Secrets Manager answered again)
    assert cached.get().current == b"first-key"
    # AND once it answers again, the next refresh reads it
    monkeypatch.undo()
    secrets.put_secret_value(SecretId=SECRET, SecretString="second-key")
    now[0] += 300
    assert cached.get().current == b"second-key"


def test_download_forged_links_do_not_call_an_unanswering_secrets_manager_each(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a warm download function whose ring is old enough to be read again, and Secrets Manager throttled
    cached, now = _warm_ring(secrets)
    now[0] += 120
    calls: list[object] = []
    monkeypatch.setattr(secrets, "get_secret_value", lambda **kwargs: calls.append(kwargs) or _throttled())
    # WHEN a flood of forged links arrives within a minute THEN each is refused, and Secrets Manager is asked once
    # (before: a failed read left the ring's age as it was, so every forged link tried again)
    _refuse_forged_links_for_50_seconds(cached, now)
    assert len(calls) == 1
