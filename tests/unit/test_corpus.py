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
from tests.oracle import assert_same_parts, stdlib_parts

DOMAIN = "dev.aws-educate.tw"
FILES = corpus_files()

# Inputs the independent parsers read differently from the forwarder, and why (the forwarder's reading
# follows the RFC): there the output's parts are the input's with the fields the parsers took for body.
READ_DIFFERENTLY = {
    # RFC 5322 4.5.3 obs-optional: white space before the colon. The stdlib (and mail-parser on top of
    # it) ends the header block at `To    : Mary Smith`; the forwarder keeps it as a field.
    "mikel-mail/rfc2822/example13.eml",
}


def _text(value: str) -> str:
    """The stdlib keeps raw 8-bit header bytes as surrogates; compare them as UTF-8 text."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def test_corpus_is_present() -> None:
    assert len(FILES) > 100, f"the shared corpus was not found at {CORPUS}"


def forward(raw: bytes) -> FakeSender:
    """Forward `raw` (stored by SES, addressed to team@) to the alias's one member."""
    settings = Settings(domain=DOMAIN, bucket="bucket", alias_path="/aliases")  # type: ignore[call-arg]
    sender = FakeSender()
    service = ForwardingService(settings, FakeStore({"m": raw}), FakeDirectory({"team": "member@example.org"}), sender)
    outcome = service.forward(Inbound("m", ("team@dev.aws-educate.tw",), "envelope@example.net"))
    assert outcome.forwarded, outcome
    return sender


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_corpus_message_forwards_within_the_contract(path: Path) -> None:
    # GIVEN a corpus message stored by SES, addressed to team@
    raw = path.read_bytes()
    # WHEN it is forwarded
    sender = forward(raw)
    # THEN one message reaches the member, within every invariant of the contract
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


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_corpus_message_reads_as_the_same_parts_after_forwarding(path: Path) -> None:
    # GIVEN a corpus message
    raw = path.read_bytes()
    # WHEN it is forwarded
    [sent] = forward(raw).sent
    # THEN the standard library and mail-parser read the same parts with the same decoded content in both
    if str(path.relative_to(CORPUS)) not in READ_DIFFERENTLY:
        assert_same_parts(raw, sent.raw)
    else:
        # (for a field the parsers take for body text: the output's part is the input's without it)
        [(kind, before)], [(kind_after, after)] = stdlib_parts(raw), stdlib_parts(sent.raw)
        assert kind == kind_after and before is not None and after is not None
        assert len(after) < len(before) and before.endswith(after)


def test_oracle_sees_a_changed_part() -> None:
    # GIVEN a corpus message and a forward whose attachment lost one byte
    raw = next(p for p in FILES if b"base64" in p.read_bytes()).read_bytes()
    [sent] = forward(raw).sent
    body_start = split_message(sent.raw).body_start
    broken = sent.raw[:body_start] + sent.raw[body_start:].replace(b"A", b"B", 1)
    # WHEN the oracle compares THEN it notices
    with pytest.raises(AssertionError):
        assert_same_parts(raw, broken)


NAMELESS_ATTACHMENT = (
    b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
    b"--b\r\nContent-Type: text/x-ruby-script\r\nContent-Disposition: attachment\r\n\r\nputs 1\r\n--b--\r\n"
)


def test_oracle_reads_a_nameless_attachment_the_same_each_time() -> None:
    # GIVEN an attachment without a file name, which mail-parser names with random letters
    # WHEN the oracle reads the message twice THEN it finds the same parts
    assert_same_parts(NAMELESS_ATTACHMENT, NAMELESS_ATTACHMENT)
    # AND it still sees an attachment that lost its name
    named = NAMELESS_ATTACHMENT.replace(b"attachment\r\n", b"attachment; filename=run.rb\r\n")
    with pytest.raises(AssertionError):
        assert_same_parts(named, NAMELESS_ATTACHMENT)


# A multipart nested in one with the same boundary, no epilogue: mail-parser 4.x raises AttributeError on it.
SAME_BOUNDARY = (
    b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
    b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
    b"--a\r\nContent-Type: application/pdf; name=cv.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n"
)


def test_oracle_compares_a_mail_that_mail_parser_cannot_read() -> None:
    # GIVEN a mail that mail-parser fails to read, forwarded
    [sent] = forward(SAME_BOUNDARY).sent
    # WHEN the oracle compares THEN input and output read the same (mail-parser fails on both alike)
    assert_same_parts(SAME_BOUNDARY, sent.raw)
    # AND the stdlib still sees a changed part
    with pytest.raises(AssertionError):
        assert_same_parts(SAME_BOUNDARY, sent.raw.replace(b"QUJD", b"QUJE"))
