"""Over-long body lines (found by `message.has_long_line`): re-encode only the MIME parts that have them.

SES refuses a message with a line over 1,000 octets. Forwarding such a message therefore changes
the transfer encoding of the offending parts (to quoted-printable for text, base64 otherwise), never
their decoded content; every other byte of the message stays as it was.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from email.message import Message

from forwarder.mail import headers as h
from forwarder.mail.fields import fold_field
from forwarder.mail.message import HeaderField, SplitMessage, has_long_line, split_message
from forwarder.mail.mime import MAX_DEPTH, content_type, part_spans, transfer_encoding


@dataclass(slots=True)
class BodyReport:
    """Which parts were re-encoded (content types only) and which lines could not be fixed."""

    reencoded: list[str] = field(default_factory=list)
    unfixable: list[str] = field(default_factory=list)


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
    if depth > MAX_DEPTH or not has_long_line(body):
        return fields, body
    kind = content_type(fields)
    encoding = transfer_encoding(fields)
    if kind.get_content_maintype() == "multipart" and kind.get_boundary():
        return fields, _fix_multipart(body, kind.get_boundary() or "", newline, report, depth)
    if kind.get_content_type() == "message/rfc822" and encoding in ("", "7bit", "8bit", "binary"):
        return fields, _fix_nested(body, report, depth)
    return _reencode_leaf(fields, body, kind, encoding, newline, report)


def _fix_multipart(body: bytes, boundary: str, newline: bytes, report: BodyReport, depth: int) -> bytes:
    spans = part_spans(body, boundary)
    if not spans:
        report.unfixable.append("multipart without delimiters")
        return body
    pieces: list[bytes] = []
    cursor = 0
    for start, end in spans:
        part = body[start:end]
        pieces += [body[cursor:start], _fix_nested(part, report, depth) if has_long_line(part) else part]
        cursor = end
    pieces.append(body[cursor:])
    if has_long_line(body[: spans[0][0]]) or has_long_line(body[spans[-1][1] :]):
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
    if not has_long_line(item.raw):
        return item.raw
    return fold_field(item.raw) or item.raw
