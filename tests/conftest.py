"""Shared fixtures: the sample events and mails, the shared corpus, a Lambda context, a clean runtime."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Wall-clock deadlines make property tests flaky on a loaded CI machine; speed is measured by `make bench`.
# Locally every run explores new examples; CI (HYPOTHESIS_PROFILE=ci, set by .ci/run) replays a fixed
# set, so that a submission does not fail on an example no one has seen yet.
settings.register_profile("forwarder", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "forwarder"))

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
# The shared corpus next to the checkout when there is one (it may hold more mail than our copy),
# else the copy in tests/corpus (MIT-licensed, see the LICENSE files there).
_SHARED = ROOT.parent / "shared" / "corpus"
CORPUS = Path(os.environ.get("FORWARDER_CORPUS") or (_SHARED if _SHARED.is_dir() else ROOT / "tests" / "corpus"))
DOMAIN = "dev.aws-educate.tw"

# The runtime's settings for tests that build the service without the emulator.
TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def corpus_files() -> list[Path]:
    """Every message of the shared corpus (real and malformed mail), in a stable order."""
    if not CORPUS.is_dir():
        return []
    suffixes = {".eml", ".msg", ".txt"}
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in suffixes and p.stat().st_size > 0)


@pytest.fixture(autouse=True)
def _test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def _reset_runtime() -> Iterator[None]:
    """Each test starts with no cached settings or service and no leftover metrics."""
    from forwarder import wiring
    from forwarder.observability import metrics

    wiring.reset()
    metrics.clear_metrics()
    yield
    wiring.reset()
    metrics.clear_metrics()


@pytest.fixture
def lambda_context() -> Any:
    from forwarder_ops.local import LocalContext

    return LocalContext()


@pytest.fixture
def load_event() -> Any:
    def load(name: str) -> dict[str, Any]:
        return json.loads((EVENTS / f"{name}.json").read_text())

    return load


@pytest.fixture
def load_eml() -> Any:
    def load(name: str) -> bytes:
        return (EVENTS / "mail" / name).read_bytes()

    return load
