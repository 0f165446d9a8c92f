"""Just enough MIME structure to walk a message's parts by their boundaries, bytes untouched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from forwarder.mail import headers as h
from forwarder.mail.message import HeaderField, split_message

MAX_DEPTH = 20
_HEADER_LIMIT = 256 * 1024  # a part header block longer than this is taken as body

Buffer = bytes | bytearray


def content_type(fields: tuple[HeaderField, ...]) -> Message:
    """A stdlib `Message` holding only the Content-Type (and Content-Disposition), for its parameter
    parsing: `get_content_type()`, `get_boundary()`, `get_filename()` (RFC 2231 included)."""
    holder = Message()
    kind = next((f.value for f in fields if f.key == h.CONTENT_TYPE), "text/plain")
    holder["Content-Type"] = _read_parameters(_one_line(kind))
    disposition = next((f.value for f in fields if f.key == "content-disposition"), None)
    if disposition is not None:
        holder["Content-Disposition"] = _read_parameters(_one_line(disposition))
    return holder


# The stdlib's parameter parser copies the rest of the value at each parameter: its time grows with the square of the
# number of parameters (a minute for a 2 MB field, past Lambda's timeout on every retry). A value this long is handed
# to it with only the parameters the walk and its callers read, found by one linear pass.
_PARAMETERS_LIMIT = 4096
_READ_PARAMETERS = frozenset({"boundary", "charset", "name", "filename"})
# A parameter (or the type before the first): up to a `;` outside a quoted string, as the stdlib splits them.
_PARAMETER = re.compile(r'(?:[^;"]|"(?:[^"\\]|\\.)*"?)+')


def _read_parameters(value: str) -> str:
    if len(value) <= _PARAMETERS_LIMIT:
        return value
    kind, *parameters = [match.group().strip() for match in _PARAMETER.finditer(value)] or [""]
    read = [p for p in parameters if p.partition("=")[0].partition("*")[0].strip().lower() in _READ_PARAMETERS]
    return "; ".join([kind, *read])


def transfer_encoding(fields: tuple[HeaderField, ...]) -> str:
    """The Content-Transfer-Encoding in lower case, `""` when absent."""
    return next((f.value for f in fields if f.key == h.CONTENT_TRANSFER_ENCODING), "").strip().lower()


def _one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def _delimiters(data: Buffer, boundary: bytes, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
    """(line start, line end, is closing) of each delimiter line `--boundary[--][WSP]` in data[start:end].

    A plain substring search: a 40 MB body has hundreds of thousands of lines and a handful of
    delimiters, so looking only where the boundary occurs is much faster than a per-line regex.
    """
    marker = b"--" + boundary
    position = data.find(marker, start, end)
    while position >= 0:
        if position == start or data[position - 1 : position] == b"\n":
            line_end = data.find(b"\n", position, end)
            line_end = end if line_end < 0 else line_end
            rest = bytes(data[position + len(marker) : line_end]).rstrip(b"\r")
            closing = rest.startswith(b"--")
            if not (rest[2:] if closing else rest).strip(b" \t"):
                yield position, line_end, closing
        position = data.find(marker, position + len(marker), end)


def part_spans(data: Buffer, boundary: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each part of the multipart body `data[start:end]` between the delimiter lines
    of `boundary` (RFC 2046): the line break before a delimiter belongs to it. A last part without a
    closing delimiter runs to the end."""
    end = len(data) if end is None else end
    delimiters = list(_delimiters(data, boundary.encode("utf-8", "replace"), start, end))
    if not delimiters:
        return []
    spans = []
    for (_, line_end, closing), following in zip(delimiters, [*delimiters[1:], None], strict=True):
        if closing:
            break
        part_start = min(line_end + 1, end)
        if following is None:
            spans.append((part_start, end))
            break
        part_end = following[0]
        part_end -= (
            2 if data[part_end - 2 : part_end] == b"\r\n" else 1 if data[part_end - 1 : part_end] == b"\n" else 0
        )
        spans.append((part_start, max(part_start, part_end)))
    return spans


@dataclass(frozen=True, slots=True)
class Leaf:
    """A part that is not multipart: its header fields and where its body lies in the message."""

    fields: tuple[HeaderField, ...]
    data: Buffer
    start: int
    end: int


def walk_leaves(fields: tuple[HeaderField, ...], data: Buffer, start: int, end: int, depth: int = 0) -> Iterator[Leaf]:
    """Every leaf part of the entity whose body is `data[start:end]`, depth first, without copying
    the bodies; an attached message (message/rfc822) is a leaf too."""
    kind = content_type(fields)
    boundary = kind.get_boundary()
    if kind.get_content_maintype() == "multipart" and boundary and depth < MAX_DEPTH:
        for part_start, part_end in part_spans(data, boundary, start, end):
            head = split_message(bytes(data[part_start : min(part_end, part_start + _HEADER_LIMIT)]))
            yield from walk_leaves(head.fields, data, part_start + head.body_start, part_end, depth + 1)
    else:
        yield Leaf(fields, data, start, end)
