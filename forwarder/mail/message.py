"""Split a raw message into its header fields and its body, without touching the body."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from forwarder.mail import headers as h

if TYPE_CHECKING:
    from forwarder.mail.body import BodyReport

_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_ANY_BREAK = re.compile(rb"\r\n|\r|\n")
_MBOX_FROM = b"From "
_CR = 13
_LF = 10


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field exactly as received: name, colon, value, folding and line ending."""

    name: str
    raw: bytes
    # The field name in lower case, for comparisons (read a hundred times per mail: computed once).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.name.lower())

    @property
    def raw_value(self) -> bytes:
        """The bytes after the colon, folding kept, line ending removed."""
        value = self.raw[self.raw.index(b":") + 1 :]
        return value.rstrip(b"\r\n")

    @property
    def unfolded(self) -> bytes:
        """The value's bytes on one line, surrounding white space removed."""
        return _FOLD.sub(b"", self.raw_value).strip()

    @property
    def value(self) -> str:
        """The unfolded value as text, for decisions only (never re-sent): invalid UTF-8 is replaced."""
        return self.unfolded.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class SplitMessage:
    """A message as header fields plus the untouched body bytes that follow the header block."""

    fields: tuple[HeaderField, ...]
    raw: bytes | bytearray
    body_start: int
    newline: bytes
    separator: bytes
    dropped_lines: int = 0
    # Where the message starts in `raw`: bytes before it are a buffer's free room, not part of the message.
    start: int = 0
    # Each address field's (name, address) pairs once read (forwarder/mail/addresses.py `field_addresses`): the
    # From of a forward is read for the display name, the reply address and the conversation's people.
    read_addresses: dict[int, tuple[HeaderField, tuple[tuple[str, str], ...]]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    # How many characters of its address fields were read so far (one counter, mutable in this frozen record): the
    # stdlib's full parser reads only the first few KB of a message's fields (addresses.py `_FULL_PARSE_BUDGET`).
    address_characters: list[int] = field(default_factory=lambda: [0], init=False, compare=False, repr=False)

    @property
    def body(self) -> memoryview:
        """The bytes after the header block, as received (a view: the body is never copied here)."""
        return memoryview(self.raw)[self.body_start :]

    def first(self, key: str) -> HeaderField | None:
        """The first field named `key` (lower case), if any."""
        return next((field for field in self.fields if field.key == key), None)

    def all(self, key: str) -> tuple[HeaderField, ...]:
        """Every field named `key` (lower case), in order."""
        return tuple(field for field in self.fields if field.key == key)


def split_message(raw: bytes | bytearray, start: int = 0) -> SplitMessage:
    """Split the message `raw[start:]` at the end of its header block (positions count from the start
    of `raw`: bytes before `start` are free room, not part of the message).

    The header block ends at the first empty line. A line that is neither a header field nor a
    continuation of one also ends it (a message without the empty separator line): that line is
    the first line of the body. An mbox `From ` line before the first field is not part of the
    message and is dropped, as is a continuation line with no field before it.

    A line with an empty field name (`: text`) does not end the block: the standard library and
    Thunderbird read the fields after it as fields, and so do we, or threading and the charset would
    be lost. The line itself is dropped with its continuations (counted in `dropped_lines`): it is no
    field that anyone can read, and SES would refuse to send it.

    A message whose first line break is a bare CR (CR-only line endings: old Mac mailers, or hostile) has
    its header block read as the stdlib reads it, a line ending at each CR, LF or CRLF; its fields are
    written with CRLF (the newline and separator are CRLF) and its body is left as it is. Read otherwise,
    the whole mail would be one field.
    """
    fields: list[HeaderField] = []
    current: list[bytes | bytearray] = []
    current_name = ""
    newline = b"\r\n"
    dropped = 0
    position = start
    length = len(raw)
    cr_only = _cr_only(raw, start)

    def close_field() -> None:
        if current:
            field = b"".join(current)
            fields.append(HeaderField(current_name, _ANY_BREAK.sub(b"\r\n", field) if cr_only else field))
            current.clear()

    while position < length:
        if cr_only:
            found = _ANY_BREAK.search(raw, position)
            end = length if found is None else found.end()
        else:
            end = raw.find(b"\n", position)
            end = length if end < 0 else end + 1
        line = raw[position:end]
        if position == start:
            newline = b"\r\n" if cr_only or line.endswith(b"\r\n") else b"\n"
        if line in (b"\r\n", b"\n") or (cr_only and line == b"\r"):
            close_field()
            separator = b"\r\n" if cr_only else bytes(line)
            return SplitMessage(tuple(fields), raw, end, newline, separator, dropped, start)
        if line[:1] in (b" ", b"\t"):
            if current:
                current.append(line)
            else:
                dropped += 1
        elif match := _FIELD_NAME.match(line):
            close_field()
            current_name = match.group(1).decode("ascii")
            current.append(line)
        elif not fields and not current and line.startswith(_MBOX_FROM):
            dropped += 1
        elif line[:1] == b":":
            close_field()  # its continuation lines, now without a field before them, are dropped too
            dropped += 1
        else:
            close_field()
            return SplitMessage(tuple(fields), raw, position, newline, b"", dropped, start)
        position = end
    close_field()
    return SplitMessage(tuple(fields), raw, length, newline, b"", dropped, start)


def _cr_only(raw: bytes | bytearray, start: int) -> bool:
    """True when the first line break of `raw[start:]` is a CR without LF."""
    line_feed = raw.find(b"\n", start)
    carriage_return = raw.find(b"\r", start, len(raw) if line_feed < 0 else line_feed)
    return carriage_return >= 0 and carriage_return != line_feed - 1


def has_long_line(data: bytes | bytearray, start: int = 0) -> bool:
    """True when a line of `data[start:]` is longer than 998 octets (line ending excluded).

    Looks only at the last line feed of each 1,000-octet window, so a 30 MB body costs a few
    thousand searches, not one per line; a run of lines of one length (base64 and quoted-printable
    bodies, nearly all of a large mail) is stepped over at C speed.
    """
    limit = h.MAX_LINE
    end = len(data)
    position = start
    probe = 0  # windows until the next look for a run: text of varying lines is not looked at every time
    while end - position > limit:
        last = data.rfind(b"\n", position, position + limit + 2)
        if last < 0:
            return True
        if last == position + limit + 1 and data[last - 1] != _CR and data.rfind(b"\n", position, last) < 0:
            return True  # exactly 999 octets before a bare LF
        probe -= 1
        if probe <= 0:
            previous = data.rfind(b"\n", max(0, last - limit), last)
            width = last - previous
            if previous >= 0 and last + width < end and data[last + width] == _LF:
                last = _skip_same_width(data, last, width)
            else:
                probe = _PROBE_EVERY
        position = last + 1
    return False


_PROBE_EVERY = 8
_PROBE_LINES = 8
_RUN_LINES = 4096


def _skip_same_width(data: bytes | bytearray, last: int, width: int) -> int:
    """The line feed ending the run of lines that follow the one at `last`, each `width` octets long.

    Every line of the run is shorter than `width` (at most 998) octets, so none is too long; the run is
    found by one strided slice per few thousand lines. A short probe first keeps irregular text cheap.
    """
    count = _PROBE_LINES
    while True:
        ends = data[last + width : last + width * count + 1 : width]
        same = len(ends) - len(ends.lstrip(b"\n"))
        last += same * width
        if same < count:
            return last
        count = _RUN_LINES


def shorten_if_long(message: SplitMessage) -> tuple[SplitMessage, BodyReport | None]:
    """`message` with its over-long body lines re-encoded away and what was done (`forwarder.mail.body`), or
    `(message, None)` when no line of the whole message is over 998 octets. The whole message, not only the
    body: a boundary too long for its Content-Type line is fixed with the body."""
    if not has_long_line(message.raw, message.start):
        return message, None
    # Imported here: rare, and its imports (email.message, secrets) would cost every cold start.
    from forwarder.mail.body import shorten_long_lines

    return shorten_long_lines(message)
