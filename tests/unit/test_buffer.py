"""The last copy of the message: the store reads it into a buffer with room, and no header block the
service writes into that buffer makes CPython allocate a second one (checked with tracemalloc)."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forwarder.aws.store import HEADROOM, SMALL_ROOM, S3MailStore, room_for
from forwarder.config import Settings
from forwarder.ports import Inbound, MessageBuffer
from forwarder.service import ForwardingService
from tests.fakes import FakeDirectory
from tests.mailcheck import from_addresses

DOMAIN = "dev.aws-educate.tw"
SIZE = 8_000_000
# A received head between the two forwarded ones (the signature is dropped, each alias adds its name):
# the first write shrinks the buffer from the front, the second is longer than the first.
HEAD = (
    b"From: A <a@example.com>\r\nTo: mkt@dev.aws-educate.tw\r\nSubject: s\r\nDKIM-Signature: b="
    + b"a" * 85
    + b"\r\n\r\n"
)


def big_mail() -> bytes:
    line = b"x" * 76 + b"\r\n"
    return HEAD + line * (SIZE // len(line))


@dataclass
class FakeS3:
    """GetObject of one object, streamed like botocore's body (readinto)."""

    data: bytes

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.data), "ContentLength": len(self.data)}


@dataclass
class PlainStore:
    """A store that reads into a buffer of exactly the message's size, as before the room."""

    data: bytes

    def read(self, message_id: str) -> bytearray:
        return bytearray(self.data)


@dataclass
class DigestSender:
    """Keeps a digest of each send, not a copy: a copy would be the allocation under test."""

    sends: list[tuple[str, str, bytes]] = field(default_factory=list)

    def send(
        self, raw: bytes | bytearray, from_address: str, recipients: Sequence[str], tags: dict[str, str] | None = None
    ) -> str:
        head = bytes(raw[: raw.find(b"\r\n\r\n") + 4])
        self.sends.append((from_address, hashlib.sha256(raw).hexdigest(), head))
        return f"ses-{len(self.sends)}"


def forward_peak(store: Any) -> tuple[int, DigestSender]:
    """Forward the mail to two aliases (the second head longer than the first); the traced peak above
    what was allocated before the forward."""
    sender = DigestSender()
    settings = Settings(domain=DOMAIN, bucket="bucket", alias_path="/email-forwarder/dev/aliases")
    directory = FakeDirectory({"mkt": "x@a.org", "events-and-workshops": "y@a.org"})
    service = ForwardingService(settings, store, directory, sender)
    inbound = Inbound("m1", (f"mkt@{DOMAIN}", f"events-and-workshops@{DOMAIN}"), "a@example.com")
    tracemalloc.start()
    try:
        raw = store.read("m1")  # the read itself, outside the measured part
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        store.read = lambda _message_id: raw
        outcome = service.forward(inbound)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert outcome.forwarded and outcome.recipients == 2
    return peak, sender


def test_store_read_puts_the_message_after_free_room() -> None:
    # GIVEN a stored object
    data = big_mail()
    # WHEN the store reads it
    raw = S3MailStore(FakeS3(data), "bucket", "inbound/").read("m1")  # type: ignore[arg-type]
    # THEN the buffer holds the room, then exactly the object
    assert isinstance(raw, MessageBuffer)
    assert raw.start == HEADROOM
    assert raw[raw.start :] == data


def test_store_leaves_a_small_message_less_room() -> None:
    # GIVEN a 5 KB message WHEN the store reads it THEN the room is a few KB, not the large messages' 64 KiB
    data = HEAD + b"x" * 5_000
    raw = S3MailStore(FakeS3(data), "bucket").read("m1")  # type: ignore[arg-type]
    assert isinstance(raw, MessageBuffer)
    assert raw.start == room_for(len(data)) == SMALL_ROOM
    assert raw[raw.start :] == data


def test_forward_writes_longer_heads_without_a_second_buffer() -> None:
    # GIVEN an 8 MB mail read by the S3 store, to two aliases: the first forwarded head shorter than the
    # received one, the second longer than the first
    data = big_mail()
    store = S3MailStore(FakeS3(data), "bucket", "inbound/")
    # WHEN it is forwarded
    peak, sender = forward_peak(store)
    # THEN no allocation the size of the message was made (the heads, a notice, logs: a few KB)
    assert peak < SIZE // 8, f"{peak:,} bytes allocated while forwarding"
    # AND each send is the alias's head followed by the untouched body
    body = data[len(HEAD) :]
    for (from_address, digest, head), alias in zip(sender.sends, ("mkt", "events-and-workshops"), strict=True):
        assert from_address == f"{alias}@{DOMAIN}"
        assert from_addresses(head) == [f"{alias}@{DOMAIN}"]
        assert digest == hashlib.sha256(head + body).hexdigest()
    assert len(sender.sends[1][2]) > len(HEAD) > len(sender.sends[0][2])


def test_forward_without_room_copies_the_message() -> None:
    # GIVEN the same mail in a buffer of exactly its size (what the store returned before)
    # WHEN it is forwarded
    peak, _ = forward_peak(PlainStore(big_mail()))
    # THEN the longer second head made CPython copy the message into a new buffer: what the room avoids
    assert peak > SIZE
