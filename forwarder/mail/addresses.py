"""Addresses and display names: who wrote a message, and how we name them in the fields we write.

Every name taken from a received message is decoded, cleaned of control characters and shortened here,
then quoted or RFC 2047-encoded by the stdlib: nothing from the message can add a line or an address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import _encoded_words  # type: ignore[attr-defined]  # the parser's own decoder; no stubs
from email.utils import formataddr, getaddresses
from string import hexdigits

from forwarder.mail import headers as h
from forwarder.mail.fields import DECODE_HEAD, PARSER_ERRORS, decode_words, join_words, read_charset, utf8_words
from forwarder.mail.message import HeaderField, SplitMessage

_NAME_LIMIT = 64
_ADDRESS_LIMIT = 100
_REPLY_TO_LIMIT = 20
# RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets. A longer "address" reaches no one,
# and written into our Reply-To it would make a line over 998 octets, which SES refuses.
_MAILBOX_OCTETS = 254

# The common one-mailbox values that `parse_addresses` reads without the stdlib's full address parser
# (email.policy's header_factory, about half a millisecond per value): `local@domain`, `<local@domain>`,
# `Name <local@domain>`, `"Name" <local@domain>`, `=?charset?B?...?= <local@domain>`. Only ASCII atoms
# (without `=` and `?`, which could start an encoded word), dot-atom addresses and one encoded word or a
# quoted string without escapes or encoded words: for these the full parser's result is known (see
# `_simple_mailbox`), and tests/unit/test_addresses.py compares both on generated values. Anything else
# goes to the full parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+"
_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_SIMPLE_MAILBOX = re.compile(
    rf"(?P<bare>{_ADDR})"
    rf"|(?:(?P<atoms>{_ATOM}(?: {_ATOM})*)"
    r'|"(?P<quoted>[ !#-\[\]-~]+)"'
    r"|(?P<word>=\?[A-Za-z0-9_-]+\?[BbQq]\?[!->@-~]*\?=)"
    rf")? ?<(?P<angle>{_ADDR})>"
)
_WSP_RUN = re.compile(r"[ \t]+")


@dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote the message: a cleaned display name (may be empty) and address (may be None)."""

    name: str
    address: str | None


# The zero-width non-joiner and joiner are format characters that spell words (Persian `محمد‌رضا`, Indic conjuncts)
# and emoji (`👩‍💻`): made spaces, a name would read otherwise. Neither ends a line nor reorders text.
_JOINERS = frozenset("\u200c\u200d")


def clean_text(text: str, limit: int) -> str:
    """Printable text on one line: control and format characters (but the joiners) become spaces, runs collapse."""
    printable = (
        text
        if text.isprintable()
        else "".join(char if char.isprintable() or char in _JOINERS else " " for char in text)
    )
    single = " ".join(printable.split())
    return single if len(single) <= limit else single[: limit - 1].rstrip() + "…"


def readable_name(name: str, limit: int = _NAME_LIMIT) -> str:
    """A display name as plain text: encoded words decoded, control characters gone, and no `=?` left
    that a lenient mail client could decode a second time."""
    if "=?" in name:
        name = decode_words(name, DECODE_HEAD)  # shown shortened to `limit` characters
    return clean_text(name, limit).replace("=?", "= ?")


def parse_addresses(value: str, full: bool = True) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header value; groups flattened, RFC 2047 decoded.

    Entries without a `local@domain` address are left out; names are `readable_name`s. Never raises.
    `full=False`: never the stdlib's full parser (`field_addresses`, past a message's budget for it).
    """
    flat = clean_text(value, len(value) + 1)
    pairs = _parse(flat, full)
    if "=?" in flat:
        # The joined words change names only: were an address read otherwise, the value is read as it came.
        joined = _parse(join_words(flat), full)
        if [address for _, address in joined] == [address for _, address in pairs]:
            pairs = joined
    if "(" in flat and any(not name for name, _ in pairs):
        pairs = _comment_names(flat, pairs)
    return [(readable_name(name, 256), address) for name, address in pairs if _looks_like_address(address)]


def _comment_names(flat: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`pairs` with the RFC 822 form `local@domain (Name)` (cron, scripts, old mailers) named by its comment, as
    mail programs and the stdlib's `getaddresses` read it; the full parser leaves the comment out. Only when both
    readings find the same addresses."""
    try:
        compat = getaddresses([flat])
    except PARSER_ERRORS:
        return pairs
    if [address for _, address in compat] != [address for _, address in pairs]:
        return pairs
    return [(name or comment, address) for (name, address), (comment, _) in zip(pairs, compat, strict=True)]


def _parse(flat: str, full: bool = True) -> list[tuple[str, str]]:
    simple = _simple_mailbox(flat)
    if simple is not None:
        return [simple]
    return _full_parse(flat) if full else _compat_parse(flat)


# The stdlib's full parser copies the rest of the value at each token: its time grows with the square of the
# value's length (a 340 KB From of encoded words takes half a minute, past Lambda's timeout, on every retry). No
# real address field comes near this; longer ones are read by `getaddresses`, whose time grows with the length.
_FULL_PARSE_LIMIT = 16_384
# Below that limit the full parser still takes seconds on a value of many small tokens (`(a)(a)...`, `,,,`): a mail of
# dozens of such fields (From, or To and Cc in team mode) would keep Lambda past its timeout on every retry. So each
# message's address fields are read by it up to this many characters in all, the rest by `getaddresses`.
_FULL_PARSE_BUDGET = _FULL_PARSE_LIMIT


def _full_parse(flat: str) -> list[tuple[str, str]]:
    """The stdlib's address parser (email.policy.default), with `getaddresses` for what it refuses and for values
    longer than `_FULL_PARSE_LIMIT`."""
    if len(flat) > _FULL_PARSE_LIMIT:
        return _compat_parse(flat)
    try:
        from email.policy import default

        header = default.header_factory("from", flat)
        return [(address.display_name, address.addr_spec) for address in header.addresses]
    except RecursionError:  # before PARSER_ERRORS, which holds it: `getaddresses` reads a deep comment as nothing
        return _written_addresses(flat)
    except PARSER_ERRORS:
        return _compat_parse(flat)


def _compat_parse(flat: str) -> list[tuple[str, str]]:
    try:
        return getaddresses([flat])
    except RecursionError:
        return _written_addresses(flat)


# A `local@domain` as written, between the characters that delimit one in an address field.
_ADDR_SPEC = re.compile(r'[^\s<>()\[\]",;:@\\]+@[^\s<>()\[\]",;:@\\]+')


def _written_addresses(flat: str) -> list[tuple[str, str]]:
    """The addresses written in a value that both stdlib parsers give up on: they recurse at each nested comment
    (`((((`) or group (`:`, also each colon of a time in a hostile encoded word), so a few thousand of them exhaust
    the stack. No name is read: the forward names the address."""
    return [("", address) for address in _ADDR_SPEC.findall(flat)]


def _whole_word(word: str) -> bool:
    """Whether the full parser takes `word` (`=?...?=`) as one encoded word: it ends the word at the first `?=`
    after `=?`, unless hex digits follow it (a `=XX` escape right after the encoding's `?`). So `=?utf-8?q?=?=`
    is no encoded word to it (the text `=` ends it early), and it reads the value as written."""
    token, _, rest = word[2:].partition("?=")
    if len(rest) > 1 and rest[0] in hexdigits and rest[1] in hexdigits and token.count("?") < 2:
        more, _, rest = rest.partition("?=")
        token = f"{token}?={more}"
    return f"=?{token}?=" == word


def _simple_mailbox(flat: str) -> tuple[str, str] | None:
    """(display name, address) of a one-mailbox value of a form whose full parse is known; None otherwise.

    The full parser returns a dot-atom address as written; atoms as written, joined by single spaces; a
    quoted string's content (single spaces: `clean_text` ran first); an encoded word as
    `email._encoded_words.decode` decodes it (the parser's own decoder), runs of space and tab as one space.
    An encoded word that decodes with a defect or to CR or LF (the parser refuses those) is left to it.
    """
    match = _SIMPLE_MAILBOX.fullmatch(flat)
    if match is None:
        return None
    bare, atoms, quoted, word, angle = match.group("bare", "atoms", "quoted", "word", "angle")
    if bare is not None:
        return "", bare
    if quoted is not None:
        return (quoted, angle) if "=?" not in quoted else None
    if word is not None:
        text = _decoded_word(word)
        return (text, angle) if text is not None else None
    return atoms or "", angle


def _decoded_word(word: str) -> str | None:
    """One encoded word as the full parser reads it in a display name; None when it would not take it as is."""
    if not _whole_word(word):
        return None
    try:
        text, _, _, defects = _encoded_words.decode(word)
    except (ValueError, KeyError, LookupError):
        return None
    if defects or "\r" in text or "\n" in text:
        return None
    return _WSP_RUN.sub(" ", text)


def _looks_like_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    if not (at and local and domain and "." in domain):
        return False
    # Characters first: a lone surrogate (bytes an encoded word left undecoded) is not printable, and would
    # make the length's encode() raise.
    if not all(char.isprintable() and not char.isspace() and char != "\ufffd" for char in address):
        return False
    return len(address.encode()) <= _MAILBOX_OCTETS


def field_addresses(field: HeaderField, message: SplitMessage) -> list[tuple[str, str]]:
    """`parse_addresses` of an address field of `message`, its raw 8-bit bytes read as the sender's mail program
    wrote them: UTF-8 (RFC 6532) when they are, else the charset the message declares for its text. Old mailers
    (web forms, scripts) write a Big5 name unencoded, which mail programs read in the body's charset: read as UTF-8,
    it came out as replacement characters. Read once per field of a message: later calls return the same pairs."""
    known = message.read_addresses.get(id(field))
    if known is not None and known[0] is field:
        return list(known[1])
    pairs = _field_addresses(field, message)
    message.read_addresses[id(field)] = (field, tuple(pairs))
    return pairs


def _field_addresses(field: HeaderField, message: SplitMessage) -> list[tuple[str, str]]:
    spent = message.address_characters
    full = spent[0] + len(field.raw) <= _FULL_PARSE_BUDGET
    spent[0] += len(field.raw)
    pairs = parse_addresses(field.value, full)
    raw = field.unfolded
    if raw.isascii() or _is_utf8(raw):
        return pairs
    charset = _declared_charset(message)
    if charset is None:
        return pairs
    try:
        read = parse_addresses(read_charset(raw, charset), full)
    except (LookupError, UnicodeError):
        return pairs
    # Never an address the bytes do not hold as written (a trail byte such as the `\` of 許 may change how they parse).
    return read if read and all(address.encode() in raw for _, address in read) else pairs


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# How many leaf parts are looked at for a declared charset (the text parts come first in mail programs' output).
_CHARSET_PARTS = 8


def _declared_charset(message: SplitMessage) -> str | None:
    """The charset of the message's first text part that declares one other than UTF-8 and US-ASCII."""
    # Imported here: only mail with raw 8-bit header bytes that are not UTF-8 needs the MIME walk.
    from itertools import islice

    from forwarder.mail.mime import content_type, walk_leaves

    leaves = walk_leaves(message.fields, message.raw, message.body_start, len(message.raw))
    for leaf in islice(leaves, _CHARSET_PARTS):
        kind = content_type(leaf.fields)
        charset = kind.get_content_charset()
        if kind.get_content_maintype() == "text" and charset and charset not in ("utf-8", "us-ascii"):
            return charset
    return None


def original_authors(message: SplitMessage, envelope_sender: str | None) -> list[tuple[str, str]]:
    """(name, address) of who wrote: the first From field with an address, else the envelope sender."""
    for from_field in message.all(h.FROM):
        pairs = field_addresses(from_field, message)
        if pairs:
            return pairs[:_REPLY_TO_LIMIT]
    if envelope_sender and _looks_like_address(envelope_sender):
        return [("", envelope_sender)]
    return []


def find_sender(message: SplitMessage, envelope_sender: str | None) -> Sender:
    """The original author: the first From address, else the envelope sender."""
    return sender_of(original_authors(message, envelope_sender))


def sender_of(authors: list[tuple[str, str]]) -> Sender:
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
    encoded = utf8_words(name, newline.decode()) if name else ""
    return f"{encoded} <{address}>".lstrip()
