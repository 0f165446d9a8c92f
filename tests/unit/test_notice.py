"""The notice sent instead of a message that cannot be forwarded: a well-formed message of its own."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

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


def test_notice_for_a_message_ses_refused_quotes_ses() -> None:
    # GIVEN SES's words for a refusal, however they are spaced WHEN the notice is built THEN it quotes them
    message = notice(refused="Illegal filename 'setup.exe'.")
    assert str(message["Subject"]) == "[could not forward] big"
    assert "could not be forwarded: Amazon SES refused to send it (Illegal filename 'setup.exe'.)" in (
        message.get_content()
    )
    assert "too large" not in message.get_content()


def build(head: bytes) -> email.message.EmailMessage:
    raw = build_notice(
        message=split_message(head + b"\r\nbody\r\n"),
        alias="team",
        domain="dev.aws-educate.tw",
        size=44_000_000,
        link="https://dl.example/?m=x",
        link_days=7,
        envelope_sender="bounce@example.org",
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


@pytest.mark.parametrize(
    ("from_field", "reply_to"),
    [
        # obsolete local parts that Japanese mobile carriers gave out, which the stdlib will not build an Address of
        (b"From: Taro <taro..yamada@docomo.example.jp>\r\n", "taro..yamada@docomo.example.jp"),
        (b"From: hanako.@ezweb.example.jp\r\n", "hanako.@ezweb.example.jp"),
        # RFC 6532: a UTF-8 local part, written in UTF-8 (the stdlib reads its bytes back as surrogates)
        ("From: Jöhn <jdöe@mächine.example>\r\n".encode(), "jdöe@mächine.example"),
    ],
    ids=["double-dot", "trailing-dot", "utf-8"],
)
def test_notice_reply_to_reaches_an_author_the_stdlib_will_not_build_an_address_of(
    from_field: bytes, reply_to: str
) -> None:
    # GIVEN a too-large mail from such an author WHEN the notice is built THEN it is built, and replies reach the author
    message = build(from_field + b"Subject: big\r\n")
    [address] = message["Reply-To"].addresses
    assert address.addr_spec.encode("utf-8", "surrogateescape").decode() == reply_to
    assert [a.addr_spec for a in message["From"].addresses] == ["team@dev.aws-educate.tw"]


def test_notice_subject_with_an_encoded_word_that_does_not_decode() -> None:
    # GIVEN a subject whose GB2312 encoded word holds a byte pair that is no GB2312 character (seen in spam)
    subject = b"Subject: =?gb2312?B?ztKw0b61zbfArb380KmjrMTjw8e/tL+01eK49srHyrLDtIzCo6zV4g==?=\r\n"
    # WHEN the notice is built THEN it is (the stdlib's policy decoding that word itself could not write it back)
    message = build(b"From: a@example.org\r\n" + subject)
    assert str(message["Subject"]).startswith("[too large to forward] ")
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["a@example.org"]


def test_notice_reply_to_with_a_long_non_ascii_name_on_a_utf8_address() -> None:
    # GIVEN an RFC 6532 author (UTF-8 local part) whose non-ASCII name is longer than one encoded word
    name = "Jöhännes Müller-Lüdenscheidt Ärztekammer Nordrhein"
    # WHEN the notice is built THEN it is (the name's encoded words were once folded with CRLF, which
    # the stdlib refuses in a header value: no notice at all), and replies reach the author by name
    message = build(f"From: {name} <jdöe@mächine.example>\r\nSubject: big\r\n".encode())
    [address] = message["Reply-To"].addresses
    assert address.addr_spec.encode("utf-8", "surrogateescape").decode() == "jdöe@mächine.example"
    assert address.display_name.encode("utf-8", "surrogateescape").decode() == name


@pytest.mark.parametrize("subject", [b"Subject:\r\n", b"Subject: \t \r\n", b"Subject: =?utf-8?q?=0D=0A?=\r\n"])
def test_notice_for_a_blank_subject_says_no_subject(subject: bytes) -> None:
    # GIVEN a too-large mail whose Subject is there but blank (or only control characters once decoded)
    message = build(b"From: a@example.org\r\n" + subject)
    # THEN the notice reads "(no subject)", as for a mail with none, not an empty line and a tag with a trailing space
    assert str(message["Subject"]) == "[too large to forward] (no subject)"
    assert "Subject: (no subject)" in message.get_content().splitlines()


def test_notice_says_when_it_lists_only_some_of_the_attachments() -> None:
    # GIVEN a too-large mail with more attachments than a notice lists
    part = b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="p%d.pdf"\r\n\r\nx\r\n'
    body = b"".join(part % i for i in range(51)) + b"--b--\r\n"
    raw = b"From: a@example.org\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + body
    message = email.message_from_bytes(
        build_notice(
            message=split_message(raw), alias="team", domain="d.example", size=1, link="https://x", link_days=7
        ),
        policy=email.policy.default,
    )
    assert isinstance(message, email.message.EmailMessage)
    lines = message.get_content().splitlines()
    # THEN it lists the first 50 and says there are more (the member would otherwise take the list for all of them)
    assert "  - p49.pdf (application/pdf, 1 bytes)" in lines
    assert not any("p50.pdf" in line for line in lines)
    assert "  - and more: the download holds them all" in lines
    # AND a mail with exactly 50 says no such thing
    fifty = raw.replace(part % 50, b"")
    assert (
        "and more"
        not in email.message_from_bytes(
            build_notice(
                message=split_message(fifty), alias="t", domain="d.example", size=1, link="https://x", link_days=7
            ),
            policy=email.policy.default,
        )
        .get_payload(decode=True)
        .decode()
    )


@pytest.mark.parametrize(
    ("from_field", "name"),
    [
        ('"Muller, Hans" <jdöe@mächine.example>', "Muller, Hans"),
        ('"Müller, Hans" <jdöe@mächine.example>', "Müller, Hans"),
        ('"Jö <evil@example.net>" <jdöe@mächine.example>', "Jö <evil@example.net>"),
        ('"Jö, \\"x\\" \\\\ y" <jdöe@mächine.example>', "Jö, 'x' / y"),
    ],
    ids=["comma", "non-ascii-comma", "address-in-name", "quotes"],
)
def test_notice_reply_to_of_a_utf8_author_is_one_mailbox_whatever_the_name(from_field: str, name: str) -> None:
    # GIVEN an RFC 6532 author (UTF-8 local part) whose name holds a comma, an address or quotes
    message = build(f"From: {from_field}\r\nSubject: big\r\n".encode())
    # WHEN the notice is built THEN its Reply-To is that one mailbox (the stdlib once wrote the name bare: a reply
    # went to `Muller` and to `Hans <...>`, or to the address in the name), with the name as it reads
    assert [
        (
            a.display_name.encode("utf-8", "surrogateescape").decode(),
            a.addr_spec.encode("utf-8", "surrogateescape").decode(),
        )
        for a in message["Reply-To"].addresses
    ] == [(name, "jdöe@mächine.example")]


@pytest.mark.parametrize(
    "address", ["hans.muller@example.com", "jdöe@mächine.example"], ids=["ascii", "utf-8-local-part"]
)
def test_notice_from_is_the_alias_alone_whatever_the_length_of_the_name(address: str) -> None:
    # GIVEN a too-large mail from a "Last, First" name too long for the notice's From to fit on one line
    name = "Muller, Hans " + "x " * 25
    message = build(f'From: "{name}" <{address}>\r\nSubject: big\r\n'.encode())
    # WHEN the notice is built THEN its From is one mailbox, the alias, named after the author (the stdlib's folding
    # once dropped the quotes of the long name: From was `Muller` and `Hans ... <team@...>`, two mailboxes)
    [mailbox] = message["From"].addresses
    assert mailbox.addr_spec == "team@dev.aws-educate.tw"
    spelled = address.replace("@", " at ")
    # (the stdlib's reader keeps the space before a fold between encoded words, that RFC 2047 says to drop)
    display = " ".join(mailbox.display_name.encode("utf-8", "surrogateescape").decode().split())
    assert display == f"{name.strip()} ({spelled}) via team"


def test_notice_reply_to_is_one_mailbox_when_the_name_is_full_of_quotes() -> None:
    # GIVEN a name whose escaped quotes make it too long for one line once quoted
    name = '\\"' * 40 + ", x"
    message = build(f'From: "{name}" <h@example.com>\r\nSubject: big\r\n'.encode())
    # WHEN the notice is built THEN its Reply-To is that one mailbox (the stdlib's folding dropped the quotes: a reply
    # went to `<>` and `x <h@example.com>`), the quotes read as apostrophes
    assert [(a.display_name, a.addr_spec) for a in message["Reply-To"].addresses] == [
        ("'" * 40 + ", x", "h@example.com")
    ]
