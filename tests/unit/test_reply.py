"""A member's reply: the authenticity rule, automatic mail, the display name, the allow-listed header block."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from forwarder.mail.message import SplitMessage, split_message
from forwarder.mail.policy import Verdicts
from forwarder.mail.reply import (
    Author,
    author_of,
    build_reply_head,
    hidden_domains,
    is_authentic,
    is_automatic,
    member_display_name,
    reply_target,
)
from tests.mailcheck import parsed

DOMAIN = "dev.aws-educate.tw"
REPLY = (
    b"Received: from mail.provider.example by mx\r\n"
    b"DKIM-Signature: v=1; d=example.net; b=x\r\n"
    b"Return-Path: <bob@example.net>\r\n"
    b"From: Bob Lin <bob@example.net>\r\n"
    b"Sender: bob@example.net\r\n"
    b"To: team+r-aaaaaaaaaaaa-bbbbbbbbbbbbbbbb@dev.aws-educate.tw\r\n"
    b"Cc: boss@example.net\r\n"
    b"Subject: Re: [dev] Booth\r\n"
    b"Date: Mon, 30 Nov 2026 10:00:00 +0800\r\n"
    b"Message-ID: <abc@mail.example.net>\r\n"
    b"In-Reply-To: <fwd@email.amazonses.com>\r\n"
    b"References: <q@customer.example>\r\n <fwd@email.amazonses.com>\r\n"
    b"X-Mailer: Provider 7\r\n"
    b"User-Agent: Provider 7\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Yes.\r\n\r\nOn Mon, Carol <carol@customer.example> wrote:\r\n> Booth?\r\n"
)


def verdicts(spf: str | None, dkim: str | None, dmarc: str) -> Verdicts:
    return Verdicts(spf=spf, dkim=dkim, dmarc=dmarc)


@pytest.mark.parametrize(
    ("spf", "dkim", "dmarc", "from_member", "envelope_member", "authentic"),
    [
        ("PASS", "PASS", "PASS", True, True, True),  # Gmail, Outlook.com: everything aligned
        ("FAIL", "PASS", "PASS", True, False, True),  # a bounce domain for the envelope, DKIM aligned with From
        ("PASS", "GRAY", "GRAY", False, True, True),  # no DKIM, no DMARC record: SPF for the member's envelope
        ("PASS", "PASS", "FAIL", True, True, False),  # DMARC FAIL is never authentic
        ("GRAY", "PASS", "GRAY", True, False, False),  # DKIM by someone, From domain without DMARC: not enough
        ("PASS", "PASS", "GRAY", True, False, False),  # SPF and DKIM vouch for a stranger's envelope, not for From
        ("FAIL", "FAIL", "PASS", True, True, False),  # neither SPF nor DKIM passed
        (None, None, "PASS", True, True, False),  # verdicts unknown: never authentic
    ],
)
def test_is_authentic_vouches_for_the_member_address(
    spf: str | None, dkim: str | None, dmarc: str, from_member: bool, envelope_member: bool, authentic: bool
) -> None:
    result = is_authentic(verdicts(spf, dkim, dmarc), from_is_member=from_member, envelope_is_member=envelope_member)
    assert result is authentic


def test_verdicts_default_to_not_authentic() -> None:
    assert not is_authentic(Verdicts(), from_is_member=True, envelope_is_member=True)


@pytest.mark.parametrize(
    ("field", "automatic"),
    [
        (b"Auto-Submitted: auto-replied", True),
        (b"Auto-Submitted: auto-generated; owner-email=x@y.z", True),
        (b"Auto-Submitted: no", False),
        (b"Precedence: bulk", True),
        (b"Precedence: list", True),
        (b"X-Autoreply: yes", True),
        (b"Importance: high", False),
        (b"List-Id: Booth <booth.lists.customer.example>", True),
        # Not a sign of automatic mail: Exchange writes it on people's mail too (asking others not to auto-reply)
        (b"X-Auto-Response-Suppress: All", False),
        (b'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"', True),
        (b"Content-Type: Multipart/Report; report-type=delivery-status; boundary=b", True),
        (b'Content-Type: multipart/mixed; boundary="b"', False),
    ],
)
def test_is_automatic(field: bytes, automatic: bool) -> None:
    assert is_automatic(split_message(field + b"\r\nFrom: a@b.c\r\n\r\nx")) is automatic


def test_reply_target_prefers_reply_to_then_from_then_envelope() -> None:
    both = split_message(b"From: A <a@x.org>\r\nReply-To: Desk <desk@x.org>, b@x.org\r\n\r\n")
    assert reply_target(both, "bounce@x.org") == "desk@x.org"
    assert reply_target(split_message(b"From: A <a@x.org>\r\n\r\n"), "bounce@x.org") == "a@x.org"
    assert reply_target(split_message(b"From: undisclosed\r\n\r\n"), "bounce@x.org") == "bounce@x.org"


def test_author_of_lower_cases_addresses() -> None:
    author = author_of(split_message(b"From: Bob <Bob@Example.NET>\r\n\r\n"), "BOB@example.net")
    assert author == Author("bob@example.net", "Bob", "bob@example.net")


@pytest.mark.parametrize(
    "from_block",
    [
        b"From: Bob <bob@example.net>\r\nFrom: M <m@evil.example>\r\n",
        b"From: Bob <bob@example.net>, M <m@evil.example>\r\n",
        b"From: <bob@example.net> <m@evil.example>\r\n",
        b"From: bob@example.net (x) <m@evil.example>\r\n",
        b"From: bob@example.net\t<m@evil.example>\r\n",
        b"From: Bob <bob@example.net> m@evil.example\r\n",
        b"From: <bob@example.net>@evil.example\r\n",
        b"From: <bob@example.net> bob@example.net.evil.example\r\n",
        b"From: <@evil.example:bob@example.net>\r\n",
        b"From: grp: bob@example.net, m@evil.example;\r\n",
    ],
)
def test_author_of_ambiguous_from_names_no_author(from_block: bytes) -> None:
    # GIVEN a From that parsers may read differently: two From fields, two mailboxes, or a second address
    # beside the one our parser picks (SES's DMARC verdict speaks for the From domain that SES's parser chose,
    # which may be the attacker's own, DMARC-passing domain)
    message = split_message(from_block + b"Subject: Re\r\n\r\nYes\r\n")
    # WHEN the author of the reply is read
    author = author_of(message, "m@evil.example")
    # THEN no From address is taken as the author (only the envelope sender is left to check)
    assert author == Author(None, "", "m@evil.example")


@pytest.mark.parametrize(
    "from_value",
    [
        b"bob@example.net",
        b"Bob Lin <bob@example.net>",
        b'"Lin, Bob" <Bob@Example.NET>',
        b'"bob@example.net" <bob@example.net>',
        b"=?utf-8?q?Bob_Lin?= <bob@example.net>",
        b"bob@example.net (Bob Lin)",
        b"Bob Lin\r\n <bob@example.net>",
    ],
)
def test_author_of_plain_from_names_its_address(from_value: bytes) -> None:
    # GIVEN the From forms members' mail programs write WHEN the author is read THEN the From address is it
    message = split_message(b"From: " + from_value + b"\r\nSubject: Re\r\n\r\nYes\r\n")
    assert author_of(message, None).from_address == "bob@example.net"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Bob Lin", "Bob Lin via team"),
        ("bob@example.net", "A member via team"),
        ("Bob (example.net)", "A member via team"),
        ("", "A member via team"),
        ("=?utf-8?b?5p6X5L+K5YWL?=", "林俊克 via team"),
    ],
)
def test_member_display_name_never_shows_the_address(name: str, expected: str) -> None:
    author = Author("bob@example.net", name, "bob@example.net")
    assert member_display_name(author, "bob@example.net", "team", "{member} via {alias}") == expected


def test_member_display_name_follows_the_template() -> None:
    author = Author("bob@example.net", "Bob", None)
    assert member_display_name(author, "bob@example.net", "team", "{alias} team ({member})") == "team team (Bob)"


def head_for_carol(message: SplitMessage, **options: Any) -> bytes:
    """The header block of Bob's reply (through team) for the outside sender Carol."""
    return build_reply_head(
        message,
        domain=DOMAIN,
        alias="team",
        display_name="Bob Lin via team",
        to_address="carol@customer.example",
        **options,
    )


def test_reply_head_keeps_only_the_conversation_and_mime_fields() -> None:
    # WHEN Bob's reply is given the header block for the outside sender
    message = split_message(REPLY)
    head = head_for_carol(message, strip=["[dev]"], now=datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    out = parsed(head + bytes(message.body))
    # THEN ours: marker, From the alias, To the outside address, our Date; theirs: only the allow-list
    assert [name.lower() for name in out] == [
        "x-ses-forwarder",
        "from",
        "to",
        "date",
        "subject",
        "in-reply-to",
        "references",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    ]
    assert str(out["From"]) == "Bob Lin via team <team@dev.aws-educate.tw>"
    assert str(out["To"]) == "carol@customer.example"
    assert str(out["Date"]) == "Mon, 30 Nov 2026 02:00:00 +0000"
    assert str(out["Subject"]) == "Re: Booth"  # our [dev] tag, which Carol never saw, is gone
    assert b"<q@customer.example>\r\n <fwd@email.amazonses.com>" in head  # folding kept byte for byte
    assert b"example.net" not in head and b"provider" not in head.lower()
    assert "Reply-To" not in out


def test_reply_head_for_the_team_copy_has_reply_to() -> None:
    head = build_reply_head(
        split_message(REPLY),
        domain=DOMAIN,
        alias="team",
        display_name="Bob Lin via team",
        to_address="team+r-x@dev.aws-educate.tw",
        to_name="carol at customer.example via team",
        reply_address="team+r-x@dev.aws-educate.tw",
    )
    out = parsed(head)
    assert str(out["Reply-To"]) == '"carol at customer.example via team" <team+r-x@dev.aws-educate.tw>'
    assert str(out["To"]) == '"carol at customer.example via team" <team+r-x@dev.aws-educate.tw>'
    assert str(out["Subject"]) == "Re: [dev] Booth"


def test_reply_head_keeps_lf_line_endings_and_one_of_each_field() -> None:
    raw = b"From: b@x.org\nSubject: one\nSubject: two\nMIME-Version: 1.0\n\nbody\n"
    head = build_reply_head(split_message(raw), domain=DOMAIN, alias="t", display_name="B via t", to_address="c@y.org")
    assert b"\r" not in head
    assert head.count(b"Subject:") == 1 and b"Subject: one\n" in head


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        # Outlook in Taiwan: the whole Subject as one Big5 word, our tags inside it
        (b"=?big5?B?" + base64.b64encode("回覆: [dev] 會議記錄".encode("big5")) + b"?=", "回覆: 會議記錄"),
        # Apple Mail: the whole Subject as UTF-8 words, folded, the spam tag too
        (
            b"=?utf-8?B?"
            + base64.b64encode(b"Re: [SPAM] [dev] ")
            + b"?=\r\n =?utf-8?B?"
            + base64.b64encode("會議記錄".encode())
            + b"?=",
            "Re: 會議記錄",
        ),
        # Gmail: only the non-ASCII words encoded (the tags are found in the bytes, which stay as they came)
        (b"Re: [dev] =?UTF-8?B?5pyD6K2w6KiY6YyE?=", "Re: 會議記錄"),
    ],
)
def test_reply_head_strips_our_tags_from_an_encoded_subject(subject: bytes, expected: str) -> None:
    # GIVEN a member's reply whose mail program wrote its non-ASCII Subject as encoded words
    message = split_message(REPLY.replace(b"Subject: Re: [dev] Booth", b"Subject: " + subject))
    # WHEN it is given the header block for the outside sender
    head = head_for_carol(message, strip=["[dev]", "[SPAM]"])
    # THEN the tags the outside sender never saw are gone from the Subject they read
    assert str(parsed(head + bytes(message.body))["Subject"]) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        # The outside sender's own `Re: Booth`, forwarded as `[dev] Re: Booth`, answered
        (b"Re: [dev] Re: Booth", "Re: Booth"),
        (b"RE: [SPAM] [dev] re: Booth", "RE: Booth"),
        (b"AW: [dev] Re: Booth", "AW: Booth"),
        # Outlook in Taiwan: one Big5 word, Chinese reply prefix before our tag, the sender's English one after it
        (b"=?big5?B?" + base64.b64encode("回覆: [dev] RE: 會議記錄".encode("big5")) + b"?=", "回覆: 會議記錄"),
        # Not ours to change: a tag with no reply prefix on both sides, or prefixes that came without our tag
        (b"Re: [dev] Booth", "Re: Booth"),
        (b"[dev] Re: Booth", "Re: Booth"),
        (b"Re: Re: Booth", "Re: Re: Booth"),
        (b"Re: [dev] Regarding: Booth", "Re: Regarding: Booth"),
    ],
)
def test_reply_head_takes_out_the_reply_prefix_our_tag_stood_before(subject: bytes, expected: str) -> None:
    # GIVEN a member's answer to the forward of an answer: the sender's `Re:` after our tag, the member's before it
    message = split_message(REPLY.replace(b"Subject: Re: [dev] Booth", b"Subject: " + subject))
    # WHEN it is given the header block for the outside sender
    head = head_for_carol(message, strip=["[dev]", "[SPAM]"])
    # THEN the Subject has one reply prefix, as the outside sender's mail program would write it: not one more with
    # every answer the thread goes back and forth
    assert str(parsed(head + bytes(message.body))["Subject"]) == expected


def test_reply_target_of_a_reply_to_written_unencoded_in_big5_is_its_address() -> None:
    # GIVEN an outside mail whose raw Big5 Reply-To name 許功蓋 has backslash trail bytes, its text declared Big5
    raw = "From: 系統管理員 <admin@ntu.example>\r\nReply-To: 許功蓋 <xu@ntu.example>\r\n".encode("big5")
    message = split_message(raw + b"Content-Type: text/plain; charset=big5\r\n\r\n" + "內容".encode("big5"))
    # WHEN the reply address is made for it THEN it stands for the Reply-To address, as the forward's Reply-To says
    assert reply_target(message, "bounce@ntu.example") == "xu@ntu.example"


def test_build_reply_head_leaves_out_the_ids_of_the_members_provider_only() -> None:
    # GIVEN a member at gmail.com answering their own mail in a thread with an outside sender at gmail.com too,
    # and one at example.net answering theirs
    thread = (
        b"From: M <m@x.org>\r\nIn-Reply-To: <own@mail.gmail.com>\r\n"
        b"References: <q@mail.gmail.com>\r\n <fwd@email.amazonses.com> <own@mail.gmail.com>\r\n\r\nbody"
    )
    message = split_message(thread.replace(b"mail.gmail.com", b"mail.example.net"))
    same = split_message(thread)

    # WHEN their reply heads are built
    hidden = hidden_domains(("bob@example.net", None), "carol@customer.example")
    head = build_reply_head(message, domain=DOMAIN, alias="team", display_name="M", to_address="c@y", hidden=hidden)
    shared = hidden_domains(("bob@gmail.com",), "carol@Gmail.com")
    kept = build_reply_head(same, domain=DOMAIN, alias="team", display_name="M", to_address="c@y", hidden=shared)

    # THEN ids of the member's domain and its subdomains go (an In-Reply-To of no other id with them), others stay
    assert hidden == {"example.net"}
    assert b"example.net" not in head and b"in-reply-to" not in head.lower()
    assert b"References: <fwd@email.amazonses.com>\r\n" in head
    # AND a domain the outside sender shares gives nothing away: its ids stay for threading
    assert shared == frozenset()
    assert b"In-Reply-To: <own@mail.gmail.com>" in kept and b"<q@mail.gmail.com>" in kept
