"""Over-long body lines: detect them fast, and re-encode only the MIME parts that have them.

SES refuses a message with a line over 1,000 octets. Forwarding such a message therefore changes
the transfer encoding of the offending parts (to quoted-printable for text, base64 otherwise), never
their decoded content; every other byte of the message stays as it was.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from email.message import Message

from forwarder.mail import headers as h
from forwarder.mail.message import HeaderField, SplitMessage, split_message
from forwarder.mail.rewrite import fold_field

_MAX_DEPTH = 20
_CR = 13


@dataclass(slots=True)
class BodyReport:
    """Which parts were re-encoded (content types only) and which lines could not be fixed."""

    reencoded: list[str] = field(default_factory=list)
    unfixable: list[str] = field(default_factory=list)


def has_long_line(data: bytes, start: int = 0) -> bool:
    """True when a line of `data[start:]` is longer than 998 octets (line ending excluded).

    Looks only at the last line feed of each 1,000-octet window, so a 30 MB body costs a few
    thousand searches, not one per line.
    """
    limit = h.MAX_LINE
    end = len(data)
    position = start
    while end - position > limit:
        last = data.rfind(b"\n", position, position + limit + 2)
        if last < 0:
            return True
        if last == position + limit + 1 and data[last - 1] != _CR and data.rfind(b"\n", position, last) < 0:
            return True  # exactly 999 octets before a bare LF
        position = last + 1
    return False


def shorten_long_lines(message: SplitMessage) -> tuple[SplitMessage, BodyReport]:
    """The message with every over-long body line re-encoded away, and what was done."""
    report = BodyReport()
    fields, body = _fix_entity(message.fields, bytes(message.body), message.newline, report, 0)
    if not report.reencoded:
        return message, report
    return split_message(_join_entity(fields, message.separator or message.newline, body)), report


def _fix_entity(
    fields: tuple[HeaderField, ...], body: bytes, newline: bytes, report: BodyReport, depth: int
) -> tuple[tuple[HeaderField, ...], bytes]:
    if depth > _MAX_DEPTH or not has_long_line(body):
        return fields, body
    content_type = _content_type(fields)
    encoding = _transfer_encoding(fields)
    if content_type.get_content_maintype() == "multipart" and content_type.get_boundary():
        return fields, _fix_multipart(body, content_type.get_boundary() or "", newline, report, depth)
    if content_type.get_content_type() == "message/rfc822" and encoding in ("", "7bit", "8bit", "binary"):
        return fields, _fix_nested(body, report, depth)
    return _reencode_leaf(fields, body, content_type, encoding, newline, report)


def _fix_multipart(body: bytes, boundary: str, newline: bytes, report: BodyReport, depth: int) -> bytes:
    delimiter = re.compile(rb"(?m)^--" + re.escape(boundary.encode("utf-8", "replace")) + rb"(?:--)?[ \t]*\r?$")
    matches = list(delimiter.finditer(body))
    if not matches:
        report.unfixable.append("multipart without delimiters")
        return body
    pieces: list[bytes] = [body[: matches[0].start()]]
    for current, following in zip(matches, [*matches[1:], None], strict=True):
        line_end = body.find(b"\n", current.end())
        part_start = len(body) if line_end < 0 else line_end + 1
        pieces.append(body[current.start() : part_start])
        if following is None:
            pieces.append(body[part_start:])
            break
        part_end = following.start()
        part_end -= (
            2 if body[part_end - 2 : part_end] == b"\r\n" else 1 if body[part_end - 1 : part_end] == b"\n" else 0
        )
        part_end = max(part_end, part_start)
        part = body[part_start:part_end]
        pieces.append(_fix_nested(part, report, depth) if has_long_line(part) else part)
        pieces.append(body[part_end : following.start()])
    if has_long_line(pieces[0]) or has_long_line(pieces[-1]):
        report.unfixable.append("preamble or epilogue")
    return b"".join(pieces)


def _reencode_leaf(
    fields: tuple[HeaderField, ...],
    body: bytes,
    content_type: Message,
    encoding: str,
    newline: bytes,
    report: BodyReport,
) -> tuple[tuple[HeaderField, ...], bytes]:
    if encoding == "base64":
        decoded = binascii.a2b_base64(body)
    elif encoding == "quoted-printable":
        decoded = binascii.a2b_qp(body)
    else:
        decoded = body
    if content_type.get_content_maintype() == "text" and encoding != "base64":
        new_encoding, encoded = "quoted-printable", binascii.b2a_qp(decoded, istext=True)
    else:
        new_encoding, encoded = "base64", base64.encodebytes(decoded).replace(b"\n", newline)
    report.reencoded.append(f"{content_type.get_content_type()}: {encoding or '7bit'} -> {new_encoding}")
    cte_line = HeaderField("Content-Transfer-Encoding", f"Content-Transfer-Encoding: {new_encoding}".encode() + newline)
    kept = [f for f in fields if f.key != h.CONTENT_TRANSFER_ENCODING]
    return (*kept, cte_line), encoded


def _fix_nested(entity: bytes, report: BodyReport, depth: int) -> bytes:
    inner = split_message(entity)
    fields, body = _fix_entity(inner.fields, bytes(inner.body), inner.newline, report, depth + 1)
    folded = tuple(HeaderField(f.name, _fold_part_field(f)) for f in fields)
    return _join_entity(folded, inner.separator or inner.newline, body)


def _join_entity(fields: tuple[HeaderField, ...], separator: bytes, body: bytes) -> bytes:
    newline = b"\r\n" if separator == b"\r\n" else b"\n"
    head = b"".join(f.raw if f.raw.endswith(b"\n") else f.raw + newline for f in fields)
    return head + separator + body


def _fold_part_field(item: HeaderField) -> bytes:
    if all(len(line.rstrip(b"\r")) <= h.MAX_LINE for line in item.raw.split(b"\n")):
        return item.raw
    return fold_field(item.raw) or item.raw


def _content_type(fields: tuple[HeaderField, ...]) -> Message:
    holder = Message()
    value = next((f.value for f in fields if f.key == h.CONTENT_TYPE), "text/plain")
    holder["Content-Type"] = value.replace("\r", " ").replace("\n", " ")
    return holder


def _transfer_encoding(fields: tuple[HeaderField, ...]) -> str:
    value = next((f.value for f in fields if f.key == h.CONTENT_TRANSFER_ENCODING), "")
    return value.strip().lower()
