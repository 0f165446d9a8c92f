"""Over-long body lines: found quickly, fixed by re-encoding only the offending parts."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forwarder.mail.body import has_long_line, shorten_long_lines
from forwarder.mail.message import split_message


def _reference_has_long_line(data: bytes) -> bool:
    return any(len(line.removesuffix(b"\r")) > 998 for line in data.split(b"\n"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a" * 998 + b"\r\n" + b"b" * 998, False),
        (b"a" * 999 + b"\nb", True),
        (b"a" * 998 + b"\nb", False),
        (b"x\n" + b"a" * 999, True),
        (b"x\n" + b"a" * 998 + b"\r\n", False),
        (b"x\n" + b"a" * 999 + b"\r\n", True),
        (b"", False),
        (b"a" * 60 + b"\n" + b"b" * 938 + b"\n" + b"c" * 10, False),
        (b"\tshort line\n" * 2719, False),
    ],
)
def test_has_long_line_boundaries(data: bytes, expected: bool) -> None:
    assert has_long_line(data) is expected


@given(
    st.lists(st.tuples(st.integers(0, 1200) | st.integers(900, 1000), st.sampled_from([b"\n", b"\r\n"])), max_size=30)
)
def test_has_long_line_agrees_with_the_obvious_definition(lines: list[tuple[int, bytes]]) -> None:
    data = b"".join(b"x" * length + ending for length, ending in lines)
    assert has_long_line(data) is _reference_has_long_line(data)


@given(
    st.integers(1, 998),
    st.integers(0, 9000),
    st.sampled_from([b"\n", b"\r\n"]),
    st.integers(0, 9000),
    st.integers(990, 1003),
)
def test_has_long_line_finds_a_long_line_inside_a_run_of_equal_lines(
    width: int, before: int, ending: bytes, after: int, long: int
) -> None:
    # GIVEN thousands of lines of one length (a base64 body) with one line of another length among them
    line = b"x" * max(0, width - len(ending)) + ending
    data = line * before + b"y" * long + ending + line * after
    # WHEN it is checked THEN the answer is the obvious definition's, wherever that line is
    assert has_long_line(data) is _reference_has_long_line(data)
    assert has_long_line(line * (before + after)) is False


def _payloads(raw: bytes) -> list[bytes]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return [part.get_payload(decode=True) for part in message.walk() if not part.is_multipart()]


def test_shorten_long_lines_reencodes_only_the_offending_part() -> None:
    # GIVEN a multipart mail whose text part has a 2,000-character line and whose image part is fine
    text = ("word " * 400).encode() + "café\r\n".encode()
    image = b"QUJD" * 19 + b"\r\n"
    raw = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + text
        + b"--XX\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + image
        + b"--XX--\r\n"
    )
    # WHEN the long lines are shortened
    fixed, report = shorten_long_lines(split_message(raw))
    # THEN no line is too long, the decoded content is the same, and the good part's bytes are unchanged
    assert not has_long_line(fixed.raw)
    assert _payloads(fixed.raw) == _payloads(raw)
    assert report.reencoded == ["text/plain: 8bit -> quoted-printable"]
    assert image in fixed.raw


def test_shorten_long_lines_single_part_base64_without_wrapping() -> None:
    data = bytes(range(256)) * 20
    import base64

    raw = b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n" + base64.b64encode(data) + b"\n"
    fixed, report = shorten_long_lines(split_message(raw))
    assert not has_long_line(fixed.raw)
    assert _payloads(fixed.raw) == [data]
    assert report.reencoded == ["application/pdf: base64 -> base64"]


def test_shorten_long_lines_inside_an_attached_message() -> None:
    inner = b"From: b@example.com\r\nContent-Type: text/html\r\n\r\n<p>" + b"x" * 3000 + b"</p>\r\n"
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: message/rfc822\r\n\r\n" + inner + b"--B--\r\n"
    )
    fixed, report = shorten_long_lines(split_message(raw))
    assert not has_long_line(fixed.raw)
    assert report.reencoded == ["text/html: 7bit -> quoted-printable"]
    assert _payloads(fixed.raw) == _payloads(raw)


def test_shorten_long_lines_leaves_a_clean_message_alone() -> None:
    message = split_message(b"From: a@example.com\r\n\r\nshort\r\n")
    fixed, report = shorten_long_lines(message)
    assert fixed is message
    assert report.reencoded == []
