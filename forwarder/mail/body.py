"""Over-long body lines (found by `message.has_long_line`): re-encode only the MIME parts that have them.

SES refuses a message with a line over 1,000 octets. Forwarding such a message therefore changes
the transfer encoding of the offending parts (to quoted-printable for text, base64 otherwise), never
their decoded content; every other byte of the message stays as it was.

Two kinds of long line are not content and cannot be re-encoded: the delimiter lines of a multipart
whose boundary is too long (RFC 2046 allows 70 characters; a delimiter line over 998 octets needs
995), and the lines of its preamble and epilogue, which MIME readers ignore. Such a multipart gets
a new short boundary (delimiter lines and Content-Type parameter rewritten), and an over-long
preamble or epilogue line is cut into lines of at most 998 octets. What is still too long is
reported as unfixable: the caller must not send it.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from email.message import Message

from forwarder.mail import headers as h
from forwarder.mail.fields import fold_field, fold_list
from forwarder.mail.message import HeaderField, SplitMessage, has_long_line, split_message
from forwarder.mail.mime import MAX_DEPTH, content_type, part_spans, transfer_encoding


@dataclass(slots=True)
class BodyReport:
    """Which parts were re-encoded (content types only), which multiparts were repaired otherwise (a new
    boundary, cut preamble or epilogue lines) and which lines could not be fixed."""

    reencoded: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unfixable: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.reencoded or self.repaired)


def shorten_long_lines(message: SplitMessage) -> tuple[SplitMessage, BodyReport]:
    """The message with every over-long body line re-encoded away, and what was done."""
    report = BodyReport()
    fields, body = _fix_entity(message.fields, bytes(message.body), message.newline, report, 0, at_end=True)
    fixed = (
        split_message(_join_entity(fields, message.separator or message.newline, body)) if report.changed else message
    )
    if not report.unfixable and has_long_line(fixed.raw, fixed.body_start):
        report.unfixable.append("a line over 998 octets that is in no part's content")
    return fixed, report


def _fix_entity(
    fields: tuple[HeaderField, ...], body: bytes, newline: bytes, report: BodyReport, depth: int, at_end: bool = False
) -> tuple[tuple[HeaderField, ...], bytes]:
    """`at_end`: the body ends where the message ends, with the message's last line break (see `_fix_multipart`)."""
    if depth > MAX_DEPTH or not (has_long_line(body) or _unfoldable_content_type(fields)):
        return fields, body
    kind = content_type(fields)
    encoding = transfer_encoding(fields)
    if kind.get_content_maintype() == "multipart" and kind.get_boundary():
        return _fix_multipart(fields, body, kind, newline, report, depth, at_end)
    if not has_long_line(body):
        # Only the Content-Type line is long (a long file name, not a boundary): the field is folded or continued
        # where it stands (`_fold_part_field`, the header repair); a body of short lines is left as it came.
        return fields, body
    if kind.get_content_type() == "message/rfc822" and encoding in ("", "7bit", "8bit", "binary"):
        return fields, _fix_nested(body, report, depth, at_end)
    return _reencode_leaf(fields, body, kind, encoding, newline, report)


def _fix_multipart(
    fields: tuple[HeaderField, ...],
    body: bytes,
    kind: Message,
    newline: bytes,
    report: BodyReport,
    depth: int,
    at_end: bool = False,
) -> tuple[tuple[HeaderField, ...], bytes]:
    boundary = kind.get_boundary() or ""
    spans = part_spans(body, boundary)
    if not spans:
        report.unfixable.append(f"{kind.get_content_type()} without delimiters")
        return fields, body
    pieces: list[bytes] = []
    cursor = 0
    for start, end in spans:
        # The last part of a multipart without its closing delimiter runs to the end of the message, whose last
        # line break readers (the stdlib) drop from the content, once: it is kept out of a re-encoded part.
        if at_end and end == len(body):
            end = max(start, end - (2 if body.endswith(b"\r\n") else 1 if body.endswith(b"\n") else 0))
        part = body[start:end]
        pieces += [body[cursor:start], _fix_nested(part, report, depth) if has_long_line(part) else part]
        cursor = end
    pieces.append(body[cursor:])
    body = b"".join(pieces)
    marker = b"--" + boundary.encode("utf-8", "replace")
    long_delimiters = any(len(line.rstrip(b"\r\n")) > h.MAX_LINE for line in _delimiter_lines(body, marker))
    if long_delimiters or _unfoldable_content_type(fields):
        fields, body, boundary = _new_boundary(fields, body, marker, newline)
        marker = b"--" + boundary.encode()
        where = "delimiter lines" if long_delimiters else "Content-Type field"
        report.repaired.append(
            f"{kind.get_content_type()}: new boundary (the {where} of a {len(kind.get_boundary() or '')}"
            "-character boundary were over 998 octets)"
        )
    spans = part_spans(body, boundary)
    preamble, epilogue = body[: _line_start(body, spans[0][0])], body[spans[-1][1] :]
    if has_long_line(preamble) or has_long_line(epilogue):
        cut_preamble, cut_epilogue = _cut_lines(preamble, marker, newline), _cut_lines(epilogue, marker, newline)
        if cut_preamble is None or cut_epilogue is None:
            report.unfixable.append(f"{kind.get_content_type()}: preamble or epilogue line over 998 octets")
        else:
            body = cut_preamble + body[len(preamble) : len(body) - len(epilogue)] + cut_epilogue
            report.repaired.append(f"{kind.get_content_type()}: preamble or epilogue lines cut at 998 octets")
    return fields, body


def _unfoldable_content_type(fields: tuple[HeaderField, ...]) -> bool:
    """A Content-Type field over 998 octets that cannot be folded: a boundary too long to fit a line. Left
    so, the header repair would RFC 2047-encode it, and no MIME reader would find the parts."""
    field = next((f for f in fields if f.key == h.CONTENT_TYPE), None)
    return field is not None and has_long_line(field.raw) and fold_field(field.raw) is None


def _line_start(data: bytes, position: int) -> int:
    """Where the delimiter line before a part starts: the part begins after it."""
    line_end = position - 1
    return data.rfind(b"\n", 0, line_end) + 1 if line_end > 0 else 0


def _is_delimiter(line: bytes, marker: bytes) -> bool:
    """`--boundary` or `--boundary--`, then only white space (RFC 2046), as `mime.part_spans` reads it."""
    if not line.startswith(marker):
        return False
    rest = line[len(marker) :].rstrip(b"\r")
    return not (rest[2:] if rest.startswith(b"--") else rest).strip(b" \t")


def _delimiter_lines(body: bytes, marker: bytes) -> list[bytes]:
    return [line for line in body.split(b"\n") if _is_delimiter(line, marker)]


def _new_boundary(
    fields: tuple[HeaderField, ...], body: bytes, marker: bytes, newline: bytes
) -> tuple[tuple[HeaderField, ...], bytes, str]:
    """A fresh boundary (in no line of the body) in the delimiter lines and the Content-Type field."""
    boundary = f"=_forwarded_{secrets.token_hex(16)}"
    while boundary.encode() in body:
        boundary = f"=_forwarded_{secrets.token_hex(16)}"
    lines = body.split(b"\n")
    for index, line in enumerate(lines):
        if _is_delimiter(line, marker):
            closing = line[len(marker) : len(marker) + 2] == b"--"
            ending = b"\r" if line.endswith(b"\r") else b""
            lines[index] = f"--{boundary}{'--' if closing else ''}".encode() + ending
    holder = Message()
    old = next(f for f in fields if f.key == h.CONTENT_TYPE)
    holder["Content-Type"] = old.value.replace("\r", " ").replace("\n", " ")
    holder.set_boundary(boundary)
    value = str(holder["Content-Type"]).replace("\r", " ").replace("\n", " ")
    raw = f"{old.name}: {value}".encode("utf-8", "replace") + newline
    replaced = HeaderField(old.name, fold_field(raw) or raw)
    return tuple(replaced if f is old else f for f in fields), b"\n".join(lines), boundary


def _cut_lines(text: bytes, marker: bytes, newline: bytes) -> bytes | None:
    """`text` (a preamble or epilogue) with every line over 998 octets cut into lines of at most 998;
    None when a cut would make a line that reads as a delimiter."""
    out: list[bytes] = []
    for line in text.split(b"\n"):
        ending = b"\r" if line.endswith(b"\r") else b""
        content = line[: len(line) - len(ending)]
        if len(content) <= h.MAX_LINE:
            out.append(line)
            continue
        pieces = [content[i : i + h.MAX_LINE] for i in range(0, len(content), h.MAX_LINE)]
        if any(piece.startswith(marker) for piece in pieces[1:]):
            return None
        out.extend(piece + newline[:-1] for piece in pieces[:-1])
        out.append(pieces[-1] + ending)
    return b"\n".join(out)


def _reencode_leaf(
    fields: tuple[HeaderField, ...],
    body: bytes,
    content_type: Message,
    encoding: str,
    newline: bytes,
    report: BodyReport,
) -> tuple[tuple[HeaderField, ...], bytes]:
    if encoding == "base64":
        decoded = _decode_base64(body)
        if decoded is None:
            report.unfixable.append(f"{content_type.get_content_type()}: base64 that does not decode")
            return fields, body
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


def _decode_base64(body: bytes) -> bytes | None:
    """The decoded base64 `body`; a last quantum without its `=` padding is read as the stdlib (and so
    mail-parser) reads it, padded (email._encoded_words.decode_b). None when no reader can decode it."""
    try:
        return binascii.a2b_base64(body)
    except binascii.Error:
        pass
    try:
        return binascii.a2b_base64(body + b"==")
    except binascii.Error:
        return None


def _fix_nested(entity: bytes, report: BodyReport, depth: int, at_end: bool = False) -> bytes:
    inner = split_message(entity)
    fields, body = _fix_entity(inner.fields, bytes(inner.body), inner.newline, report, depth + 1, at_end)
    folded = tuple(HeaderField(f.name, _fold_part_field(f)) for f in fields)
    report.repaired += [
        f"{f.name} field of a part folded" for f, g in zip(fields, folded, strict=True) if f.raw != g.raw
    ]
    report.unfixable += [
        f"{f.name} field of a part over 998 octets, unfoldable" for f in folded if has_long_line(f.raw)
    ]
    return _join_entity(folded, inner.separator or inner.newline, body)


def _join_entity(fields: tuple[HeaderField, ...], separator: bytes, body: bytes) -> bytes:
    newline = b"\r\n" if separator == b"\r\n" else b"\n"
    head = b"".join(f.raw if f.raw.endswith(b"\n") else f.raw + newline for f in fields)
    return head + separator + body


def _fold_part_field(item: HeaderField) -> bytes:
    if not has_long_line(item.raw):
        return item.raw
    return fold_field(item.raw) or fold_list(item.name, item.raw) or item.raw
