"""Over-long body lines: found quickly, fixed by re-encoding only the offending parts."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from forwarder.mail.body import has_long_line, shorten_long_lines
from forwarder.mail.fields import fold_field
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


def _multipart(boundary: bytes, preamble: bytes = b"", epilogue: bytes = b"", nl: bytes = b"\r\n") -> bytes:
    return (
        b"From: a@example.com" + nl + b"MIME-Version: 1.0" + nl
        + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + nl + nl
        + preamble
        + b"--" + boundary + nl + b"Content-Type: text/plain; charset=utf-8" + nl + nl + b"hello" + nl
        + b"--" + boundary + nl + b"Content-Type: text/csv" + nl + b"Content-Disposition: attachment; filename=a.csv"
        + nl + nl + b"a,b" + nl + b"1,2" + nl
        + b"--" + boundary + b"--" + nl
        + epilogue
    )  # fmt: skip


def test_shorten_long_lines_gives_a_multipart_with_an_overlong_boundary_a_new_one() -> None:
    # GIVEN a multipart whose boundary (1,200 characters, RFC 2046 allows 70) makes its delimiter lines too long
    raw = _multipart(b"b" * 1200)
    # WHEN the long lines are shortened
    fixed, report = shorten_long_lines(split_message(raw))
    # THEN the delimiter lines and the Content-Type parameter carry a new, short boundary; the parts are unchanged
    assert not has_long_line(fixed.raw)
    assert report.unfixable == []
    assert report.repaired == ["multipart/mixed: new boundary (the delimiter lines of a 1200-character boundary "
                               "were over 998 octets)"]  # fmt: skip
    parsed = email.message_from_bytes(bytes(fixed.raw), policy=email.policy.default)
    boundary = parsed.get_boundary()
    assert boundary is not None and len(boundary) <= 70
    assert bytes(fixed.raw).count(b"--" + boundary.encode()) == 3
    assert _payloads(bytes(fixed.raw)) == _payloads(raw) == [b"hello", b"a,b\r\n1,2"]


def test_shorten_long_lines_cuts_an_overlong_preamble_and_epilogue() -> None:
    # GIVEN a multipart with a 3,000-octet preamble line and a 2,000-octet epilogue line (LF line endings)
    raw = _multipart(b"XX", b"p" * 3000 + b"\n", b"e" * 2000 + b"\n", nl=b"\n")
    # WHEN the long lines are shortened
    fixed, report = shorten_long_lines(split_message(raw))
    # THEN those lines are cut (MIME readers ignore them), the parts are unchanged, the cause is named
    assert not has_long_line(fixed.raw)
    assert report.unfixable == []
    assert report.repaired == ["multipart/mixed: preamble or epilogue lines cut at 998 octets"]
    assert bytes(fixed.raw).replace(b"\n", b"") == raw.replace(b"\n", b"")
    assert _payloads(bytes(fixed.raw)) == _payloads(raw)


def test_shorten_long_lines_new_boundary_in_a_nested_multipart() -> None:
    # GIVEN a nested multipart/alternative with an over-long boundary inside a normal multipart/mixed
    inner = _multipart(b"i" * 1000).split(b"\r\n", 2)[2]  # its Content-Type, blank line and parts
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=OUT\r\n\r\n--OUT\r\n" + inner + b"--OUT--\r\n"
    )
    # WHEN the long lines are shortened THEN the inner multipart gets a new boundary, the outer keeps its own
    fixed, report = shorten_long_lines(split_message(raw))
    assert not has_long_line(fixed.raw)
    assert report.unfixable == []
    assert split_message(fixed.raw).first("content-type").value == "multipart/mixed; boundary=OUT"  # type: ignore[union-attr]
    assert _payloads(bytes(fixed.raw)) == _payloads(raw)


def test_shorten_long_lines_continues_a_long_file_name_of_a_part() -> None:
    # GIVEN an attachment whose Content-Disposition names the file in one 1,080-octet RFC 2231 parameter
    name = "日本語の長いファイル名" * 10 + ".pdf"
    encoded = "".join(f"%{byte:02X}" for byte in name.encode()).encode()
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--B\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''" + encoded + b"\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n"
    )
    # WHEN the long lines are shortened
    fixed, report = shorten_long_lines(split_message(raw))
    # THEN the parameter is split into RFC 2231 continuations: the mail can be sent (no notice instead of it),
    # with the same parts and the same file name
    assert report.unfixable == []
    assert not has_long_line(fixed.raw)
    assert _payloads(bytes(fixed.raw)) == _payloads(raw)
    [attachment] = [p for p in email.message_from_bytes(bytes(fixed.raw)).walk() if p.get_filename()]
    assert attachment.get_filename() == name


def test_shorten_long_lines_keeps_the_body_of_a_part_whose_only_long_line_is_its_content_type() -> None:
    # GIVEN a part whose Content-Type names a file in 1,200 octets of RFC 2231 percent-encoding (one line, no white
    # space to fold at), and whose own lines are all short
    encoded = b"%E5%A0%B1" * 133
    text = b"total = 42   \r\nsee=you\r\n"
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain; charset=utf-8; name*=utf-8''" + encoded + b"\r\n\r\n" + text + b"--B--\r\n"
    )
    # WHEN the long lines are shortened
    fixed, report = shorten_long_lines(split_message(raw))
    # THEN the field is continued, and the part's body is not re-encoded: its bytes are the same
    assert not has_long_line(fixed.raw)
    assert report.reencoded == []
    assert report.unfixable == []
    assert b"\r\n\r\n" + text + b"--B--\r\n" in fixed.raw
    assert b"Content-Transfer-Encoding" not in fixed.raw
    assert _payloads(bytes(fixed.raw)) == _payloads(raw)


def test_shorten_long_lines_reports_what_it_cannot_fix() -> None:
    # GIVEN a "multipart" with no delimiter lines and a long line
    raw = b"Content-Type: multipart/mixed; boundary=NONE\r\n\r\n" + b"x" * 2000 + b"\r\n"
    # WHEN the long lines are shortened THEN the cause is reported as unfixable (the caller must not send it)
    _, report = shorten_long_lines(split_message(raw))
    assert report.unfixable == ["multipart/mixed without delimiters"]


@given(
    boundary=st.integers(1, 1500),
    preamble=st.integers(0, 2500),
    epilogue=st.integers(0, 2500),
    newline=st.sampled_from([b"\r\n", b"\n"]),
)
@example(boundary=957, preamble=0, epilogue=0, newline=b"\r\n")  # a top Content-Type line of 999 octets
def test_shorten_long_lines_leaves_no_long_line_in_a_multipart(
    boundary: int, preamble: int, epilogue: int, newline: bytes
) -> None:
    # GIVEN a multipart with boundary, preamble and epilogue lines of any length
    raw = _multipart(b"=" * boundary, b"p" * preamble + newline, b"e" * epilogue + newline, nl=newline)
    # WHEN the long lines are shortened THEN none is left in the body, the top header's long lines are ones the
    # header repair folds (the boundary is kept when its Content-Type folds), nothing is unfixable and the parts
    # read the same
    fixed, report = shorten_long_lines(split_message(raw))
    assert not has_long_line(fixed.raw, fixed.body_start)
    assert all(fold_field(f.raw) is not None for f in fixed.fields if has_long_line(f.raw))
    assert report.unfixable == []
    assert _payloads(bytes(fixed.raw)) == _payloads(raw)


def test_shorten_long_lines_new_boundary_when_only_the_content_type_line_is_too_long() -> None:
    # GIVEN a 990-character boundary: its delimiter lines fit in 998 octets, its Content-Type line does not, and
    # cannot be folded (a quoted string has no white space to fold at)
    raw = _multipart(b"c" * 990)
    assert not has_long_line(bytes(split_message(raw).body))
    # WHEN the long lines are shortened THEN the multipart gets a short boundary (else the header repair would
    # RFC 2047-encode the Content-Type and no reader would find the parts)
    fixed, report = shorten_long_lines(split_message(raw))
    assert not has_long_line(fixed.raw)
    assert report.repaired == ["multipart/mixed: new boundary (the Content-Type field of a 990-character boundary "
                               "were over 998 octets)"]  # fmt: skip
    assert _payloads(bytes(fixed.raw)) == _payloads(raw)


@pytest.mark.parametrize("tail", [b"QQ", b"QUE", b"QQ=", b"Q!Q"])
def test_shorten_long_lines_reads_base64_without_its_padding_as_mail_readers_do(tail: bytes) -> None:
    # GIVEN a base64 attachment on one 1,200-octet line whose last quantum lacks its `=` padding
    raw = (
        b"From: a@example.com\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b"QUFB" * 300
        + tail
        + b"\r\n"
    )
    # WHEN the long lines are shortened THEN nothing raises (binascii's Incorrect padding escaped the handler, and
    # Lambda retried the mail in vain), and the re-encoded part decodes to what the stdlib reads in the original
    fixed, report = shorten_long_lines(split_message(raw))
    assert report.unfixable == []
    assert not has_long_line(fixed.raw)
    assert _payloads(bytes(fixed.raw)) == _payloads(raw)


def test_shorten_long_lines_reports_base64_that_cannot_be_decoded() -> None:
    # GIVEN a long base64 line one character past a whole quantum: no reader can decode it
    raw = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b"QUFB" * 300 + b"Q\r\n"
    # WHEN the long lines are shortened THEN the part is left as it is and reported as unfixable (the member gets
    # the notice with the download link), instead of raising
    fixed, report = shorten_long_lines(split_message(raw))
    assert report.unfixable == ["image/png: base64 that does not decode"]
    assert bytes(fixed.raw) == raw


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_shorten_long_lines_keeps_the_last_line_break_of_an_unclosed_multipart_out_of_the_part(newline: bytes) -> None:
    # GIVEN a multipart without its closing delimiter whose last part, binary content sent as 7bit, has a long line
    raw = (
        b"Content-Type: multipart/mixed; boundary=XX" + newline + newline
        + b"--XX" + newline + b"Content-Type: application/octet-stream" + newline + newline
        + b"\x01" * 1200 + newline
    )  # fmt: skip
    # WHEN the long lines are shortened (the part is re-encoded as base64)
    fixed, report = shorten_long_lines(split_message(raw))
    # THEN the part decodes to the bytes readers find in the original: the line break that ends the message is not
    # part of the content (the stdlib drops it), so it is not encoded into the attachment
    assert report.reencoded == ["application/octet-stream: 7bit -> base64"]
    assert not has_long_line(fixed.raw)
    assert _payloads(bytes(fixed.raw)) == _payloads(raw) == [b"\x01" * 1200]


def test_shorten_long_lines_drops_the_messages_last_line_break_from_one_part_only() -> None:
    # GIVEN unclosed multiparts nested in each other (and in an attached message), the innermost part a long line
    leaf = b"Content-Type: application/octet-stream\r\n\r\n" + b"\x01" * 1200

    def unclosed(boundary: bytes, part: bytes) -> bytes:
        head = b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n"
        return head + b"--" + boundary + b"\r\n" + part + b"\r\n"

    attached = b"Content-Type: message/rfc822\r\n\r\nFrom: a@example.com\r\n"
    for raw in (unclosed(b"A", unclosed(b"B", leaf)), unclosed(b"A", attached + unclosed(b"B", leaf))):
        # WHEN the long lines are shortened THEN the part decodes as the stdlib reads the original: the message's
        # last line break is not content, the one before it (ending the inner multipart's part) is
        fixed, _ = shorten_long_lines(split_message(raw))
        assert _payloads(bytes(fixed.raw))[-1] == _payloads(raw)[-1] == b"\x01" * 1200 + b"\r\n"
