"""The link/reply signing keys: current and previous versions of the Secrets Manager secret, re-read on a TTL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

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
