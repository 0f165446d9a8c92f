"""Hostile mail for the invariant tests: header blocks of arbitrary bytes and MIME bodies with over-long lines.

`header_blocks` draws what the other property tests do not: field names of any bytes (8-bit, NUL, white space
before the colon, over 998 octets), every line ending (CRLF, LF, bare CR, CR CR LF), continuation lines of only
white space, duplicated single-instance fields, hostile addresses (groups, comments, quoted pairs, UTF-8, encoded
words broken or huge). `mime_bodies` draws a clean header block and a body whose parts have lines over 998 octets
in every transfer encoding, broken or missing boundaries, attached messages. `assert_sendable` checks what SES
would receive without the forwarder's own splitter.
"""

from __future__ import annotations

import base64
import binascii
import re

from hypothesis import strategies as st

from forwarder.mail import headers as h

_SINGLE = [
    "From", "To", "Subject", "Date", "Message-ID", "Reply-To", "Sender", "In-Reply-To", "References", "Cc",
    "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Return-Path", "DKIM-Signature",
]  # fmt: skip
_OTHER = [
    "Received", "ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results", "X-Custom", "Comments", "Bcc",
    "Resent-From", "X-SES-Forwarder", "List-Id", "Thread-Topic", "Keywords", "Delivered-To",
]  # fmt: skip
names = st.one_of(
    st.sampled_from(_SINGLE + _OTHER).map(str.encode),
    st.sampled_from(_SINGLE).map(lambda name: name.upper().encode()),
    st.sampled_from([b"Subject ", b"From\t", b"S\xfcbject", b"Sub\x00ject", b"X" * 1000, b"Comments" * 124, b""]),
)
addresses = st.sampled_from(
    [
        b"a@example.com", b"Alice <alice@example.com>", b'"Bob, Jr." <bob@example.org>', b"undisclosed-recipients:;",
        b"team: a@example.com, b@example.org;", b"a(comment)@example.com (Al \\( ice)", b'"q\\"uoted" <q@example.com>',
        "Jöse <jöse@exämple.com>".encode(), b"=?utf-8?b?QWxpY2U=?= <a@example.com>", b"=?utf-8?q?broken <b@x.com>",
        b"=?bogus?x?zz?= <c@example.com>", b"=?utf-8?q?=E9?= a@example.com", b"<>", b"no address",
        b"a@example.com, c@example.org", b"a@example.com," * 200, b"<" + b"l" * 300 + b"@example.com>",
    ]
)  # fmt: skip
values = st.one_of(
    addresses,
    st.binary(max_size=60),
    st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.integers(0, 800).map(lambda n: b"=?utf-8?b?" + base64.b64encode("é".encode() * n) + b"?="),
    st.integers(0, 600).map(lambda n: b"=?utf-8?q?" + b"=E9" * n + b"?="),
    st.tuples(st.sampled_from([b"a", b"a ", b" ", b"\t", b"<x@y.org>", b"=?", b"\xff"]), st.integers(0, 1500)).map(
        lambda pair: pair[0] * pair[1]
    ),
)
endings = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"])
colons = st.sampled_from([b":", b": ", b" :", b":\t", b"::"])
folds = st.lists(
    st.tuples(st.sampled_from([b" ", b"\t"]), values | st.sampled_from([b"", b" ", b"\t"]), endings), max_size=3
)
fields = st.tuples(names, colons, values, endings, folds)


def header_block(items: list[tuple[bytes, bytes, bytes, bytes, list[tuple[bytes, bytes, bytes]]]]) -> bytes:
    return b"".join(
        name + colon + value + ending + b"".join(space + more + end for space, more, end in continuation)
        for name, colon, value, ending, continuation in items
    )


# A hostile header block, then a short body (or none): the forward's body must be the same bytes.
header_blocks = st.tuples(
    st.lists(fields, max_size=10).map(header_block),
    st.sampled_from([b"\r\n", b"\n", b""]),
    st.binary(max_size=200).map(lambda body: body.replace(b"\n", b" ")),
)

_NEWLINES = st.sampled_from([b"\r\n", b"\n"])
_LONG = st.tuples(st.sampled_from([b"A", b"\xe9", b"a b ", b"\0", b"=", b"\r", b"-"]), st.integers(0, 2600)).map(
    lambda pair: pair[0] * pair[1]
)
_CONTENT = st.one_of(
    _LONG,
    st.binary(max_size=3000).map(base64.b64encode),  # base64 on one line
    st.binary(max_size=2000).map(lambda data: binascii.b2a_qp(data).replace(b"=\n", b"")),  # no soft breaks
    st.binary(max_size=2000),
)
# (message/rfc822 only as an attached message in 7bit: in base64, which RFC 2046 forbids, the stdlib reads the
# encoded text itself as the message, and the parsers' reading of a re-encoded one would differ by its line breaks)
_TYPES = st.sampled_from(
    [b"text/plain", b"text/plain; charset=utf-8", b"text/html", b"application/octet-stream",
     b'application/pdf; name="a.pdf"', b"image/png", b"text/plain; charset=bogus"]
)  # fmt: skip
_ENCODINGS = st.sampled_from(
    [None, b"7bit", b"8bit", b"binary", b"base64", b"quoted-printable", b"x-uuencode", b"BASE64"]
)


@st.composite
def _leaf(draw: st.DrawFn, newline: bytes) -> bytes:
    head = b"Content-Type: " + draw(_TYPES) + newline
    encoding = draw(_ENCODINGS)
    if encoding is not None:
        head += b"Content-Transfer-Encoding: " + encoding + newline
    if draw(st.booleans()):
        head += b'Content-Disposition: attachment; filename="f.bin"' + newline
    return head + newline + draw(_CONTENT)


@st.composite
def _mime_body(draw: st.DrawFn, newline: bytes, depth: int = 0) -> tuple[bytes, bytes]:
    """(Content-Type and Content-Transfer-Encoding fields, body) of one entity."""
    shape = draw(st.sampled_from(["leaf", "multipart", "rfc822"] if depth < 2 else ["leaf"]))
    if shape == "leaf":
        head, _, body = draw(_leaf(newline)).partition(newline + newline)
        return head + newline, body
    if shape == "rfc822":
        inner_head, inner_body = draw(_mime_body(newline, depth + 1))
        # (a clean header block: a bare CR in it would make the stdlib end it there, and read the rest otherwise)
        subject = draw(_LONG).replace(b"\r", b"")
        inner = b"From: inner@example.org" + newline + b"Subject: " + subject + newline + inner_head
        return b"Content-Type: message/rfc822" + newline, inner + newline + inner_body
    boundary = draw(st.sampled_from([b"XX", b"b" * 80, b"=_b", b"a b", b"-" * 10]))
    body = draw(st.sampled_from([b"", b"preamble", b"p" * 1200])) + newline
    for _ in range(draw(st.integers(0, 3))):
        part_head, part_body = draw(_mime_body(newline, depth + 1))
        delimiter = boundary if draw(st.integers(0, 9)) else b"YY"  # now and then a delimiter of another boundary
        body += b"--" + delimiter + newline + part_head + newline + part_body + newline
    if draw(st.booleans()):
        body += b"--" + boundary + b"--" + newline + draw(st.sampled_from([b"", b"e" * 1500 + newline]))
    kind = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + newline
    return kind, body


@st.composite
def mime_mails(draw: st.DrawFn) -> bytes:
    """A clean header block and a hostile MIME body."""
    newline = draw(_NEWLINES)
    head, body = draw(_mime_body(newline))
    top = b"From: Alice <alice@example.com>" + newline + b"To: team@dev.aws-educate.tw" + newline
    return top + b"Subject: parts" + newline + b"MIME-Version: 1.0" + newline + head + newline + body


_FIELD = re.compile(rb"[!-9;-~]+:")


def assert_sendable(raw: bytes) -> None:
    """What SES accepts and every reader splits alike, checked without `forwarder.mail`: a header block ended by
    an empty line, each line ending as the first does and holding no other CR or LF; each line a field (a name of
    printable ASCII without colon, then a colon) or a continuation with more than white space; one From; no
    duplicate single-instance field; no line over 998 octets anywhere."""
    newline = b"\r\n" if raw[: raw.find(b"\n") + 1].endswith(b"\r\n") else b"\n"
    head, separator, _ = raw.partition(newline + newline)
    assert separator, "no empty line ends the header block"
    names = []
    for line in head.split(newline):
        assert b"\r" not in line and b"\n" not in line, line[:80]
        if line[:1] in (b" ", b"\t"):
            assert line.strip(b" \t"), "a continuation line of only white space"
            continue
        match = _FIELD.match(line)
        assert match is not None, line[:80]
        names.append(match.group()[:-1].decode().lower())
    assert names.count("from") == 1, names
    repeated = sorted({name for name in names if name in h.SINGLE_INSTANCE and names.count(name) > 1})
    assert not repeated, repeated
    assert all(len(line.removesuffix(b"\r")) <= h.MAX_LINE for line in raw.split(b"\n"))
