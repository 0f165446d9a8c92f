"""Property tests: generated and mutated header blocks never break the contract."""

from __future__ import annotations

from boto3.dynamodb.types import TypeSerializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder.aws.trace import to_attribute
from forwarder.mail.body import shorten_long_lines
from forwarder.mail.message import split_message
from forwarder.mail.rewrite import RewriteOptions, rewrite_headers
from tests.conftest import corpus_files
from tests.mailcheck import assert_forwarded

DOMAIN = "dev.aws-educate.tw"
OPTIONS = RewriteOptions(domain=DOMAIN, subject_prefix="[dev]")

names = st.sampled_from(
    ["From", "from", "FROM", "Reply-To", "Sender", "Subject", "To", "Cc", "Date", "Message-ID", "DKIM-Signature",
     "Return-Path", "Delivered-To", "Received", "X-Custom", "Content-Type", "Comments", "List-Id", "X-SES-Forwarder"]
)  # fmt: skip
text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from(['"', "<", ">", "@", ",", ";", ":", "\\"]),
    max_size=80,
)
addresses = st.builds(
    lambda name, local, host: f'"{name}" <{local}@{host}.example>' if name else f"{local}@{host}.example",
    text,
    st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
)
encoded_words = st.builds(
    lambda payload: f"=?utf-8?q?{payload}?=", st.from_regex(r"[A-Za-z0-9=_%]{0,40}", fullmatch=True)
)
values = st.one_of(text, addresses, encoded_words, st.binary(max_size=120).map(lambda b: b.decode("latin-1")))
fields = st.lists(st.tuples(names, values, st.booleans()), max_size=14)
newlines = st.sampled_from([b"\r\n", b"\n"])
bodies = st.binary(max_size=300)


def build(items: list[tuple[str, str, bool]], newline: bytes, body: bytes, codec: str) -> bytes:
    lines = []
    for name, value, folded in items:
        raw = value.encode(codec, "replace").replace(b"\r", b" ").replace(b"\n", b" ")
        if folded and b" " in raw:
            raw = raw.replace(b" ", newline + b" ", 1)
        lines.append(name.encode() + b": " + raw + newline)
    return b"".join(lines) + newline + body


def forward(raw: bytes) -> bytes:
    message, _ = shorten_long_lines(split_message(raw))
    return rewrite_headers(message, "team", OPTIONS, "envelope@example.net").to_bytes()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields, newlines, bodies, st.sampled_from(["utf-8", "latin-1"]))
def test_generated_header_blocks_forward_within_the_contract(
    items: list[tuple[str, str, bool]], newline: bytes, body: bytes, codec: str
) -> None:
    raw = build(items, newline, body, codec)
    assert_forwarded(raw, forward(raw), "team", DOMAIN)


CORPUS = [p.read_bytes() for p in corpus_files()]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(CORPUS or [b""]), st.data())
def test_mutated_corpus_messages_never_raise(raw: bytes, data: st.DataObject) -> None:
    # GIVEN a corpus message with random bytes flipped, cut, inserted or duplicated in its first 2 KB
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, min(len(mutated), 2048)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "duplicate"]))
        if action == "flip" and position < len(mutated):
            mutated[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del mutated[position : position + data.draw(st.integers(1, 200))]
        elif action == "insert":
            mutated[position:position] = data.draw(
                st.sampled_from([b"\r", b"\n", b"\0", b":", b"\r\n\r\n", b" ", b"\xff"])
            )
        else:
            mutated[position:position] = mutated[position : position + data.draw(st.integers(1, 300))]
    # WHEN it is forwarded, THEN no exception escapes and the output obeys the header invariants
    output = forward(bytes(mutated))
    assert_forwarded(bytes(mutated), output, "team", DOMAIN, body_may_change=True)


_TRACE_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(value=_TRACE_VALUES)
def test_trace_attribute_serialisation_is_boto3s(value: object) -> None:
    # GIVEN any value of the types the trace writes (nested lists and maps of text, numbers, booleans, None)
    # THEN the direct serialisation is exactly boto3's TypeSerializer's
    assert to_attribute(value) == TypeSerializer().serialize(value)
