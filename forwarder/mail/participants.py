"""The outside people of a conversation in team mode, and how the members' copy names them.

A member's Reply all answers the Reply-To and everyone in To and Cc. In team mode the Reply-To is the reply
address; an outside address left in To or Cc would get the member's answer straight from the member's own
mailbox (their address, their provider), around the relay. So the reply address stands for every outside
address the sender wrote to: the one a reply goes to (`reply_target`) and the others (`others`), and in the
members' copy each of them in To and Cc is written as the reply address, named after whom it stands for
(`"Bob Lin (bob.lin at example.net) via team" <team+r-...@domain>`). A relayed reply goes to the first and,
in Cc, to the others, from the alias.

Addresses on our domain (the alias itself, other aliases) and the alias's members stay as written: mail to
them reaches the members through the forwarder anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import islice

from forwarder.mail import headers as h
from forwarder.mail.addresses import display_name, field_addresses, format_address, sender_of
from forwarder.mail.fields import render_field
from forwarder.mail.message import HeaderField, SplitMessage
from forwarder.mail.routing import is_valid_address

# With the first outside address, SES's 50 recipients of one send.
MAX_OTHERS = 49
RECIPIENT_FIELDS = (h.TO, h.CC)


def outside_people(message: SplitMessage, target: str, domain: str, members: Collection[str]) -> tuple[str, ...]:
    """Every outside address besides `target` that a Reply all to `message` would write to, lower case, in order,
    once each: the rest of the field `target` came from (Reply-To, else From), then To and Cc. Not on `domain`,
    not a member (`members` lower case). The members' copy masks all of them: one left as written (the 50th, or
    one SES cannot send to, `"bob smith"@z.net`) would get a Reply all from the member's own mailbox."""
    seen = {target.lower()}
    found: list[str] = []
    first = h.REPLY_TO if any(field_addresses(item, message) for item in message.all(h.REPLY_TO)) else h.FROM
    for key in (first, *RECIPIENT_FIELDS):
        for item in message.all(key):
            for _, address in field_addresses(item, message):
                lowered = address.lower()
                if lowered in seen or lowered.rpartition("@")[2] == domain or lowered in members:
                    continue
                seen.add(lowered)
                found.append(lowered)
    return tuple(found)


def relayed(people: Sequence[str]) -> tuple[str, ...]:
    """Of the `outside_people`, those a relayed reply goes to: only addresses SES can send to, at most
    `MAX_OTHERS`."""
    return tuple(islice((address for address in people if is_valid_address(address)), MAX_OTHERS))


def masked_field(
    item: HeaderField, message: SplitMessage, masked: Collection[str], reply_address: str, alias: str, newline: bytes
) -> bytes | None:
    """To or Cc with each address in `masked` (lower case) written as `reply_address`, named after it; None when
    the field names none of them and holds nothing unread (it is kept as it came). Written anew, one mailbox a
    line: group syntax, comments and what could not be read as an address are not kept."""
    # Always parsed: a byte search for the address would miss the forms a mail program reads as the same one
    # (`"bob"@z.net`, `bob(work)@z.net`, an address folded over two lines) and leave them unmasked.
    pairs = field_addresses(item, message)
    # More `@` than addresses read: something there that we cannot read as an address (`"pat smith"@z.net`) but a
    # mail program may answer. It cannot be masked, so the field is written without it.
    unread = item.value.count("@") > len(pairs)
    if not unread and not any(address.lower() in masked for _, address in pairs):
        return None
    mailboxes = [
        format_address(display_name(sender_of([(name, address)]), alias), reply_address, newline)
        if address.lower() in masked
        else format_address(name, address, newline)
        for name, address in pairs
    ]
    # RFC 5322's empty group when nobody is left: the field keeps its syntax.
    return render_field(item.name, ",\n ".join(mailboxes) or "undisclosed-recipients:;", newline)
