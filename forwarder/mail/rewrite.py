"""Header surgery: turn a received message into the message a member receives.

Only header fields are touched; the body bytes are passed through. Every value we write ourselves
is quoted or RFC 2047-encoded by the stdlib, after control characters have been removed, so nothing
taken from the received message can start a new header line or add an address.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from forwarder.mail import headers as h
from forwarder.mail.addresses import (
    display_name,
    field_addresses,
    format_address,
    original_authors,
    sender_of,
)
from forwarder.mail.fields import DECODE_HEAD, WSP, decode_words, encode_words, render_field, repair_field
from forwarder.mail.message import HeaderField, SplitMessage
from forwarder.mail.participants import RECIPIENT_FIELDS, masked_field


@dataclass(frozen=True, slots=True)
class RewriteOptions:
    """What the environment adds to each forwarded message."""

    domain: str
    subject_prefix: str | None = None
    spam_tag: str | None = None
    # A subject tag for mail to a reply address that was not relayed (forwarder/relay.py), e.g. `[not relayed]`.
    mark: str | None = None


@dataclass(slots=True)
class RewriteReport:
    """What the rewrite changed beyond From/Reply-To, for the log (names only, never values)."""

    removed: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    encoded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    sanitized: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rewritten:
    """The new header block (blank line included) for `message`, whose body is untouched."""

    head: bytes
    message: SplitMessage
    report: RewriteReport

    def to_bytes(self) -> bytes:
        """The whole forwarded message (a copy: the service writes the head into its buffer instead)."""
        return self.head + bytes(self.message.raw[self.message.body_start :])


def is_own_output(message: SplitMessage, domain: str) -> bool:
    """True when the message carries our marker for `domain`: it went through this forwarder."""
    return any(domain in marker.value.lower().replace(",", " ").split() for marker in message.all(h.MARKER.lower()))


def rewrite_headers(
    message: SplitMessage,
    alias: str,
    options: RewriteOptions,
    envelope_sender: str | None = None,
    reply_address: str | None = None,
    masked: Collection[str] = (),
    masked_as: str | None = None,
) -> Rewritten:
    """Build the header block a member receives; the body is passed through untouched.

    `reply_address` (team mode): Reply-To is that one address, which stands for the sender via this alias,
    and the original Message-ID is added to References, so that a member's reply, whose References the
    member's mail program builds from ours, still names the message the outside sender knows (SES gives
    every forward its own Message-ID); the outside addresses in `masked` (lower case: the reply address stands
    for them, forwarder/mail/participants.py) are written as the reply address in To and Cc, so that a Reply all
    goes through the relay too. Without it (direct mode), Reply-To names the sender; `masked_as` (team mode, a mail
    whose replies go straight to a member or the alias) is the reply address the `masked` ones are written as then.
    """
    newline = message.newline
    report = RewriteReport()
    authors = original_authors(message, envelope_sender)
    mailbox = format_address(display_name(sender_of(authors), alias), f"{alias}@{options.domain}", newline)
    from_field = render_field("From", mailbox, newline)
    reply_field = _reply_to_field(message, authors, newline, reply_address, masked)
    thread_id = _thread_id(message) if reply_address is not None else None
    # Our fields go first: a parser that gives up at a malformed received field still sees them.
    out: list[bytes] = [render_field(h.MARKER, options.domain, newline), from_field, reply_field or b""]
    seen: set[str] = set()
    prefixes = [tag for tag in (options.mark, options.spam_tag, options.subject_prefix) if tag]
    first_from = message.first(h.FROM)

    for item in message.fields:
        key = item.key
        if key == h.FROM:
            if item is not first_from:
                report.duplicates.append(item.name)
            continue
        if (
            key in h.REMOVED
            or (key == h.REPLY_TO and reply_field is not None)
            or (reply_address is not None and key in h.TEAM_REMOVED)
        ):
            report.removed.append(item.name)
            continue
        if key in h.SINGLE_INSTANCE and key in seen:
            report.duplicates.append(item.name)
            continue
        seen.add(key)
        raw = item.raw
        if key == h.SUBJECT and prefixes:
            raw = prefixed_subject(item, prefixes, newline)
        if key == h.REFERENCES and thread_id is not None:
            raw = _referenced(item, thread_id, newline)
        if masked and (mask := masked_as or reply_address) is not None and key in RECIPIENT_FIELDS:
            raw = masked_field(item, message, masked, mask, alias, newline) or raw
        kept, repairs = repair_field(item.name, raw, newline)
        for repair in repairs:
            getattr(report, repair).append(item.name)
        if kept is not None:
            out.append(kept)

    if prefixes and h.SUBJECT not in seen:
        out.append(render_field("Subject", encode_words(" ".join(prefixes), newline), newline))
    if thread_id is not None and h.REFERENCES not in seen:
        out.append(render_field("References", thread_id, newline))
    out.append(newline)
    return Rewritten(b"".join(out), message, report)


def _reply_to_field(
    message: SplitMessage,
    authors: list[tuple[str, str]],
    newline: bytes,
    reply_address: str | None = None,
    masked: Collection[str] = (),
) -> bytes | None:
    """Our Reply-To line: the reply address in team mode; in direct mode None when the original Reply-To names
    an address (it is kept as is), else the authors."""
    original = message.first(h.REPLY_TO)
    if reply_address is not None:
        # Named after whom it reaches, as From is named after who wrote: the member sees whom they answer (the
        # first outside address the reply address stands for, not the alias itself of a Reply-To naming both).
        pairs = (field_addresses(original, message) if original is not None else []) or authors
        target = [pair for pair in pairs if pair[1].lower() in masked][:1] or pairs[:1]
        name = display_name(sender_of(target), alias_of_reply(reply_address))
        return render_field("Reply-To", format_address(name, reply_address, newline), newline)
    if original is not None and field_addresses(original, message):
        return None
    pairs = authors
    if not pairs:
        return b""
    # One mailbox a line: a From of many authors, each on a folded line of its own, would else make one
    # Reply-To line over 998 octets (SES refuses the message). render_field turns "\n" into the newline.
    value = ",\n ".join(format_address(name, address, newline) for name, address in pairs)
    return render_field("Reply-To", value, newline)


def alias_of_reply(reply_address: str) -> str:
    """`team` of `team+r-...@domain`."""
    return reply_address.partition("@")[0].partition("+")[0]


def _thread_id(message: SplitMessage) -> str | None:
    """The original `<Message-ID>`, when it has that form and one line's worth of length."""
    field = message.first(h.MESSAGE_ID)
    value = field.value.strip() if field is not None else ""
    if not (value.startswith("<") and value.endswith(">") and 2 < len(value) <= 500) or any(
        char.isspace() or not char.isprintable() for char in value
    ):
        return None
    return value


def _referenced(references: HeaderField, thread_id: str, newline: bytes) -> bytes:
    """References with `thread_id` added on a continuation line of its own, unless it is there already."""
    if thread_id in references.value:
        return references.raw
    return references.raw.rstrip(b"\r\n") + newline + b" " + thread_id.encode("ascii") + newline


def prefixed_subject(subject: HeaderField, prefixes: list[str], newline: bytes) -> bytes:
    """The Subject with each prefix it does not already contain put in front, value bytes kept."""
    current = decode_words(subject.value, DECODE_HEAD)  # our prefixes, when there, are at its start
    missing = [prefix for prefix in prefixes if prefix not in current]
    if not missing:
        return subject.raw
    text = " ".join(missing)
    rest = subject.raw_value.lstrip(WSP)
    if not text.isascii() and rest.lstrip(b" \t\r\n").startswith(b"=?"):
        # RFC 2047 6.2: the white space between our encoded word and the subject's first one is not shown, so the
        # space that parts them goes inside ours (`[測試]` before `會議` would read `[測試]會議`).
        text += " "
    lead = encode_words(text, newline).encode("ascii")
    # A subject whose first line is empty goes on after its line break, which reads as the one space.
    gap = b" " if rest and rest[:1] not in (b"\r", b"\n") else b""
    return subject.name.encode("ascii") + b": " + lead + gap + rest + newline
