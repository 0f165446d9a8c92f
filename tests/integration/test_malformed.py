"""Two classes of malformed mail, through the handler against the emulator (whose SES refuses what real SES
refuses: a line over 998 octets): a header line with an empty field name, and over-long lines that
re-encoding cannot shorten."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder.mail.message import has_long_line, split_message
from forwarder_ops.local import EmbeddedAws
from tests.conftest import DOMAIN
from tests.mailcheck import assert_forwarded

TEAM = ["team@dev.aws-educate.tw"]


def parts(raw: bytes) -> list[bytes]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return [part.get_payload(decode=True) for part in message.walk() if not part.is_multipart()]


def multipart(boundary: bytes, preamble: bytes = b"") -> bytes:
    return (
        b"From: Alice <alice@example.com>\r\nTo: team@dev.aws-educate.tw\r\nSubject: report\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n"
        + preamble
        + b"--" + boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n"
        + b"--" + boundary + b"\r\nContent-Type: text/csv; name=r.csv\r\n\r\na,b\r\n1,2\r\n"
        + b"--" + boundary + b"--\r\n"
    )  # fmt: skip


def test_empty_field_name_keeps_the_fields_after_it(aws: EmbeddedAws, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a reply whose header block has a line with an empty field name before its threading and charset fields
    raw = (
        b"From: Alice <alice@example.com>\r\nTo: team@dev.aws-educate.tw\r\nSubject: Re: booth\r\n"
        b": this line has no field name\r\nIn-Reply-To: <first@example.com>\r\nReferences: <first@example.com>\r\n"
        b"Content-Type: text/plain; charset=big5\r\n\r\n\xa7\x41\xa6\x6e\r\n"
    )
    # WHEN it is forwarded
    result, sent = aws.deliver(raw, TEAM, message_id="empty-field-name")
    # THEN the fields after that line are still fields: threading and the charset survive
    assert result["outcomes"][0]["forwarded"]
    forwarded = email.message_from_bytes(sent[0].raw, policy=email.policy.default)
    assert forwarded["In-Reply-To"] == "<first@example.com>"
    assert forwarded["References"] == "<first@example.com>"
    assert forwarded.get_content_charset() == "big5"
    assert forwarded.get_payload(decode=True) == b"\xa7\x41\xa6\x6e\r\n"
    # AND the nameless line is not sent, and is counted in the log
    assert b": this line has no field name" not in sent[0].raw
    assert any(r.getMessage() == "header block lines that are no fields dropped" for r in caplog.records)
    assert_forwarded(raw, sent[0].raw, "team", DOMAIN)


@pytest.mark.parametrize("length", [990, 1100])
def test_overlong_boundary_is_replaced_and_the_mail_sent(aws: EmbeddedAws, length: int) -> None:
    # GIVEN a multipart whose boundary makes its delimiter lines (1,100 characters) or its Content-Type line (990,
    # unfoldable) over 998 octets: SES refuses the one, the header repair would encode the other beyond reading
    raw = multipart(b"-=" * (length // 2))
    # WHEN it is forwarded THEN the emulated SES accepts it: a new boundary, the same parts
    result, sent = aws.deliver(raw, TEAM, message_id=f"long-boundary-{length}")
    assert result["outcomes"][0]["forwarded"]
    assert result["outcomes"][0]["oversize"] is False
    assert not has_long_line(sent[0].raw)
    assert parts(sent[0].raw) == parts(raw)
    assert_forwarded(raw, sent[0].raw, "team", DOMAIN, body_may_change=True)


def test_overlong_preamble_line_is_cut_and_the_mail_sent(aws: EmbeddedAws) -> None:
    raw = multipart(b"XX", b"This is a multi-part message. " * 100 + b"\r\n")
    result, sent = aws.deliver(raw, TEAM, message_id="long-preamble")
    assert result["outcomes"][0]["forwarded"]
    assert not has_long_line(sent[0].raw)
    assert parts(sent[0].raw) == parts(raw)


def test_unfixable_long_line_becomes_a_notice_with_the_real_cause(
    aws: EmbeddedAws, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a part with a 2,000-octet header field that cannot be folded (no white space) nor re-encoded
    raw = (
        b"From: Alice <alice@example.com>\r\nTo: team@dev.aws-educate.tw\r\nSubject: odd part\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n"
        b"X-Part-Note: " + b"n" * 2000 + b"\r\n\r\nhello\r\n--B--\r\n"
    )
    # WHEN it is forwarded
    result, sent = aws.deliver(raw, TEAM, message_id="unfixable-line")
    # THEN nothing SES would refuse is sent: each member gets the notice with the download link instead
    assert result["outcomes"][0]["forwarded"]
    notice = email.message_from_bytes(sent[0].raw, policy=email.policy.default)
    assert str(notice["Subject"]) == "[could not forward] odd part"
    text = notice.get_content()
    assert "could not be forwarded: it has lines too long to send" in text
    assert "https://local-forwarder-mail.s3.amazonaws.com/inbound/unfixable-line?" in text
    # AND the log names the real cause
    [cause] = [r.cause for r in caplog.records if hasattr(r, "cause")]  # type: ignore[attr-defined]
    assert cause == "X-Part-Note field of a part over 998 octets, unfoldable"
    assert "preamble" not in cause


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(boundary=st.integers(900, 1400), preamble=st.integers(0, 2200))
def test_multipart_with_any_boundary_and_preamble_is_sent(aws: EmbeddedAws, boundary: int, preamble: int) -> None:
    # GIVEN boundaries and preamble lines around the 998-octet limit WHEN forwarded THEN SES accepts, parts equal
    raw = multipart(b"b" * boundary, b"p" * preamble + b"\r\n")
    result, sent = aws.deliver(raw, TEAM, message_id=f"any-{boundary}-{preamble}")
    assert result["outcomes"][0]["forwarded"] and not result["outcomes"][0]["oversize"]
    assert parts(sent[0].raw) == parts(raw)
    assert split_message(sent[0].raw).first("content-type") is not None
