"""In-memory stand-ins for the adapters, for service tests without AWS."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forwarder.ports import Result


@dataclass
class FakeStore:
    mails: dict[str, bytes] = field(default_factory=dict)
    reads: int = 0

    def read(self, message_id: str) -> bytes:
        from forwarder.ports import StoredMailError

        self.reads += 1
        if message_id not in self.mails:
            raise StoredMailError(f"stored mail s3://bucket/inbound/{message_id} is missing")
        return self.mails[message_id]


@dataclass
class FakeDirectory:
    values: dict[str, str] = field(default_factory=dict)

    def aliases(self) -> dict[str, str]:
        return dict(self.values)


@dataclass
class Sent:
    raw: bytes
    from_address: str
    recipients: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeSender:
    """Records sends; `fail` maps a call number (1-based) or a recipient to the exception to raise."""

    sent: list[Sent] = field(default_factory=list)
    fail_calls: dict[int, Exception] = field(default_factory=dict)
    fail_recipients: dict[str, Exception] = field(default_factory=dict)
    calls: int = 0

    def send(
        self,
        raw: bytes | bytearray,
        from_address: str,
        recipients: Sequence[str],
        tags: dict[str, str] | None = None,
    ) -> str:
        self.calls += 1
        if self.calls in self.fail_calls:
            raise self.fail_calls[self.calls]
        for recipient in recipients:
            if recipient in self.fail_recipients:
                raise self.fail_recipients[recipient]
        self.sent.append(
            Sent(bytes(raw), from_address, tuple(recipients), dict(tags or {}))
        )  # the service reuses its buffer
        return f"ses-{self.calls}"

    @property
    def recipients(self) -> list[str]:
        return [r for s in self.sent for r in s.recipients]


@dataclass
class MemoryOnce:
    """Idempotency with an in-memory table: completed keys return their saved result."""

    done: dict[str, Result] = field(default_factory=dict)

    def __call__(self, key: Result, work: Callable[[], Result]) -> Result:
        name = repr(sorted(key.items()))
        if name not in self.done:
            self.done[name] = work()
        return self.done[name]

    def register_context(self, context: Any) -> None:
        """Nothing to expire."""

    def tags(self, key: Result) -> dict[str, str]:
        return {}

    def settle(self) -> None:
        """Every completion is recorded at once."""


@dataclass
class MemoryReplies:
    """The reply table in memory; `fail_saves` makes `save` raise `ReplyStoreError`."""

    records: dict[str, Any] = field(default_factory=dict)
    fail_saves: bool = False

    def save(self, record: Any) -> None:
        from forwarder.ports import ReplyStoreError

        if self.fail_saves:
            raise ReplyStoreError("reply table replies: ProvisionedThroughputExceededException")
        self.records[record.reply_id] = record

    def load(self, reply_id: str) -> Any:
        return self.records.get(reply_id)
