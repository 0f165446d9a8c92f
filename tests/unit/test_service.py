"""The forwarding service with in-memory adapters: routing, batching, refusals, idempotent retries."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from forwarder.config import Settings
from forwarder.mail.policy import Verdicts
from forwarder.ports import (
    Inbound,
    MessageRejectedError,
    RecipientNotVerifiedError,
    SenderNotReadyError,
    StoredMailError,
)
from forwarder.service import ForwardingService
from tests.fakes import FakeDirectory, FakeSender, FakeStore, MemoryOnce
from tests.mailcheck import assert_forwarded, from_addresses

DOMAIN = "dev.aws-educate.tw"
MAIL = b"From: Alice <alice@example.com>\r\nTo: team@dev.aws-educate.tw\r\nSubject: hi\r\n\r\nhello\r\n"


def make_service(
    aliases: dict[str, str],
    mails: dict[str, bytes] | None = None,
    sender: FakeSender | None = None,
    once: MemoryOnce | None = None,
    **settings: object,
) -> tuple[ForwardingService, FakeStore, FakeSender]:
    store = FakeStore(mails if mails is not None else {"m1": MAIL})
    sender = sender or FakeSender()
    config = Settings(domain=DOMAIN, bucket="bucket", alias_path="/email-forwarder/dev/aliases", **settings)  # type: ignore[arg-type]
    service = ForwardingService(config, store, FakeDirectory(aliases), sender, once, notice=None, links=None)
    return service, store, sender


def inbound(*recipients: str, message_id: str = "m1", **verdicts: str) -> Inbound:
    return Inbound(message_id, recipients or ("team@dev.aws-educate.tw",), "alice@example.com", Verdicts(**verdicts))


def test_forward_sends_rewritten_mail_to_members_only() -> None:
    service, _, sender = make_service({"team": "a@x.org, b@y.org"})
    outcome = service.forward(inbound())
    assert outcome.forwarded and outcome.recipients == 2 and outcome.aliases == ("team",)
    [sent] = sender.sent
    assert sent.recipients == ("a@x.org", "b@y.org")
    assert sent.from_address == "team@dev.aws-educate.tw"
    assert from_addresses(sent.raw) == ["team@dev.aws-educate.tw"]
    # members never appear in the headers
    assert b"a@x.org" not in sent.raw and b"b@y.org" not in sent.raw
    assert_forwarded(MAIL, sent.raw, "team", DOMAIN)


def test_forward_120_members_in_batches_of_50() -> None:
    members = [f"member{i:03d}@example.org" for i in range(120)]
    service, _, sender = make_service({"team": ",".join(members)})
    outcome = service.forward(inbound())
    assert [len(s.recipients) for s in sender.sent] == [50, 50, 20]
    assert sender.recipients == members
    assert outcome.recipients == 120 and len(outcome.sent) == 3


def test_forward_two_aliases_each_member_once_with_its_own_from() -> None:
    service, _, sender = make_service({"mkt": "x@a.org, both@a.org", "event": "both@a.org, y@a.org"})
    service.forward(inbound("mkt@dev.aws-educate.tw", "event@dev.aws-educate.tw"))
    assert [(s.from_address, s.recipients) for s in sender.sent] == [
        ("mkt@dev.aws-educate.tw", ("x@a.org", "both@a.org")),
        ("event@dev.aws-educate.tw", ("y@a.org",)),
    ]
    assert from_addresses(sender.sent[1].raw) == ["event@dev.aws-educate.tw"]


@pytest.mark.parametrize(
    ("verdicts", "reason"),
    [({"virus": "FAIL"}, "virus"), ({"dmarc": "FAIL", "dmarc_policy": "reject"}, "dmarc-reject")],
)
def test_forward_policy_drops_without_reading_the_mail(verdicts: dict[str, str], reason: str) -> None:
    service, store, sender = make_service({"team": "a@x.org"})
    outcome = service.forward(inbound(**verdicts))
    assert (outcome.forwarded, outcome.reason) == (False, reason)
    assert store.reads == 0 and sender.sent == []


def test_forward_spam_is_tagged_or_dropped() -> None:
    service, _, sender = make_service({"team": "a@x.org"})
    service.forward(inbound(spam="FAIL"))
    assert b"Subject: [SPAM] hi\r\n" in sender.sent[0].raw
    service, _, sender = make_service({"team": "a@x.org"}, spam_action="drop")
    assert service.forward(inbound(spam="FAIL")).reason == "spam"
    assert sender.sent == []


def test_forward_unknown_alias_and_alias_without_valid_members() -> None:
    service, _, _ = make_service({"team": "a@x.org", "empty": "not-an-address"})
    assert service.forward(inbound("nobody@dev.aws-educate.tw")).reason == "unknown-recipient"
    assert service.forward(inbound("empty@dev.aws-educate.tw")).reason == "no-valid-members"


def test_forward_loop_is_dropped() -> None:
    looped = b"X-SES-Forwarder: dev.aws-educate.tw\r\n" + MAIL
    service, _, sender = make_service({"team": "a@x.org"}, mails={"m1": looped})
    assert service.forward(inbound()).reason == "loop"
    assert sender.sent == []


def test_forward_mail_from_another_environment_is_forwarded() -> None:
    other = b"X-SES-Forwarder: aws-educate.tw\r\n" + MAIL
    service, _, sender = make_service({"team": "a@x.org"}, mails={"m1": other})
    assert service.forward(inbound()).forwarded
    assert sender.sent[0].raw.count(b"X-SES-Forwarder:") == 2


def test_forward_missing_stored_mail_raises_naming_the_location() -> None:
    service, _, _ = make_service({"team": "a@x.org"}, mails={})
    with pytest.raises(StoredMailError, match=r"s3://bucket/inbound/m1"):
        service.forward(inbound())


def test_forward_partial_failure_is_completed_on_retry_without_resending() -> None:
    # GIVEN 120 members and SES throttling the second batch (after botocore's own retries)
    throttled = ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "SendEmail")
    sender = FakeSender(fail_calls={2: throttled})
    once = MemoryOnce()
    members = ",".join(f"m{i:03d}@example.org" for i in range(120))
    service, _, _ = make_service({"team": members}, sender=sender, once=once)
    # WHEN the first invocation fails and Lambda retries the same event
    with pytest.raises(ClientError):
        service.forward(inbound())
    assert [len(s.recipients) for s in sender.sent] == [50]
    outcome = service.forward(inbound())
    # THEN batch 1 is not sent again, batches 2 and 3 are, and a third delivery of the event sends nothing
    assert [len(s.recipients) for s in sender.sent] == [50, 50, 20]
    assert len(set(sender.recipients)) == 120
    assert outcome.recipients == 120
    service.forward(inbound())
    assert len(sender.sent) == 3


def test_forward_sandbox_rejection_sends_one_by_one_and_reports_the_unverified() -> None:
    rejected = RecipientNotVerifiedError("sandbox", code="MessageRejected", recipients=("bad@x.org",))
    sender = FakeSender(fail_recipients={"bad@x.org": rejected})
    service, _, _ = make_service({"team": "a@x.org, bad@x.org, c@x.org"}, sender=sender, once=MemoryOnce())
    outcome = service.forward(inbound())
    assert sender.recipients == ["a@x.org", "c@x.org"]
    assert outcome.failed == ("bad@x.org",)
    assert outcome.recipients == 2 and outcome.forwarded


def test_forward_rejected_message_does_not_stop_other_aliases() -> None:
    rejected = MessageRejectedError("rejected", code="MessageRejected")
    sender = FakeSender(fail_calls={1: rejected})
    service, _, _ = make_service({"mkt": "a@x.org", "event": "b@x.org"}, sender=sender)
    outcome = service.forward(inbound("mkt@dev.aws-educate.tw", "event@dev.aws-educate.tw"))
    assert sender.recipients == ["b@x.org"]
    assert outcome.failed == ("a@x.org",)


def test_forward_sender_not_ready_raises_for_retry_and_parking() -> None:
    not_ready = SenderNotReadyError("identity not verified", code="MessageRejected")
    service, _, _ = make_service({"team": "a@x.org"}, sender=FakeSender(fail_calls={1: not_ready}))
    with pytest.raises(SenderNotReadyError):
        service.forward(inbound())


def test_forward_everyone_rejected_is_not_forwarded() -> None:
    rejected = MessageRejectedError("rejected", code="MessageRejected")
    service, _, _ = make_service({"team": "a@x.org"}, sender=FakeSender(fail_calls={1: rejected}))
    outcome = service.forward(inbound())
    assert (outcome.forwarded, outcome.reason, outcome.failed) == (False, "rejected-by-ses", ("a@x.org",))


def test_forward_long_body_line_is_reencoded_before_sending() -> None:
    mail = b"From: a@example.com\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 5000 + b"\r\n"
    service, _, sender = make_service({"team": "a@x.org"}, mails={"m1": mail})
    service.forward(inbound())
    raw = sender.sent[0].raw
    assert b"Content-Transfer-Encoding: quoted-printable" in raw
    assert_forwarded(mail, raw, "team", DOMAIN, body_may_change=True)


def test_forward_unknown_address_goes_to_the_catch_all_alias_under_its_own_name() -> None:
    # GIVEN the documented catch-all alias `_catchall` (FORWARDER_CATCH_ALL_ALIAS's default)
    service, _, sender = make_service({"team": "a@x.org", "_catchall": "ops@x.org"})
    # WHEN mail arrives for an address without an alias
    outcome = service.forward(inbound("sales@dev.aws-educate.tw"))
    # THEN the catch-all members get it, from the address it was sent to
    assert outcome.forwarded
    assert [(s.from_address, s.recipients) for s in sender.sent] == [("sales@dev.aws-educate.tw", ("ops@x.org",))]
    assert from_addresses(sender.sent[0].raw) == ["sales@dev.aws-educate.tw"]


@pytest.fixture
def info_logs() -> Iterator[io.StringIO]:
    """The function's JSON log lines at the level deployed (INFO), written here for the test to read."""
    from forwarder.observability import logger

    handler = logger.registered_handler
    previous_level, previous_stream = logger.log_level, handler.stream  # type: ignore[attr-defined]
    stream = io.StringIO()
    logger.setLevel("INFO")
    handler.stream = stream  # type: ignore[attr-defined]
    yield stream
    handler.stream = previous_stream  # type: ignore[attr-defined]
    logger.setLevel(previous_level)


def test_forward_logs_one_line_with_the_header_fields_changed(info_logs: io.StringIO) -> None:
    # GIVEN a signed mail (its DKIM-Signature is removed on the way) with a secret in the signature's value
    signed = b"DKIM-Signature: v=1; b=secretvalue\r\n" + MAIL
    service, _, _ = make_service({"team": "a@x.org"}, {"m1": signed})
    # WHEN it is forwarded
    service.forward(inbound())
    # THEN one log line says so, naming the removed field but never its value
    lines = [json.loads(line) for line in info_logs.getvalue().splitlines()]
    [forwarded] = lines
    assert forwarded["message"] == "forwarded"
    assert forwarded["header_changes"] == {"removed": ["DKIM-Signature"]}
    assert "secretvalue" not in info_logs.getvalue()


def test_forward_logs_hostile_field_names_cut_to_size(info_logs: io.StringIO) -> None:
    # GIVEN a mail with a field whose name is 1,200 characters, and 30 fields with a NUL in their values
    hostile = b"X-" + b"N" * 1200 + b": v\r\n" + b"".join(b"X-Nul-%d: a\0b\r\n" % i for i in range(30)) + MAIL
    service, _, _ = make_service({"team": "a@x.org"}, {"m1": hostile})
    # WHEN it is forwarded
    service.forward(inbound())
    # THEN the log line names the fields changed, each name shortened and at most 20 of them
    [forwarded] = [json.loads(line) for line in info_logs.getvalue().splitlines()]
    changes = forwarded["header_changes"]
    assert changes["dropped"] == ["X-" + "N" * 59 + "..."]
    assert changes["sanitized"][:2] == ["X-Nul-0", "X-Nul-1"]
    assert changes["sanitized"][20:] == ["... 10 more"] and len(changes["sanitized"]) == 21
    assert len(info_logs.getvalue()) < 2_000
