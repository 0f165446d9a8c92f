"""A member's reply to a reply address: who wrote it, whether it may go out, and the header block it goes
out with. Pure functions; the relay (forwarder/relay.py) decides and sends.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import AnyStr

from forwarder.mail import headers as h
from forwarder.mail.addresses import clean_text, field_addresses, format_address, parse_addresses, readable_name
from forwarder.mail.fields import decode_words, encode_words, render_field, repair_field
from forwarder.mail.message import HeaderField, SplitMessage
from forwarder.mail.mime import content_type
from forwarder.mail.policy import FAIL, Verdicts

PASS = "PASS"  # noqa: S105 (a verdict, not a password)
FALLBACK_MEMBER_NAME = "A member"
# Every `@` in a From value with what surrounds it up to a delimiter: the addresses written there,
# in angle brackets, quotes, comments or beside them.
_WRITTEN_ADDRESS = re.compile(r'[^\s<>()",;:\[\]]*@[^\s<>()",;:\[\]]*')
# A reply prefix mail programs write before a Subject (English, German, Scandinavian, Dutch; Chinese Outlook's),
# with what follows up to the next word: `Re: `, `AW: `, `回覆: `.
# The ASCII ones are also looked for in a Subject's raw bytes (the Chinese ones appear only in decoded text).
_ASCII_REPLY_WORDS = "re|aw|sv|antw"
_ASCII_REPLY_PREFIX = rf"(?:{_ASCII_REPLY_WORDS})[ \t]*:[ \t]*"
_REPLY_PREFIX = rf"(?:{_ASCII_REPLY_WORDS}|回覆|回复|答复)[ \t]*[:：][ \t]*"
_ENDS_WITH_REPLY = re.compile(rf"(?:^|\s){_REPLY_PREFIX}$", re.IGNORECASE)
_STARTS_WITH_REPLY = re.compile(_REPLY_PREFIX, re.IGNORECASE)
_ENDS_WITH_REPLY_BYTES = re.compile(rf"(?:^|\s){_ASCII_REPLY_PREFIX}$".encode(), re.IGNORECASE)
_STARTS_WITH_REPLY_BYTES = re.compile(_ASCII_REPLY_PREFIX.encode(), re.IGNORECASE)
# A message id in In-Reply-To or References: `<left@right>`.
_MESSAGE_ID = re.compile(rb"<[^<>]*>")


@dataclass(frozen=True, slots=True)
class Author:
    """Who a reply claims to be from: the first From address and the envelope sender (lower case)."""

    from_address: str | None
    from_name: str
    envelope_sender: str | None


def reply_target(
    message: SplitMessage, envelope_sender: str | None, domain: str | None = None, members: Collection[str] = ()
) -> str | None:
    """The one address a reply to `message` goes to: its first Reply-To address, else its first From address,
    else the envelope sender (what `direct` mode's Reply-To names first). With `domain` and `members` (lower
    case), the first address of that field that is neither on `domain` nor a member's, when it has one: a Reply-To
    of the alias itself and an outside address stands for the outside one (were the reply address not made, a
    member's answer would reach it, and Reply all the whole To and Cc, from the member's own mailbox)."""
    for key in (h.REPLY_TO, h.FROM):
        for item in message.all(key):
            pairs = field_addresses(item, message)
            if pairs:
                outside = (a for _, a in pairs if a.rpartition("@")[2].lower() != domain and a.lower() not in members)
                return next(outside, pairs[0][1]) if domain else pairs[0][1]
    return envelope_sender or None


def author_of(message: SplitMessage, envelope_sender: str | None) -> Author:
    """The From address and name and the envelope sender of a reply.

    The From address is only taken when the reply has one From field, naming one mailbox, and every
    address written in it is that mailbox: SES's DMARC verdict speaks for the From domain that SES's
    own parser chose, and where parsers may choose differently (`bob@member (x) <m@evil>`, two From
    fields, two mailboxes) a PASS for the stranger's domain must not vouch for the member our parser
    picked. Without a From address only the envelope sender can make the author a member.
    """
    envelope = (envelope_sender or "").lower() or None
    fields = message.all(h.FROM)
    if len(fields) != 1:
        return Author(None, "", envelope)
    value = fields[0].value
    pairs = parse_addresses(value)
    if len(pairs) != 1:
        return Author(None, "", envelope)
    name, address = pairs[0]
    if any(written.lower() != address.lower() for written in _WRITTEN_ADDRESS.findall(value)):
        return Author(None, "", envelope)
    return Author(address.lower(), name, envelope)


def is_automatic(message: SplitMessage) -> bool:
    """True for a vacation notice, an auto-reply, list traffic (RFC 3834 `Auto-Submitted` other than `no`,
    `Precedence: bulk/junk/list/auto_reply`, `X-Autoreply`, `X-Autorespond`, a list's `List-Id`) or a report: a read
    receipt or delivery report (RFC 6522 `multipart/report`) is a mail program's, not the member's answer, and its body
    names the member's address (`Final-Recipient`), whether or not it says `Auto-Submitted`."""
    if content_type(message.fields).get_content_type() in h.REPORT_TYPES:
        return True
    for item in message.fields:
        key = item.key
        if key == h.AUTO_SUBMITTED and item.value.split(";")[0].strip().lower() not in ("", "no"):
            return True
        if key == h.PRECEDENCE and item.value.strip().lower() in h.AUTOMATIC_PRECEDENCE:
            return True
        if key in h.AUTOREPLY_FIELDS or key == h.LIST_ID:
            return True
    return False


def has_null_sender(envelope_sender: str | None) -> bool:
    """True when the envelope sender is the null reverse-path (`<>`, SES's `source` empty): RFC 5321 keeps it for
    notifications (bounces, delivery and read reports, server-made auto-replies), never a person's mail, and a
    member's server sends its notices so whether or not they say `Auto-Submitted`."""
    return not (envelope_sender or "").strip().strip("<>").strip()


def is_authentic(verdicts: Verdicts, *, from_is_member: bool, envelope_is_member: bool) -> bool:
    """Whether SES's verdicts vouch for the member identity that the reply claims.

    The rule of the issue is "SPF or DKIM PASS, and DMARC not FAIL". SES's DKIM verdict does not say which
    domain signed, and SPF speaks for the envelope sender's domain only, so the verdict must vouch for the
    address that matched the member list:
    - the From address is a member and DMARC PASSes (SPF or DKIM passed aligned with the From domain), or
    - the envelope sender is a member, SPF PASSes for it, and DMARC does not FAIL.
    A DKIM PASS alone with a From of a domain without DMARC could be anyone's signature: not enough.
    """
    if verdicts.dmarc == FAIL or PASS not in (verdicts.spf, verdicts.dkim):
        return False
    if from_is_member and verdicts.dmarc == PASS:
        return True
    return envelope_is_member and verdicts.spf == PASS


def member_display_name(author: Author, member_address: str, alias: str, template: str) -> str:
    """The From display name of a relayed reply, from `template` ({member}, {alias}).

    {member} is the display name the member's own mail program put in From, cleaned. It never shows the
    member's address: a name containing `@`, or the address's domain, is not used (`A member` instead).
    """
    name = readable_name(author.from_name) if author.from_address == member_address else ""
    domain = member_address.rpartition("@")[2].lower()
    if not name or "@" in name or (domain and domain in name.lower()) or member_address.lower() in name.lower():
        name = FALLBACK_MEMBER_NAME
    return clean_text(template.format(member=name, alias=alias), 128)


def strip_prefixes(subject: HeaderField, prefixes: Iterable[str]) -> bytes:
    """The Subject without the tags this forwarder added to the forward it answers (`[dev]`, `[SPAM]`):
    the outside sender never saw them. Removes the first occurrence of each (and, when it stood between two reply
    prefixes, the second of them: `Re: [dev] Re: x` is `Re: x`), other bytes kept.

    Outlook and Apple Mail write a non-ASCII Subject as encoded words whole (`Re: [dev] 會議` as one base64 word):
    a tag found only in the decoded text is removed there, and the Subject is written anew from that text."""
    raw = subject.raw
    colon = raw.index(b":") + 1
    value = raw[colon:]
    encoded: list[str] = []
    for prefix in prefixes:
        tag = prefix.encode()
        at = value.find(tag) if tag else -1
        if at >= 0:
            end = at + len(tag)
            if value[end : end + 1] == b" ":
                end += 1
            rest = _once_replied(value[:at], value[end:], _ENDS_WITH_REPLY_BYTES, _STARTS_WITH_REPLY_BYTES)
            value = value[:at] + rest
        elif prefix:
            encoded.append(prefix)
    stripped = raw[:colon] + value
    if not encoded or b"=?" not in value:
        return stripped
    text = decode_words(HeaderField(subject.name, stripped).value)
    if not any(prefix in text for prefix in encoded):
        return stripped
    for prefix in encoded:
        at = text.find(prefix)
        if at >= 0:
            end = at + len(prefix)
            after = text[end + 1 if text[end : end + 1] == " " else end :]
            text = text[:at] + _once_replied(text[:at], after, _ENDS_WITH_REPLY, _STARTS_WITH_REPLY)
    newline = b"\r\n" if raw.endswith(b"\r\n") else b"\n"
    # Decoded text may hold line breaks (an encoded `=0D=0A`): one line, so the value cannot start a new field.
    return render_field(subject.name, encode_words(clean_text(text, len(text) + 1), newline), newline)


def _once_replied(before: AnyStr, after: AnyStr, ends: re.Pattern[AnyStr], starts: re.Pattern[AnyStr]) -> AnyStr:
    """`after` without its reply prefix when `before` ends with one: a tag taken out from between two (`Re: [dev] Re:
    Booth`, a member answering the forward of the outside sender's own `Re: Booth`) would else leave `Re: Re: Booth`,
    one `Re:` more with every answer the thread goes back and forth."""
    if ends.search(before) and (match := starts.match(after)) is not None:
        return after[match.end() :]
    return after


def hidden_domains(member_addresses: Iterable[str | None], outside_address: str) -> frozenset[str]:
    """The domains of the member's addresses that the outside sender must not learn (not the outside sender's
    own domain: a colleague at the same domain gives nothing away, and that domain's ids thread the mail)."""
    outside = outside_address.rpartition("@")[2].lower()
    domains = {address.rpartition("@")[2].lower() for address in member_addresses if address and "@" in address}
    return frozenset(domain for domain in domains if domain and domain != outside)


def _unrevealing_ids(item: HeaderField, hidden: frozenset[str], newline: bytes) -> bytes | None:
    """In-Reply-To or References without the message ids made by the member's provider (`<...@example.net>`,
    `<...@mail.gmail.com>`): the member's own earlier mail, answered again, names it, and its domain tells the
    outside sender where the member's mailbox is. The outside sender never saw those ids (SES gave each relayed
    reply its own), so threading loses nothing. None when no id is left."""
    ids = _MESSAGE_ID.findall(item.raw[len(item.name) + 1 :])
    kept = [
        mid
        for mid in ids
        if not any(
            (right := mid[1:-1].rpartition(b"@")[2].lower().decode("ascii", "replace")) == domain
            or right.endswith("." + domain)
            for domain in hidden
        )
    ]
    if len(kept) == len(ids):
        return item.raw
    if not kept:
        return None
    return item.name.encode("ascii") + b": " + (newline + b" ").join(kept) + newline


def build_reply_head(
    message: SplitMessage,
    *,
    domain: str,
    alias: str,
    display_name: str,
    to_address: str,
    to_name: str = "",
    cc: Sequence[str] = (),
    reply_address: str | None = None,
    strip: Sequence[str] = (),
    hidden: frozenset[str] = frozenset(),
    now: datetime | None = None,
) -> bytes:
    """The header block of a relayed reply (blank line included); the body bytes follow unchanged.

    Ours first: the marker (loop guard), From = the alias with `display_name`, To = `to_address`, Cc = `cc` (the
    other outside people of the conversation; mailboxes as written in the field, one a line), Date, and
    Reply-To = `reply_address` when given (the team's copies: anyone can continue the thread). Then only
    the allow-listed fields of the member's message (`headers.REPLY_ALLOWED`), each at most once; In-Reply-To
    and References without the message ids of the `hidden` domains (`hidden_domains`).
    """
    newline = message.newline
    out = [
        render_field(h.MARKER, domain, newline),
        render_field("From", format_address(display_name, f"{alias}@{domain}", newline), newline),
        render_field("To", format_address(to_name, to_address, newline), newline),
        *([render_field("Cc", ",\n ".join(cc), newline)] if cc else []),
        render_field("Date", format_datetime(now or datetime.now(UTC)), newline),
    ]
    if reply_address:
        name = to_name if reply_address == to_address else ""
        out.append(render_field("Reply-To", format_address(name, reply_address, newline), newline))
    seen: set[str] = set()
    for item in message.fields:
        if item.key not in h.REPLY_ALLOWED or item.key in seen:
            continue
        seen.add(item.key)
        raw: bytes | None = strip_prefixes(item, strip) if item.key == h.SUBJECT and strip else item.raw
        if item.key in (h.IN_REPLY_TO, h.REFERENCES) and hidden:
            raw = _unrevealing_ids(item, hidden, newline)
        if raw is None:
            continue
        kept, _ = repair_field(item.name, raw, newline)
        if kept is not None:
            out.append(kept)
    out.append(newline)
    return b"".join(out)
