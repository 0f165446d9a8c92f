"""Header fields and encoded words: decoding, rendering, folding and repairing one field's raw bytes."""

from __future__ import annotations

import base64
import re
from email import (  # type: ignore[attr-defined]  # _encoded_words: the parser's own decoder; no stubs
    _encoded_words,
    base64mime,
    quoprimime,
)
from email.errors import MessageError
from email.header import Header, decode_header, make_header

from forwarder.mail import headers as h
from forwarder.mail.message import HeaderField, has_long_line

_BARE_CR = re.compile(rb"\r(?!\n)")
# A continuation line of only white space (RFC 5322 4.2 obsolete syntax: readers such as the Ruby mail gem end
# the header block at `CRLF *WSP CRLF`).
_BLANK_FOLD = re.compile(rb"\n[ \t]+\r?(?:\n|\Z)")
WSP = b" \t"
# What the stdlib's header parsers raise on hostile input (seen with fuzzed mail). RecursionError: they recurse
# once per nested comment (`((((`) or group, so a field of a few KB exhausts the stack.
PARSER_ERRORS = (
    MessageError,
    LookupError,
    UnicodeError,
    ValueError,
    IndexError,
    TypeError,
    AttributeError,
    RecursionError,
)


# The stdlib's decoder takes time that grows with the square of the number of words (`decode_header` pops each from
# the front of a list): a minute for a 3 MB Subject, past Lambda's timeout on every retry. What only needs the start
# of a value's text (the subject prefix check, a display name shown shortened) decodes this much of it.
DECODE_HEAD = 65_536


def decode_words(value: str, limit: int | None = None) -> str:
    """A header value with its RFC 2047 encoded words decoded; the value itself when it cannot be. `limit`: only the
    text of the value's first `limit` characters is needed (a longer value is cut at white space before, so that no
    encoded word is cut)."""
    if limit is not None and len(value) > limit:
        value = value[: max(value.rfind(" ", 0, limit), value.rfind("\t", 0, limit), 0) or limit]
    try:
        return str(make_header(decode_header(join_words(value) if "=?" in value else value)))
    except PARSER_ERRORS:
        return value


# A run of RFC 2047 encoded words separated by white space only, as mailers write a long or non-ASCII text over
# several words and lines. Only the characters RFC 2047 5(3) allows in a phrase's encoded word: no quote, bracket,
# comma or `@` of an address field's structure is taken into a word.
_WORD = r"=\?[A-Za-z0-9_.:\-]+(?:\*[A-Za-z0-9\-]*)?\?[BbQq]\?[A-Za-z0-9!*+/=_.\-]*\?="
_WORD_RUN = re.compile(rf"{_WORD}(?:[ \t]+{_WORD})+|{_WORD}")
_WORD_PARTS = re.compile(r"=\?([^?*]+)(?:\*[^?]*)?\?([BbQq])\?([^?]*)\?=")

# Charset labels that mail programs read as a larger charset (the WHATWG Encoding Standard's mapping, which
# browsers, Gmail and Thunderbird follow): Outlook labels Windows code page 950, 932, 936 and 949 text, and
# Windows-1252 text, with the names of the standard charsets they extend. Read strictly as labelled, a name with
# 恒 or 碁 (code page 950), 堃 or 喆 (HKSCS), 髙 or ① (932) or O’Brien (1252) would lose those characters.
_READ_AS = {
    **dict.fromkeys(("big5", "big5-hkscs", "cn-big5", "x-x-big5", "csbig5"), ("cp950", "big5hkscs")),
    **dict.fromkeys(("gb2312", "gbk", "gb-2312-80", "x-gbk", "chinese", "csgb2312", "cp936"), ("gb18030",)),
    **dict.fromkeys(("shift-jis", "sjis", "x-sjis", "ms-kanji", "csshiftjis", "windows-31j"), ("cp932",)),
    **dict.fromkeys(("euc-kr", "ks-c-5601-1987", "ks-c-5601-1989", "ksc5601", "korean", "windows-949"), ("cp949",)),
    **dict.fromkeys(("iso-8859-1", "latin1", "l1", "iso8859-1", "us-ascii", "ascii", "cp819"), ("cp1252",)),
}


def read_charset(octets: bytes, charset: str) -> str:
    """`octets` as mail programs read text labelled `charset`: as the larger charset they take the label for,
    else as labelled. Raises LookupError or UnicodeError when neither reads it."""
    label = charset.lower().replace("_", "-")
    for codec in _READ_AS.get(label, ()):
        try:
            return octets.decode(codec)
        except UnicodeError:
            continue
    if label in ("iso-2022-jp", "csiso2022jp"):
        try:
            return octets.decode("iso2022_jp")
        except UnicodeError:
            text = _jis_as_cp932(octets)
            if text is not None:
                return text
    return octets.decode(charset)


_ESC = 0x1B
_JIS_MODES = {b"(B": "ascii", b"(J": "ascii", b"$@": "jis", b"$B": "jis", b"(I": "kana"}


def _jis_as_cp932(octets: bytes) -> str | None:
    """ISO-2022-JP as Windows and the WHATWG decoder read it (code page 50220): its JIS X 0208 pairs taken as code
    page 932, which also holds the NEC and IBM characters Outlook writes in them (①, ㈱, 髙) that Python's
    iso2022_jp refuses. None when it is not ISO-2022-JP."""
    out = bytearray()
    mode = "ascii"
    index, length = 0, len(octets)
    while index < length:
        byte = octets[index]
        if byte == _ESC:
            mode = _JIS_MODES.get(octets[index + 1 : index + 3], "")
            if not mode:
                return None
            index += 3
        elif byte >= 0x80 or byte in (0x0E, 0x0F):
            return None
        elif mode == "jis":
            second = octets[index + 1] if index + 1 < length else 0
            if not (0x21 <= byte <= 0x7E and 0x21 <= second <= 0x7E):
                return None
            # JIS X 0208 row and cell to Shift_JIS (the standard conversion).
            lead = (byte + 1) // 2 + (0x70 if byte <= 0x5E else 0xB0)
            trail = second + (0x7E if byte % 2 == 0 else 0x1F if second <= 0x5F else 0x20)
            out += bytes((lead, trail))
            index += 2
        else:
            out.append(byte + 0x80 if mode == "kana" and 0x21 <= byte <= 0x5F else byte)
            index += 1
    try:
        return out.decode("cp932")
    except UnicodeError:
        return None


def join_words(value: str) -> str:
    """`value` with each run of adjacent encoded words written as one UTF-8 encoded word of the same text."""
    return _WORD_RUN.sub(_joined_words, value)


def _joined_words(run: re.Match[str]) -> str:
    """A run of adjacent encoded words as one UTF-8 encoded word of the same text, each charset read as mail
    programs read it (`read_charset`); the run as it is when a word does not decode.

    RFC 2047 6.2: the white space between adjacent encoded words is not part of the text. The stdlib's address
    parser keeps it (`=?big5?B?...?=\\r\\n =?big5?B?...?=` reads as "陳 大文"), and decodes each word alone, so a
    character whose bytes a mailer split over two words of one charset reads as garbage; mail programs join the
    bytes of such words first. Joined here the same way, the parser reads the name as mail programs show it."""
    text = run.group()
    pieces: list[tuple[str, bytes]] = []  # (charset, bytes) of consecutive words of one charset
    for charset, encoding, payload in _WORD_PARTS.findall(text):
        try:
            data = payload.encode("ascii")
            octets = _encoded_words.decode_b(data)[0] if encoding in "Bb" else _encoded_words.decode_q(data)[0]
        except (ValueError, UnicodeError):
            return text
        if pieces and pieces[-1][0] == charset.lower():
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + octets)
        else:
            pieces.append((charset.lower(), octets))
    try:
        # A text codec named as a charset (`unicode_escape`) may read lone surrogates, which UTF-8 cannot write.
        joined = "".join(read_charset(octets, charset) for charset, octets in pieces).encode("utf-8")
    except (LookupError, UnicodeError):
        return text
    return "=?utf-8?b?" + base64.b64encode(joined).decode("ascii") + "?="


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


# ": " and one short RFC 2047 word (`=?utf-8?q?x?=`) after a field name, on the field's first line.
_MIN_ENCODED_LINE = 2 + 16


def repair_field(name: str, raw: bytes, newline: bytes) -> tuple[bytes | None, list[str]]:
    """A received field made safe to resend, and the repairs made (`sanitized`, `folded`, `encoded`,
    `dropped`): no bare CR or NUL, no white space before the colon (obsolete syntax that many parsers
    take for the end of the header block), every line ending `newline` (SMTP refuses a bare LF), no
    continuation line of only white space, no line over 998 octets. None when the field is dropped."""
    repairs: list[str] = []
    if b"\0" in raw or _BARE_CR.search(raw) or raw[len(name) : len(name) + 1] != b":":
        raw = _BARE_CR.sub(b" ", raw.replace(b"\0", b" "))
        raw = name.encode("ascii") + b":" + raw[len(name) :].lstrip(b" \t")[1:]
        repairs.append("sanitized")
    if _odd_lines(raw, newline):
        raw = _even_lines(raw, newline)
        if not repairs:
            repairs.append("sanitized")
    if not raw.endswith(b"\n"):
        raw += newline
    if not has_long_line(raw):
        return raw, repairs
    folded = fold_field(raw) or fold_list(name, raw)
    if folded is not None:
        return folded, [*repairs, "folded"]
    # An unknown X- field, or a name so long that not even one encoded word fits after it on its line (no
    # field RFC 5322 or any extension defines comes near): nothing a member could read is lost by dropping it.
    if name.lower().startswith("x-") or len(name) + _MIN_ENCODED_LINE > h.MAX_LINE:
        return None, [*repairs, "dropped"]
    return _encoded_field(name, raw, newline), [*repairs, "encoded"]


def _odd_lines(raw: bytes, newline: bytes) -> bool:
    """True when a line of `raw` ends other than with `newline`, or a continuation line is only white space.
    Counts first: a regular expression per field would cost every mail (most fields are one line)."""
    breaks = raw.count(b"\n")
    if (raw.count(b"\r\n") != breaks) if newline == b"\r\n" else (b"\r\n" in raw):
        return True
    folded = breaks > 1 or (breaks == 1 and not raw.endswith(b"\n"))
    return folded and _BLANK_FOLD.search(raw) is not None


def _even_lines(raw: bytes, newline: bytes) -> bytes:
    """`raw` with every line ending `newline` and its continuation lines of only white space left out (they
    add nothing to the value but white space); a bare CR is gone already (replaced first)."""
    ended = raw.endswith(b"\n")
    lines = [line.removesuffix(b"\r") for line in (raw[:-1] if ended else raw).split(b"\n")]
    kept = [lines[0], *(line for line in lines[1:] if line.strip(WSP))]
    return newline.join(kept) + (newline if ended else b"")


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


# Fields whose value is a list, and what ends an item: white space may be added after it without changing what
# the value says (RFC 5322 3.4 address lists, 3.6.4 message ids, RFC 2045 5.1 parameters). A long line of such
# a field without white space (`To: a@x.org,b@x.org,...`, `References: <a@x><b@x>...`) can so still be folded;
# encoded as RFC 2047 words instead, its addresses, message ids or parameters would be lost to every reader.
_ADDRESS_LISTS = frozenset(
    {
        "from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender", "resent-to",
        "resent-cc", "resent-bcc", "mail-followup-to", "mail-reply-to", "disposition-notification-to",
        "return-receipt-to", "errors-to",
    }
)  # fmt: skip
_PARAMETERS = frozenset({"content-type", "content-disposition"})
_ITEM_END = {
    **dict.fromkeys(_ADDRESS_LISTS, ord(",")),
    **dict.fromkeys(_PARAMETERS, ord(";")),
    h.REFERENCES: ord(">"),
    h.IN_REPLY_TO: ord(">"),
}
_WSP_OR_EOL = (b" ", b"\t", b"\r", b"\n")


def fold_list(name: str, raw: bytes) -> bytes | None:
    """A list field (`_ITEM_END`) that `fold_field` cannot fold, folded between its items; None if impossible.

    White space goes after each item's end outside quoted strings, comments and angle brackets. A parameter
    too long for a line on its own is split into RFC 2231 continuations (`name*0*=...; name*1*=...`), which
    the stdlib writes and MIME readers join back to the same value."""
    end = _ITEM_END.get(name.lower())
    if end is None:
        return None
    folded = fold_field(_spaced(raw, len(name) + 1, end))
    if folded is None and name.lower() in _PARAMETERS:
        folded = _continued_parameters(name, raw)
    return folded


def _spaced(raw: bytes, start: int, end: int) -> bytes:
    """`raw` with a space after every `end` byte from `start` on that is outside a quoted string, a comment or
    (unless `end` closes it) angle brackets, and not already followed by white space or a line ending."""
    out = bytearray(raw[:start])
    quoted = escaped = False
    comment = angle = 0
    for index in range(start, len(raw)):
        byte = raw[index]
        out.append(byte)
        if escaped:
            escaped = False
        elif byte == 0x5C and (quoted or comment):  # backslash: quoted pair
            escaped = True
        elif quoted:
            quoted = byte != 0x22
        elif byte == 0x22 and not comment:
            quoted = True
        elif byte == 0x28:
            comment += 1
        elif byte == 0x29 and comment:
            comment -= 1
        elif comment:
            continue
        elif byte == 0x3C:
            angle += 1
        elif byte == 0x3E and angle:
            angle -= 1
        if byte == end and not (quoted or comment or angle) and raw[index + 1 : index + 2] not in (b"", *_WSP_OR_EOL):
            out.append(0x20)
    return bytes(out)


# The stdlib's MIME header parser takes time that grows with the square of the number of parameters (over two
# minutes for a 1.6 MB field, past Lambda's timeout on every retry); no real Content-Type or Content-Disposition
# comes near this.
_CONTINUED_LIMIT = 16_384


def _continued_parameters(name: str, raw: bytes) -> bytes | None:
    """The parameter field written by the stdlib, long parameters as RFC 2231 continuations; None when the
    stdlib cannot read it, when it would still have a long line, or when it reads as other parameters.

    A raw UTF-8 value (RFC 6532: a file name as some mail programs write it) is written percent-encoded as UTF-8
    (`name*0*=utf-8''...`), which MIME readers decode to the same text; other 8-bit bytes name no charset."""
    if len(raw) > _CONTINUED_LIMIT:
        return None
    try:
        value = HeaderField(name, raw).unfolded.decode("utf-8")
    except UnicodeDecodeError:
        return None
    newline = b"\r\n" if raw.endswith(b"\r\n") else b"\n"
    try:
        # Imported here: rare, and the policy's header registry would cost every cold start.
        from email.policy import default

        policy = default.clone(linesep=newline.decode(), max_line_length=78)
        folded = str(policy.header_factory(name, value).fold(policy=policy)).encode("ascii")
    except PARSER_ERRORS:
        return None
    written = HeaderField(name, folded).unfolded.decode("ascii")
    if has_long_line(folded) or _parameters(name, written) != _parameters(name, value):
        return None
    return folded


def _parameters(name: str, value: str) -> list[tuple[str, str]]:
    """The value and parameters of a MIME field as the stdlib reads them: continuations joined, RFC 2231 decoded."""
    from email.message import Message
    from email.utils import collapse_rfc2231_value

    holder = Message()
    holder[name] = value
    return [(key.lower(), collapse_rfc2231_value(item)) for key, item in holder.get_params(header=name) or []]


def _encoded_field(name: str, raw: bytes, newline: bytes) -> bytes:
    """An unfoldable field as RFC 2047 encoded words, which fold between words."""
    unfolded = HeaderField(name, raw).unfolded
    try:
        text, charset = unfolded.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, charset = unfolded.decode("latin-1"), "iso-8859-1"
    encoded = Header(text, charset, header_name=name).encode(linesep=newline.decode())
    return render_field(name, encoded, newline)
