"""split_message: the header block is parsed, the body is never touched."""

from __future__ import annotations

from forwarder.mail.message import split_message


def test_split_message_crlf_fields_and_body() -> None:
    # GIVEN a CRLF message with a folded header
    raw = b"From: a@example.com\r\nSubject: hello\r\n world\r\n\r\nbody line\r\n"
    # WHEN it is split
    message = split_message(raw)
    # THEN the fields keep their raw bytes and the body starts after the blank line
    assert [f.name for f in message.fields] == ["From", "Subject"]
    assert message.fields[1].raw == b"Subject: hello\r\n world\r\n"
    assert message.fields[1].value == "hello world"
    assert bytes(message.body) == b"body line\r\n"
    assert message.newline == b"\r\n"
    assert message.separator == b"\r\n"


def test_split_message_lf_only() -> None:
    message = split_message(b"From: a@example.com\nTo: b@example.com\n\nbody\n")
    assert message.newline == b"\n"
    assert bytes(message.body) == b"body\n"


def test_split_message_missing_separator_starts_body_at_first_non_header_line() -> None:
    # GIVEN headers followed directly by text, no empty line
    raw = b"From: a@example.com\r\nSubject: x\r\nThis is the body\r\nmore\r\n"
    # WHEN it is split
    message = split_message(raw)
    # THEN the body is the first line that is not a header, byte for byte
    assert [f.name for f in message.fields] == ["From", "Subject"]
    assert bytes(message.body) == b"This is the body\r\nmore\r\n"
    assert message.separator == b""  # the header block was not ended by an empty line


def test_split_message_headers_only_without_final_newline() -> None:
    message = split_message(b"From: a@example.com\r\nSubject: x")
    assert [f.name for f in message.fields] == ["From", "Subject"]
    assert bytes(message.body) == b""


def test_split_message_drops_leading_mbox_from_line() -> None:
    message = split_message(b"From alice@example.com Mon Jan  1 00:00:00 2001\nFrom: a@example.com\n\nhi\n")
    assert [f.name for f in message.fields] == ["From"]
    assert message.dropped_lines == 1


def test_split_message_accepts_space_before_colon_and_lower_case() -> None:
    message = split_message(b"subject : hi\r\nfrom: a@example.com\r\n\r\n")
    assert [f.key for f in message.fields] == ["subject", "from"]
    assert message.first("from") is not None


def test_split_message_empty_input() -> None:
    message = split_message(b"")
    assert message.fields == ()
    assert bytes(message.body) == b""


def test_split_message_body_is_a_view_not_a_copy() -> None:
    raw = b"From: a@example.com\r\n\r\n" + b"x" * 1000
    message = split_message(raw)
    assert message.body.obj is raw


def test_split_message_empty_field_name_does_not_end_the_header_block() -> None:
    # GIVEN a header block with a line whose field name is empty (and folded) in its middle
    raw = (
        b"From: a@example.com\r\nSubject: hi\r\n: some text\r\n  continued\r\n"
        b"In-Reply-To: <x@example.com>\r\nContent-Type: text/plain; charset=big5\r\n\r\nbody\r\n"
    )
    # WHEN it is split
    message = split_message(raw)
    # THEN the fields after it stay fields, the line and its continuation are dropped, the body is the body
    assert [f.name for f in message.fields] == ["From", "Subject", "In-Reply-To", "Content-Type"]
    assert message.fields[1].raw == b"Subject: hi\r\n"
    assert message.dropped_lines == 2
    assert bytes(message.body) == b"body\r\n"
    # AND the standard library reads the same fields
    import email

    parsed = email.message_from_bytes(raw)
    assert parsed["In-Reply-To"] == "<x@example.com>"
    assert parsed.get_content_charset() == "big5"


def test_split_message_reads_a_cr_only_header_block_line_by_line() -> None:
    # GIVEN a message with CR-only line endings (old Mac mailers; SMTP adds only the last CRLF)
    raw = b"From: Alice <alice@example.com>\rSubject: hello\r there\rContent-Type: text/plain\r\rbody line\rmore\r\n"
    # WHEN it is split
    message = split_message(raw)
    # THEN each CR ends a line, as the stdlib reads it: three fields (written with CRLF, the ending we send) and
    # the body, untouched, after the empty line; not one From field holding the whole mail (dropped by the rewrite)
    assert [f.raw for f in message.fields] == [
        b"From: Alice <alice@example.com>\r\n",
        b"Subject: hello\r\n there\r\n",
        b"Content-Type: text/plain\r\n",
    ]
    assert bytes(message.body) == b"body line\rmore\r\n"
    assert (message.newline, message.separator) == (b"\r\n", b"\r\n")
