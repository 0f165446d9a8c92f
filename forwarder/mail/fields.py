"""Header fields and encoded words: decoding, rendering, folding and repairing one field's raw bytes."""

from __future__ import annotations

import re
from email import base64mime, quoprimime
from email.errors import MessageError
from email.header import Header, decode_header, make_header

from forwarder.mail import headers as h
from forwarder.mail.message import HeaderField, has_long_line

_BARE_CR = re.compile(rb"\r(?!\n)")
WSP = b" \t"
# What the stdlib's header parsers raise on hostile input (seen with fuzzed mail).
PARSER_ERRORS = (MessageError, LookupError, UnicodeError, ValueError, IndexError, TypeError, AttributeError)


def decode_words(value: str) -> str:
    """A header value with its RFC 2047 encoded words decoded; the value itself when it cannot be."""
    try:
        return str(make_header(decode_header(value)))
    except PARSER_ERRORS:
        return value


def encode_words(text: str, newline: bytes) -> str:
    return text if text.isascii() else utf8_words(text, newline.decode())


# What `Header(text, "utf-8").encode()` writes around each encoded word's text, and its line limits: 78
# characters on the first line, 77 after the one-space continuation (email.header, email.charset).
_UTF8_CHROME = len("=?utf-8?b??=")
_FIRST_LINE, _NEXT_LINE = 78 - _UTF8_CHROME, 77 - _UTF8_CHROME


def utf8_words(text: str, linesep: str) -> str:
    """Exactly `Header(text, "utf-8").encode(linesep=linesep)`, in one pass instead of the stdlib's
    re-encoding of every growing prefix (tests/unit/test_fields.py compares the two).

    The stdlib picks base64 or quoted-printable for the whole text (the shorter, base64 on a tie going to
    quoted-printable), then cuts it at characters into encoded words as long as each line allows."""
    if not text or text.splitlines() != [text]:
        return Header(text, "utf-8").encode(linesep=linesep)
    data = text.encode("utf-8")
    module = base64mime if base64mime.header_length(data) < quoprimime.header_length(data) else quoprimime
    words: list[str] = []
    limit = _FIRST_LINE
    start = 0
    size = 0  # the encoded length of text[start:index]
    octets = 0  # its UTF-8 length
    for index, char in enumerate(text):
        encoded = char.encode("utf-8")
        if module is base64mime:
            grown = (octets + len(encoded) + 2) // 3 * 4
        else:
            grown = size + quoprimime.header_length(encoded)
        if grown > limit and index > start:
            words.append(module.header_encode(text[start:index].encode("utf-8"), charset="utf-8"))
            start, limit = index, _NEXT_LINE
            octets = 0
            grown = (len(encoded) + 2) // 3 * 4 if module is base64mime else quoprimime.header_length(encoded)
        size, octets = grown, octets + len(encoded)
    words.append(module.header_encode(text[start:].encode("utf-8"), charset="utf-8"))
    return (linesep + " ").join(words)


def render_field(name: str, value: str, newline: bytes) -> bytes:
    """A header line we write: `name: value`, folded where the value already folds, ending in newline."""
    line = f"{name}: {value}".encode()
    return line.replace(b"\r\n", b"\n").replace(b"\n", newline) + newline


def repair_field(name: str, raw: bytes, newline: bytes) -> tuple[bytes | None, list[str]]:
    """A received field made safe to resend, and the repairs made (`sanitized`, `folded`, `encoded`,
    `dropped`): no bare CR or NUL, no white space before the colon (obsolete syntax that many parsers
    take for the end of the header block), no line over 998 octets. None when the field is dropped."""
    repairs: list[str] = []
    if b"\0" in raw or _BARE_CR.search(raw) or raw[len(name) : len(name) + 1] != b":":
        raw = _BARE_CR.sub(b" ", raw.replace(b"\0", b" "))
        raw = name.encode("ascii") + b":" + raw[len(name) :].lstrip(b" \t")[1:]
        repairs.append("sanitized")
    if not raw.endswith(b"\n"):
        raw += newline
    if not has_long_line(raw):
        return raw, repairs
    folded = fold_field(raw)
    if folded is not None:
        return folded, [*repairs, "folded"]
    if name.lower().startswith("x-"):
        return None, [*repairs, "dropped"]
    return _encoded_field(name, raw, newline), [*repairs, "encoded"]


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
            if cut <= 0 or not line[:cut].strip(WSP):
                return None
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    if any(not piece.strip(WSP) for piece in out[1:]):
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
