"""Integration fixtures: the embedded AWS (moto + captured SES) with the demo aliases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from forwarder_ops.aliases import read_file
from forwarder_ops.local import EmbeddedAws, embedded_aws
from tests.conftest import DOMAIN, EVENTS


@pytest.fixture
def demo_aliases() -> dict[str, list[str]]:
    return read_file(EVENTS / "aliases.toml")


@pytest.fixture
def aws(demo_aliases: dict[str, list[str]]) -> Iterator[EmbeddedAws]:
    """moto with the bucket, the verified domain, the idempotency table and the demo aliases."""
    with embedded_aws(DOMAIN, demo_aliases) as env:
        yield env
