"""The service's side of the delivery trace: one record per mail, whatever the outcome; never at the mail's cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forwarder.config import Settings
from forwarder.mail.policy import Verdicts
from forwarder.ports import Inbound
from forwarder.service import ForwardingService
from forwarder.trace import forward_items
from tests.fakes import FakeDirectory, FakeSender, FakeStore, MemoryOnce

DOMAIN = "dev.aws-educate.tw"
MAIL = b"From: Alice <alice@example.com>\r\nTo: team@dev.aws-educate.tw\r\nSubject: Budget\r\n\r\nhello\r\n"


@dataclass
class RecordingTrace:
    records: list[tuple[Any, ...]] = field(default_factory=list)
    broken: bool = False

    def record(self, *args: Any) -> None:
        if self.broken:
            raise ConnectionError("DynamoDB is unreachable")
        self.records.append(args)

    def intend(self, *args: Any) -> None:
        """This trace writes only what it is told after the sends."""


def service(trace: RecordingTrace, aliases: dict[str, str], sender: FakeSender | None = None) -> ForwardingService:
    settings = Settings(domain=DOMAIN, bucket="bucket", alias_path="/email-forwarder/dev/aliases")
    return ForwardingService(
        settings, FakeStore({"m1": MAIL}), FakeDirectory(aliases), sender or FakeSender(), MemoryOnce(), trace=trace
    )


def inbound(**verdicts: str) -> Inbound:
    return Inbound(
        "m1",
        ("team@dev.aws-educate.tw", "nobody@dev.aws-educate.tw"),
        "alice@example.com",
        Verdicts(**verdicts),
        received_at="2026-11-30T09:14:30.123Z",
        subject="Budget",
    )


def test_service_trace_records_members_sent_and_skipped() -> None:
    # GIVEN an alias with two members and one on our own domain
    trace = RecordingTrace()
    outcome = service(trace, {"team": "a@x.org, b@y.org, loop@dev.aws-educate.tw"}).forward(inbound(spam="FAIL"))

    # WHEN its items are built from what the service recorded
    ((received, recorded_outcome, routing, decision),) = trace.records
    mail, alias_item = forward_items(received, recorded_outcome, routing, decision, subjects=False, expires=1)

    # THEN the record says who got it, who was skipped and why, and what was decided, without the subject
    assert recorded_outcome == outcome
    assert [(m["member"], m["status"]) for m in mail["members"]] == [
        ("a@x.org", "sent"),
        ("b@y.org", "sent"),
        ("loop@dev.aws-educate.tw", "skipped"),
    ]
    assert mail["members"][2]["detail"] == "on the forwarding domain (loop)"
    assert mail["decision"] == "forwarded, subject tagged as spam"
    assert mail["unknown"] == ["nobody@dev.aws-educate.tw"]
    assert (mail["received"], mail["day"], mail["lookup"]) == (
        "2026-11-30T09:14:30.123Z",
        "2026-11-30",
        "from#alice@example.com",
    )
    assert "subject" not in mail
    assert alias_item["lookup"] == "alias#team" and alias_item["received"] == mail["received"]
    assert (
        forward_items(received, recorded_outcome, routing, decision, subjects=True, expires=1)[0]["subject"] == "Budget"
    )


def test_service_trace_records_dropped_mail() -> None:
    trace = RecordingTrace()
    service(trace, {"team": "a@x.org"}).forward(inbound(virus="FAIL"))
    ((_, outcome, routing, _),) = trace.records
    assert outcome.reason == "virus" and routing is None


def test_service_trace_failure_is_logged_and_the_mail_forwarded_once() -> None:
    # GIVEN the trace table cannot be written WHEN a mail arrives twice (a retried event) THEN it goes out once
    sender = FakeSender()
    forwarding = service(RecordingTrace(broken=True), {"team": "a@x.org"}, sender)
    first = forwarding.forward(inbound())
    second = forwarding.forward(inbound())
    assert first.forwarded and second.forwarded
    assert len(sender.sent) == 1
