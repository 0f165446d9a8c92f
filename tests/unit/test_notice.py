"""The notice sent instead of a message that cannot be forwarded: a well-formed message of its own."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

from forwarder.mail.message import split_message
from forwarder.mail.notice import build_notice

RAW = b"From: Alice <alice@example.com>\r\nSubject: big\r\nDate: Mon, 23 Nov 2026 17:12:40 +0800\r\n\r\nbody\r\n"


def notice(**options: object) -> email.message.EmailMessage:
    raw = build_notice(
        message=split_message(RAW),
        alias="team",
        domain="dev.aws-educate.tw",
        size=44_000_000,
        link="https://dl.example/?m=x",
        link_days=7,
        **options,  # type: ignore[arg-type]
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_notice_has_a_date_and_a_message_id_on_our_domain() -> None:
    # GIVEN a notice built at a known time
    message = notice(now=datetime(2026, 11, 30, 9, 30, tzinfo=UTC))
    # THEN it carries the Date and Message-ID every message should (RFC 5322 3.6), the id on our domain
    assert message["Date"] == "Mon, 30 Nov 2026 09:30:00 +0000"
    assert message["Date"].datetime == datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    message_id = str(message["Message-ID"]).strip()  # a long id is folded onto its own line
    assert message_id.startswith("<") and message_id.endswith(".notice@dev.aws-educate.tw>")
    # AND two notices never share an id
    assert notice()["Message-ID"] != notice()["Message-ID"]


def test_notice_for_an_unsendable_message_says_why() -> None:
    message = notice(unsendable=True)
    assert str(message["Subject"]) == "[could not forward] big"
    assert "has lines too long to send" in message.get_content()
    assert str(notice()["Subject"]) == "[too large to forward] big"
