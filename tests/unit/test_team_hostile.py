"""Team mode on mail no one has seen: the members' copy of a hostile header block stays sendable, and a Reply all on
it (the stdlib's reading of its To and Cc, as a mail program's) reaches nobody outside but through the reply
address."""

from __future__ import annotations

from email.utils import getaddresses

from hypothesis import HealthCheck, given, settings

from forwarder.mail.message import split_message
from forwarder.mail.participants import outside_people
from forwarder.mail.reply import reply_target
from forwarder.mail.rewrite import RewriteOptions, rewrite_headers
from tests.hostile import assert_sendable, header_blocks

DOMAIN = "dev.aws-educate.tw"
REPLY = f"team+r-aaaaaaaaaaaa-bbbbbbbbbbbbbbbb@{DOMAIN}"
MEMBER = "member@example.org"
HOSTILE = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _answered(raw: bytes) -> list[str]:
    """The addresses a mail program's Reply all writes to from To and Cc, as the stdlib's lenient reader sees them."""
    newline = b"\r\n" if raw[: raw.find(b"\n") + 1].endswith(b"\r\n") else b"\n"
    head = raw.partition(newline + newline)[0].decode("utf-8", "replace")
    values: list[str | None] = []
    for line in head.split(newline.decode()):
        if line[:1] in (" ", "\t"):
            if values and values[-1] is not None:
                values[-1] += line
        else:
            name, _, value = line.partition(":")
            values.append(value if name.lower() in ("to", "cc") else None)
    return [
        address.lower()
        for _, address in getaddresses([value for value in values if value is not None])
        if "@" in address
    ]


@HOSTILE
@given(header_blocks)
def test_team_copy_of_a_hostile_header_block_is_sendable_and_masks_the_outside_people(
    mail: tuple[bytes, bytes, bytes],
) -> None:
    # GIVEN a header block of arbitrary fields, from an outside sender
    head, separator, body = mail
    message = split_message(b"From: alice@x.org\r\n" + head + separator + body)
    target = reply_target(message, None) or "alice@x.org"
    masked = {target.lower(), *outside_people(message, target, DOMAIN, {MEMBER})}
    # WHEN the members' copy is written in team mode
    out = rewrite_headers(message, "team", RewriteOptions(domain=DOMAIN), None, REPLY, masked).head
    # THEN SES would accept its header block (the service shortens the body's long lines), and a Reply all on it
    # writes to no outside address but the reply address
    assert_sendable(out)
    leaked = [a for a in _answered(out) if a != REPLY and not a.endswith("@" + DOMAIN) and a != MEMBER]
    assert not leaked, leaked
