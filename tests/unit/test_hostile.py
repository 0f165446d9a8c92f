"""Mail no one has seen: generated hostile header blocks and MIME bodies forward as SES accepts them, or as a
notice with the download link, and never raise out of the service (Lambda would retry the mail in vain)."""

from __future__ import annotations

from email._encoded_words import decode_b  # type: ignore[attr-defined]  # no stubs
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from forwarder.config import Settings
from forwarder.mail.notice import build_notice
from forwarder.ports import Inbound, Outcome
from forwarder.service import ForwardingService
from tests.fakes import FakeDirectory, FakeSender, FakeStore
from tests.hostile import assert_sendable, header_blocks, mime_mails
from tests.oracle import mailparser_parts, stdlib_parts

DOMAIN = "dev.aws-educate.tw"
# Fixed examples (derandomize), so that CI replays the same mail each run.
HOSTILE = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def forward(raw: bytes) -> tuple[Outcome, bytes]:
    """`raw`, stored by SES and addressed to team@, forwarded to the alias's one member: the outcome and the send."""
    settings_ = Settings(domain=DOMAIN, bucket="bucket", alias_path="/aliases")  # type: ignore[call-arg]
    sender = FakeSender()
    service = ForwardingService(
        settings_,
        FakeStore({"m": raw}),
        FakeDirectory({"team": "member@example.org"}),
        sender,
        notice=build_notice,
        links=lambda message_id: f"https://download.example/{message_id}",
    )
    outcome = service.forward(Inbound("m", (f"team@{DOMAIN}",), "envelope@example.net"))
    [sent] = sender.sent
    return outcome, sent.raw


def _has_long_line(raw: bytes) -> bool:
    return any(len(line.removesuffix(b"\r")) > 998 for line in raw.split(b"\n"))


@HOSTILE
@given(header_blocks)
def test_hostile_header_block_forwards_sendable_with_the_body_unchanged(mail: tuple[bytes, bytes, bytes]) -> None:
    # GIVEN a header block of arbitrary field names, values and line endings, then a short body
    head, separator, body = mail
    raw = head + separator + body
    # WHEN it is forwarded
    outcome, sent = forward(raw)
    # THEN SES would accept what is sent, and every reader splits its header block alike
    assert outcome.forwarded
    assert_sendable(sent)
    # AND the body goes out as received: the bytes after the forward's header block are the input's last bytes, at
    # least its body (a line the forwarder does not read as a field starts the body), unless a line was too long
    # (without a line feed before it, a body is part of the last field)
    if separator and (not head or head.endswith(b"\n")) and not _has_long_line(raw) and not outcome.oversize:
        newline = b"\r\n" if sent.startswith(b"X-SES-Forwarder: " + DOMAIN.encode() + b"\r\n") else b"\n"
        sent_body = sent.partition(newline + newline)[2]
        assert raw.endswith(sent_body) and sent_body.endswith(body)


def _decoded(parts: dict[str, Any]) -> dict[str, Any]:
    """mail-parser's reading with attachments' payloads decoded: a re-encoded part's base64 is wrapped anew."""
    attachments = parts.get("attachments")
    if attachments is None:
        return parts
    # As the stdlib decodes a part's base64 (padding added where missing): the forwarder re-encodes what it reads.
    decoded = [
        (kind, name, binary, decode_b(payload.encode("ascii", "replace"))[0] if binary else payload)
        for kind, name, binary, payload in attachments
    ]
    return {**parts, "attachments": decoded}


@HOSTILE
@given(mime_mails())
def test_hostile_mime_body_forwards_as_the_same_parts_or_as_a_notice(raw: bytes) -> None:
    # GIVEN a mail whose parts have lines over 998 octets in any transfer encoding, broken boundaries, attached
    # messages, binary content
    # WHEN it is forwarded
    outcome, sent = forward(raw)
    # THEN what is sent is sendable: the forward, or (only for a line that cannot be shortened) the notice
    assert outcome.forwarded
    assert_sendable(sent)
    if outcome.oversize:
        assert _has_long_line(raw)
        assert b"https://download.example/m" in sent
        return
    # AND the forward reads, with both independent parsers, as the same parts with the same decoded content
    assert stdlib_parts(sent) == stdlib_parts(raw)
    assert _decoded(mailparser_parts(sent)) == _decoded(mailparser_parts(raw))


NESTED_FIELDS = (
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Content-Type: multipart/mixed; boundary=",
    "Content-Type: text/plain; name=",
    "Content-Disposition: attachment; filename=",
    "Message-ID",
    "References",
)
NESTINGS = ("(" * 3_000, "g:" * 9_000, "<" * 3_000, '"(' * 2_000, "=?utf-8?Q?10:08?= (" * 1_500)


@pytest.mark.parametrize("field", NESTED_FIELDS)
@pytest.mark.parametrize("nesting", NESTINGS)
def test_field_nested_thousands_deep_forwards(field: str, nesting: str) -> None:
    # GIVEN a field whose value nests thousands deep: the stdlib's header parsers recurse once per comment or group
    name, _, prefix = field.partition(": ")
    raw = f"From: carol@customer.example\r\n{name}: {prefix}{nesting}x@y.org\r\nSubject: hi\r\n\r\nbody\r\n".encode()
    # WHEN it is forwarded THEN it goes out as SES takes it (a RecursionError failed the invocation on every retry)
    outcome, sent = forward(raw)
    assert outcome.forwarded
    assert_sendable(sent)
