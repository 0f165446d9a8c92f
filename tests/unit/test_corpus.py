"""Every message of the shared corpus (real-world and malformed mail) forwards within the contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from forwarder.config import Settings
from forwarder.mail import headers as h
from forwarder.mail.addresses import parse_addresses
from forwarder.mail.body import has_long_line
from forwarder.mail.message import split_message
from forwarder.ports import Inbound
from forwarder.service import ForwardingService
from tests.conftest import CORPUS, corpus_files
from tests.fakes import FakeDirectory, FakeSender, FakeStore
from tests.mailcheck import assert_forwarded, parsed

DOMAIN = "dev.aws-educate.tw"
FILES = corpus_files()


def _text(value: str) -> str:
    """The stdlib keeps raw 8-bit header bytes as surrogates; compare them as UTF-8 text."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def test_corpus_is_present() -> None:
    assert len(FILES) > 100, f"the shared corpus was not found at {CORPUS}"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_corpus_message_forwards_within_the_contract(path: Path) -> None:
    # GIVEN a corpus message stored by SES, addressed to team@
    raw = path.read_bytes()
    settings = Settings(domain=DOMAIN, bucket="bucket", alias_path="/aliases")  # type: ignore[call-arg]
    sender = FakeSender()
    service = ForwardingService(settings, FakeStore({"m": raw}), FakeDirectory({"team": "member@example.org"}), sender)
    # WHEN it is forwarded
    outcome = service.forward(Inbound("m", ("team@dev.aws-educate.tw",), "envelope@example.net"))
    # THEN one message reaches the member, within every invariant of the contract
    assert outcome.forwarded, outcome
    [sent] = sender.sent
    assert sent.recipients == ("member@example.org",)
    original = split_message(raw)
    body_changed = has_long_line(raw, original.body_start)
    assert_forwarded(raw, sent.raw, "team", DOMAIN, body_may_change=body_changed)
    # and replies reach the sender: the original Reply-To if it had an address, else the From address(es)
    reply_to = (
        [_text(a.addr_spec).lower() for a in parsed(sent.raw)["Reply-To"].addresses] if b"Reply-To" in sent.raw else []
    )
    original_reply = original.first(h.REPLY_TO)
    from_values = [f.value for f in original.all(h.FROM)]
    senders = [a.lower() for value in from_values for _, a in parse_addresses(value)]
    if original_reply is not None and parse_addresses(original_reply.value):
        assert sent.raw.count(original_reply.raw) == 1
    elif senders:
        assert senders[0] in reply_to, (senders, reply_to)
    else:
        assert reply_to == ["envelope@example.net"]
