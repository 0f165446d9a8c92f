"""Contract invariants of a forwarded message, shared by unit, corpus, property and integration tests."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from forwarder.mail import headers as h
from forwarder.mail.body import has_long_line
from forwarder.mail.message import SplitMessage, split_message


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def from_addresses(raw: bytes) -> list[str]:
    """Every address the stdlib finds in every From field of `raw`."""
    message = parsed(raw)
    return [a.addr_spec for value in message.get_all("From", []) for a in value.addresses]


def assert_forwarded(original: bytes, output: bytes, alias: str, domain: str, *, body_may_change: bool = False) -> None:
    """The contract's invariants for one forwarded message."""
    before, after = split_message(original), split_message(output)
    keys = [f.key for f in after.fields]
    # exactly one From, one address, ours
    assert keys.count("from") == 1, keys
    assert from_addresses(output) == [f"{alias}@{domain}"]
    # removed headers are gone, single-instance headers appear once, the marker is there
    assert not set(keys) & h.REMOVED
    for name in h.SINGLE_INSTANCE:
        assert keys.count(name) <= 1, name
    assert h.MARKER.lower() in keys
    # no line over 998 octets (SES would refuse the message)
    assert not has_long_line(output)
    # the body is untouched (unless a part had to be re-encoded for over-long lines)
    if not body_may_change:
        assert bytes(after.body) == bytes(before.body)
    # every other header is kept in order, byte for byte (modulo our own fixes)
    assert_other_headers_kept(before, after, {h.CONTENT_TRANSFER_ENCODING} if body_may_change else set())


def assert_other_headers_kept(before: SplitMessage, after: SplitMessage, also_touched: set[str]) -> None:
    touched = {"from", "reply-to", "subject", h.MARKER.lower()} | h.REMOVED | also_touched
    seen: set[str] = set()
    expected = []
    for f in before.fields:
        if f.key in touched or (f.key in h.SINGLE_INSTANCE and f.key in seen):
            continue
        seen.add(f.key)
        expected.append(f)
    kept = [f for f in after.fields if f.key not in touched]
    expected_names = [f.key for f in expected]
    kept_names = [f.key for f in kept]
    # Fields may only be dropped (an unfoldable X- header), never added or reordered.
    iterator = iter(expected_names)
    assert all(name in iterator for name in kept_names), (expected_names, kept_names)
    remaining = list(kept)
    for original in expected:
        match = next((f for f in remaining if f.key == original.key), None)
        if match is None:
            assert original.key.startswith("x-"), original.name
            continue
        remaining.remove(match)
        long_line = any(len(line.rstrip(b"\r")) > h.MAX_LINE for line in original.raw.split(b"\n"))
        dirty = b"\0" in original.raw or b"\r" in original.raw.replace(b"\r\n", b"")
        dirty = dirty or original.raw[len(original.name) : len(original.name) + 1] != b":"
        dirty = dirty or _odd_lines(original.raw, before.newline)
        if not long_line and not dirty and original.raw.endswith(b"\n"):
            assert match.raw == original.raw, original.name


def _odd_lines(raw: bytes, newline: bytes) -> bool:
    """A field the rewrite evens out: a line ending other than the message's, or a continuation line of only
    white space."""
    lines = raw.split(b"\n")
    endings_differ = any(line.endswith(b"\r") != (newline == b"\r\n") for line in lines[:-1])
    return (
        endings_differ
        or any(not line.strip(b" \t\r") for line in lines[1:-1])
        or (len(lines) > 1 and lines[-1] != b"" and not lines[-1].strip(b" \t\r"))
    )
