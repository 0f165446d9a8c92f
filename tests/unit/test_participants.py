"""The outside people of a conversation in team mode (forwarder/mail/participants.py) and their masking in To/Cc."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Collection

import pytest

from forwarder.mail.message import SplitMessage, split_message
from forwarder.mail.participants import MAX_OTHERS, outside_people, relayed
from forwarder.mail.rewrite import RewriteOptions, rewrite_headers

DOMAIN = "dev.aws-educate.tw"
REPLY = f"team+r-aaaaaaaaaaaa-bbbbbbbbbbbbbbbb@{DOMAIN}"
MEMBERS = frozenset({"yating.chen@example.com"})


def others(message: SplitMessage, target: str, domain: str, members: Collection[str]) -> tuple[str, ...]:
    """The outside addresses besides `target` that a relayed reply goes to in Cc (as the relay reads them)."""
    return relayed(outside_people(message, target, domain, members))


def head(fields: str) -> bytes:
    return (fields.replace("\n", "\r\n") + "\r\n\r\nbody\r\n").encode()


@pytest.mark.parametrize(
    ("fields", "target", "expected"),
    [
        # To and Cc outside people, in order; the alias, another alias and a member stay out
        (
            f"From: Alice <alice@x.org>\nTo: team@{DOMAIN}, Dan <dan@y.org>\nCc: Bob <bob@z.net>, mkt@{DOMAIN},"
            " yating.chen@example.com",
            "alice@x.org",
            ("dan@y.org", "bob@z.net"),
        ),
        # the other Reply-To addresses (Reply all answers Reply-To, not From)
        (
            f"From: alice@x.org\nReply-To: desk@x.org, Carol <carol@x.org>\nTo: team@{DOMAIN}",
            "desk@x.org",
            ("carol@x.org",),
        ),
        # a From of two authors and no Reply-To: the second author
        (f"From: alice@x.org, eve@x.org\nTo: team@{DOMAIN}", "alice@x.org", ("eve@x.org",)),
        # case, repeats, the target itself, and what SES cannot send to
        (
            f"From: alice@x.org\nTo: team@{DOMAIN}, BOB@z.net\nCc: bob@z.net, ALICE@x.org, broken@",
            "alice@x.org",
            ("bob@z.net",),
        ),
        (f"From: alice@x.org\nTo: team@{DOMAIN}", "alice@x.org", ()),
    ],
)
def test_others_are_the_outside_addresses_a_reply_all_writes_to(fields: str, target: str, expected: tuple) -> None:
    assert others(split_message(head(fields)), target, DOMAIN, MEMBERS) == expected


def test_others_stop_at_what_one_send_takes() -> None:
    cc = ", ".join(f"p{n}@x.org" for n in range(80))
    found = others(split_message(head(f"From: alice@x.org\nTo: team@{DOMAIN}\nCc: {cc}")), "alice@x.org", DOMAIN, ())
    assert len(found) == MAX_OTHERS and found[0] == "p0@x.org"


def test_rewrite_team_mode_masks_the_outside_people_in_to_and_cc() -> None:
    # GIVEN Alice writes to the alias with Bob in Cc (and the alias and a member)
    raw = head(
        f"From: Alice <alice@x.org>\nTo: team@{DOMAIN}, alice@x.org\n"
        "Cc: Bob Lin <bob@z.net>,\n yating.chen@example.com\nSubject: Booth"
    )
    # WHEN the members' copy is written in team mode
    out = rewrite_headers(
        split_message(raw), "team", RewriteOptions(domain=DOMAIN), None, REPLY, masked={"alice@x.org", "bob@z.net"}
    ).to_bytes()
    # THEN Reply all reaches nobody outside but through the reply address: each outside mailbox is the reply address,
    # named after whom it stands for; our own addresses and the member stay
    message = email.message_from_bytes(out, policy=email.policy.default)
    to = [(a.display_name, a.addr_spec) for a in message["To"].addresses]
    cc = [(a.display_name, a.addr_spec) for a in message["Cc"].addresses]
    assert to == [("", f"team@{DOMAIN}"), ("alice at x.org via team", REPLY)]
    assert cc == [("Bob Lin (bob at z.net) via team", REPLY), ("", "yating.chen@example.com")]
    assert b"bob@z.net" not in out and b"alice@x.org" not in out


def test_rewrite_keeps_to_and_cc_byte_for_byte_without_outside_people() -> None:
    raw = head(f"From: Alice <alice@x.org>\nTo:  team@{DOMAIN} (the team)\nCc: mkt@{DOMAIN}")
    out = rewrite_headers(
        split_message(raw), "team", RewriteOptions(domain=DOMAIN), None, REPLY, masked={"alice@x.org"}
    ).to_bytes()
    assert f"\r\nTo:  team@{DOMAIN} (the team)\r\nCc: mkt@{DOMAIN}\r\n".encode() in out


def test_rewrite_direct_mode_never_masks() -> None:
    raw = head(f"From: Alice <alice@x.org>\nTo: team@{DOMAIN}\nCc: bob@z.net")
    out = rewrite_headers(split_message(raw), "team", RewriteOptions(domain=DOMAIN), masked={"bob@z.net"}).to_bytes()
    assert b"\r\nCc: bob@z.net\r\n" in out


@pytest.mark.parametrize(
    "cc",
    [
        '"bob"@z.net',  # a quoted local part that needs no quotes
        "bob(work)@z.net",  # a comment inside the address
        "Bob <bob@z.\n net>",  # an address folded over two lines
        "Bob <BOB@Z.NET>",
    ],
)
def test_rewrite_team_mode_masks_an_outside_address_written_otherwise(cc: str) -> None:
    # GIVEN Bob in Cc, written in a form whose bytes are not `bob@z.net` but which a mail program answers as it
    raw = head(f"From: Alice <alice@x.org>\nTo: team@{DOMAIN}\nCc: {cc}")
    message = split_message(raw)
    masked = {"alice@x.org", *others(message, "alice@x.org", DOMAIN, MEMBERS)}
    # WHEN the members' copy is written in team mode
    out = rewrite_headers(message, "team", RewriteOptions(domain=DOMAIN), None, REPLY, masked=masked).to_bytes()
    # THEN a Reply all on it reaches Bob only through the reply address
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    assert [a.addr_spec for a in parsed["Cc"].addresses] == [REPLY]
