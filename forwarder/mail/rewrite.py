"""Header surgery: turn a received message into the message a member receives.

Only header fields are touched; the body bytes are passed through. Every value we write ourselves
is quoted or RFC 2047-encoded by the stdlib, after control characters have been removed, so nothing
taken from the received message can start a new header line or add an address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.errors import MessageError
from email.header import Header, decode_header, make_header
from email.utils import formataddr, getaddresses

from forwarder.mail import headers as h
from forwarder.mail.message import HeaderField, SplitMessage, has_long_line

_NAME_LIMIT = 64
_ADDRESS_LIMIT = 100
_REPLY_TO_LIMIT = 20
_BARE_CR = re.compile(rb"\r(?!\n)")
_WSP = b" \t"
# What the stdlib's header parsers raise on hostile input (seen with fuzzed mail).
_PARSER_ERRORS = (MessageError, LookupError, UnicodeError, ValueError, IndexError, TypeError, AttributeError)


@dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote the message: a cleaned display name (may be empty) and address (may be None)."""

    name: str
    address: str | None


@dataclass(frozen=True, slots=True)
class RewriteOptions:
    """What the environment adds to each forwarded message."""

    domain: str
    subject_prefix: str | None = None
    spam_tag: str | None = None


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


def clean_text(text: str, limit: int) -> str:
    """Printable text on one line: control and format characters become spaces, runs collapse."""
    printable = "".join(char if char.isprintable() else " " for char in text)
    single = " ".join(printable.split())
    return single if len(single) <= limit else single[: limit - 1].rstrip() + "…"


def readable_name(name: str, limit: int = _NAME_LIMIT) -> str:
    """A display name as plain text: encoded words decoded, control characters gone, and no `=?` left
    that a lenient mail client could decode a second time."""
    if "=?" in name:
        name = decode_words(name)
    return clean_text(name, limit).replace("=?", "= ?")


def parse_addresses(value: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header value; groups flattened, RFC 2047 decoded.

    Entries without a `local@domain` address are left out; names are `readable_name`s. Never raises.
    """
    flat = clean_text(value, len(value) + 1)
    try:
        from email.policy import default

        header = default.header_factory("from", flat)
        pairs = [(address.display_name, address.addr_spec) for address in header.addresses]
    except _PARSER_ERRORS:
        pairs = getaddresses([flat])
    return [(readable_name(name, 256), address) for name, address in pairs if _looks_like_address(address)]


def _looks_like_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain and "." in domain) and all(
        char.isprintable() and not char.isspace() and char != "\ufffd" for char in address
    )


def original_authors(message: SplitMessage, envelope_sender: str | None) -> list[tuple[str, str]]:
    """(name, address) of who wrote: the first From field with an address, else the envelope sender."""
    for from_field in message.all(h.FROM):
        pairs = parse_addresses(from_field.value)
        if pairs:
            return pairs[:_REPLY_TO_LIMIT]
    if envelope_sender and _looks_like_address(envelope_sender):
        return [("", envelope_sender)]
    return []


def find_sender(message: SplitMessage, envelope_sender: str | None) -> Sender:
    """The original author: the first From address, else the envelope sender."""
    return _sender(original_authors(message, envelope_sender))


def _sender(authors: list[tuple[str, str]]) -> Sender:
    if not authors:
        return Sender("", None)
    name, address = authors[0]
    return Sender(readable_name(name), clean_text(address, _ADDRESS_LIMIT))


def display_name(sender: Sender, alias: str) -> str:
    """`Alice Chen (alice at example.com) via team`: who really wrote, readable but not an address."""
    if sender.address is None:
        return f"{sender.name or 'Unknown sender'} via {alias}"
    spelled = sender.address.replace("@", " at ")
    if not sender.name or sender.name.lower() == sender.address.lower():
        return f"{spelled} via {alias}"
    return f"{sender.name} ({spelled}) via {alias}"


def format_address(name: str, address: str, newline: bytes) -> str:
    """One mailbox, quoted (ASCII) or RFC 2047-encoded (non-ASCII) by the stdlib."""
    name = readable_name(name, _NAME_LIMIT * 4)
    if name.isascii() and address.isascii():
        return formataddr((name, address))
    # RFC 6532 (raw UTF-8) addresses are kept as they came; formataddr only takes ASCII ones.
    encoded = Header(name, "utf-8").encode(linesep=newline.decode()) if name else ""
    return f"{encoded} <{address}>".lstrip()


def is_own_output(message: SplitMessage, domain: str) -> bool:
    """True when the message carries our marker for `domain`: it went through this forwarder."""
    return any(domain in marker.value.lower().replace(",", " ").split() for marker in message.all(h.MARKER.lower()))


def rewrite_headers(
    message: SplitMessage,
    alias: str,
    options: RewriteOptions,
    envelope_sender: str | None = None,
) -> Rewritten:
    """Build the header block a member receives; the body is passed through untouched."""
    newline = message.newline
    report = RewriteReport()
    authors = original_authors(message, envelope_sender)
    mailbox = format_address(display_name(_sender(authors), alias), f"{alias}@{options.domain}", newline)
    from_field = render_field("From", mailbox, newline)
    reply_field = _reply_to_field(message, authors, newline)
    # Our fields go first: a parser that gives up at a malformed received field still sees them.
    out: list[bytes] = [render_field(h.MARKER, options.domain, newline), from_field, reply_field or b""]
    seen: set[str] = set()
    prefixes = [tag for tag in (options.spam_tag, options.subject_prefix) if tag]
    first_from = message.first(h.FROM)

    for item in message.fields:
        key = item.key
        if key == h.FROM:
            if item is not first_from:
                report.duplicates.append(item.name)
            continue
        if key in h.REMOVED or (key == h.REPLY_TO and reply_field is not None):
            report.removed.append(item.name)
            continue
        if key in h.SINGLE_INSTANCE and key in seen:
            report.duplicates.append(item.name)
            continue
        seen.add(key)
        raw = item.raw
        if key == h.SUBJECT and prefixes:
            raw = prefixed_subject(item, prefixes, newline)
        kept = _keep_field(item.name, raw, newline, report)
        if kept is not None:
            out.append(kept)

    if prefixes and h.SUBJECT not in seen:
        out.append(render_field("Subject", _encode_words(" ".join(prefixes), newline), newline))
    out.append(newline)
    return Rewritten(b"".join(out), message, report)


def _reply_to_field(message: SplitMessage, authors: list[tuple[str, str]], newline: bytes) -> bytes | None:
    """None when the original Reply-To names an address (it is kept as is), else our Reply-To line."""
    original = message.first(h.REPLY_TO)
    if original is not None and parse_addresses(original.value):
        return None
    pairs = authors
    if not pairs:
        return b""
    value = ", ".join(format_address(name, address, newline) for name, address in pairs)
    return render_field("Reply-To", value, newline)


def prefixed_subject(subject: HeaderField, prefixes: list[str], newline: bytes) -> bytes:
    """The Subject with each prefix it does not already contain put in front, value bytes kept."""
    current = decode_words(subject.value)
    missing = [prefix for prefix in prefixes if prefix not in current]
    if not missing:
        return subject.raw
    lead = _encode_words(" ".join(missing), newline).encode("ascii")
    rest = subject.raw_value.lstrip(_WSP)
    return subject.name.encode("ascii") + b": " + lead + (b" " + rest if rest else b"") + newline


def decode_words(value: str) -> str:
    """A header value with its RFC 2047 encoded words decoded; the value itself when it cannot be."""
    try:
        return str(make_header(decode_header(value)))
    except _PARSER_ERRORS:
        return value


def _encode_words(text: str, newline: bytes) -> str:
    return text if text.isascii() else Header(text, "utf-8").encode(linesep=newline.decode())


def render_field(name: str, value: str, newline: bytes) -> bytes:
    """A header line we write: `name: value`, folded where the value already folds, ending in newline."""
    line = f"{name}: {value}".encode()
    return line.replace(b"\r\n", b"\n").replace(b"\n", newline) + newline


def _keep_field(name: str, raw: bytes, newline: bytes, report: RewriteReport) -> bytes | None:
    """A received field made safe to resend: no bare CR or NUL, no white space before the colon
    (obsolete syntax that many parsers take for the end of the header block), no line over 998 octets."""
    if b"\0" in raw or _BARE_CR.search(raw) or raw[len(name) : len(name) + 1] != b":":
        raw = _BARE_CR.sub(b" ", raw.replace(b"\0", b" "))
        raw = name.encode("ascii") + b":" + raw[len(name) :].lstrip(b" \t")[1:]
        report.sanitized.append(name)
    if not raw.endswith(b"\n"):
        raw += newline
    if not has_long_line(raw):
        return raw
    folded = fold_field(raw)
    if folded is not None:
        report.folded.append(name)
        return folded
    if name.lower().startswith("x-"):
        report.dropped.append(name)
        return None
    report.encoded.append(name)
    return _encoded_field(name, raw, newline)


def _content_lines(raw: bytes) -> list[bytes]:
    return [line.rstrip(b"\r") for line in raw.rstrip(b"\n").split(b"\n")]


def fold_field(raw: bytes) -> bytes | None:
    """Fold every physical line of a field that is over 998 octets at white space; None if impossible."""
    newline = b"\r\n" if raw.endswith(b"\r\n") else b"\n"
    out: list[bytes] = []
    for line in _content_lines(raw):
        while len(line) > h.MAX_LINE:
            window = line[: h.MAX_LINE + 1]
            cut = max(window.rfind(b" "), window.rfind(b"\t"))
            if cut <= 0 or not line[:cut].strip(_WSP):
                return None
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    if any(not piece.strip(_WSP) for piece in out[1:]):
        return None
    return newline.join(out) + newline


def _encoded_field(name: str, raw: bytes, newline: bytes) -> bytes:
    """An unfoldable field as RFC 2047 encoded words, which fold between words."""
    unfolded = HeaderField(name, raw).unfolded
    try:
        text, charset = unfolded.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, charset = unfolded.decode("latin-1"), "iso-8859-1"
    encoded = Header(text, charset, header_name=name).encode(linesep=newline.decode())
    return render_field(name, encoded, newline)
