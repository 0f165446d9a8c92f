"""The real Lambda handler end to end: S3 -> SSM -> rewrite -> SES v2 (captured below moto), DynamoDB."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from forwarder.config import SettingsError
from forwarder.models import first_inbound
from forwarder.ports import StoredMailError
from forwarder_ops.local import EmbeddedAws, SesRefusal, build_event, embedded_aws
from forwarder_ops.samples import iter_events
from tests.conftest import DOMAIN, EVENTS
from tests.mailcheck import assert_forwarded, from_addresses, parsed
from tests.oracle import assert_same_parts

EXPECTED = {
    "forward": (True, None),
    "plus-addressing": (True, None),
    "two-aliases": (True, None),
    "unknown-alias": (False, "unknown-recipient"),
    "spam": (True, None),
    "virus": (False, "virus"),
    "dmarc-reject": (False, "dmarc-reject"),
    "oversize": (True, None),
}


def test_every_sample_event_has_an_expected_outcome() -> None:
    assert sorted(sample.name for sample, _ in iter_events(EVENTS)) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_event_through_the_handler(aws: EmbeddedAws, demo_aliases: dict[str, list[str]], name: str) -> None:
    # GIVEN a committed sample event and its mail stored where the receipt rule would put it
    sample, event = next((s, e) for s, e in iter_events(EVENTS) if s.name == name)
    raw = sample.raw()
    aws.store_mail(raw, first_inbound(event).message_id)
    # WHEN the handler runs
    result = aws.invoke(event)
    # THEN the outcome is the expected one and every send obeys the contract
    outcome = result["outcomes"][0]
    assert (outcome["forwarded"], outcome["reason"]) == EXPECTED[name]
    sent = aws.ses.outbox
    assert len(sent) == len(outcome["sent"])
    members = [m for s in sent for m in s.recipients]
    assert len(members) == len(set(members)) == outcome["recipients"]
    for mail in sent:
        alias = mail.from_address.partition("@")[0]
        assert set(mail.recipients) <= set(demo_aliases[alias])
        if name == "oversize":
            assert len(mail.raw) < 10_000
            assert b"too large to forward" in mail.raw
        else:
            assert_forwarded(raw, mail.raw, alias, DOMAIN)
            assert_same_parts(raw, mail.raw)


def test_handler_forwards_eight_bit_non_utf8_mail_byte_for_byte(aws: EmbeddedAws) -> None:
    # GIVEN a KOI8-R mail with 8-bit header and body bytes that are not UTF-8
    raw = (
        b"From: \xf0\xc5\xd4\xd2 <petr@example.ru>\r\nTo: team@dev.aws-educate.tw\r\n"
        b"Subject: \xf0\xd2\xc9\xd7\xc5\xd4\r\nContent-Type: text/plain; charset=koi8-r\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n\xf0\xd2\xc9\xd7\xc5\xd4!\r\n"
    )
    # WHEN it is delivered to team@
    result, sent = aws.deliver(raw, ["team@dev.aws-educate.tw"])
    # THEN the members get the exact body bytes and the 8-bit subject
    assert result["outcomes"][0]["forwarded"]
    [mail] = sent
    assert mail.raw.endswith(b"\r\n\r\n\xf0\xd2\xc9\xd7\xc5\xd4!\r\n")
    assert b"Subject: \xf0\xd2\xc9\xd7\xc5\xd4\r\n" in mail.raw
    assert from_addresses(mail.raw) == ["team@dev.aws-educate.tw"]
    assert_forwarded(raw, mail.raw, "team", DOMAIN)


def test_handler_duplicate_event_is_not_sent_twice(aws: EmbeddedAws, load_eml: Any) -> None:
    raw = load_eml("workshop.eml")
    aws.store_mail(raw, "dup-1")
    event = build_event(raw, ["team@dev.aws-educate.tw"], message_id="dup-1")
    first = aws.invoke(event)
    second = aws.invoke(event)
    assert len(aws.ses.outbox) == 1
    assert second["outcomes"] == first["outcomes"]


def test_handler_builds_the_service_with_the_collector_paused_then_freezes_it_once(
    aws: EmbeddedAws, load_eml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a process whose first invocation is still to come, its collector and service builds watched
    import gc

    from forwarder import app, wiring

    app._cold_start.cache_clear()
    wiring.reset()
    builds: list[bool] = []
    frozen: list[int] = []

    def get_service() -> Any:
        builds.append(gc.isenabled())
        return wiring.get_service()

    monkeypatch.setattr(app, "get_service", get_service)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(len(aws.ses.outbox)))
    raw = load_eml("workshop.eml")
    # WHEN it forwards two mails
    for n in (1, 2):
        aws.store_mail(raw, f"cold-{n}")
        aws.invoke(build_event(raw, ["team@dev.aws-educate.tw"], message_id=f"cold-{n}"))
    # THEN the service was built with the collector paused, the collector runs again, what the build made was
    # frozen once before the first send, and each invocation found the service with the collector on
    assert builds == [False, True, True]
    assert gc.isenabled()
    assert frozen == [0]
    assert len(aws.ses.outbox) == 2


def test_handler_retry_after_throttling_completes_without_resending(aws: EmbeddedAws) -> None:
    # GIVEN an alias of 120 members and SES throttling the second batch
    members = [f"member{i:03d}@example.org" for i in range(120)]
    aws.set_aliases({"big": members})
    aws.ses.refuse_calls[2] = SesRefusal("TooManyRequestsException", "Maximum sending rate exceeded")
    raw = b"From: a@example.com\r\nTo: big@dev.aws-educate.tw\r\nSubject: all hands\r\n\r\nhello\r\n"
    aws.store_mail(raw, "retry-1")
    event = build_event(raw, ["big@dev.aws-educate.tw"], message_id="retry-1")
    # WHEN the first invocation fails (Lambda would retry) and the retry runs
    with pytest.raises(Exception, match="TooManyRequests"):
        aws.invoke(event)
    assert [len(s.recipients) for s in aws.ses.outbox] == [50]
    result = aws.invoke(event)
    # THEN every member got exactly one copy
    assert [len(s.recipients) for s in aws.ses.outbox] == [50, 50, 20]
    assert sorted(m for s in aws.ses.outbox for m in s.recipients) == members
    assert result["outcomes"][0]["recipients"] == 120


def test_handler_sees_alias_edits_without_redeploy(aws: EmbeddedAws) -> None:
    raw = b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id="edit-1")
    aws.set_aliases({"team": ["new.member@example.org"]})
    _, sent = aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id="edit-2")
    assert sent[0].recipients == ("new.member@example.org",)


def test_handler_missing_stored_mail_raises_naming_bucket_and_key(aws: EmbeddedAws, load_eml: Any) -> None:
    event = build_event(load_eml("booth.eml"), ["mkt@dev.aws-educate.tw"], message_id="never-stored")
    with pytest.raises(StoredMailError, match=r"s3://local-forwarder-mail/inbound/never-stored is missing"):
        aws.invoke(event)


def test_handler_unverified_domain_is_refused_and_raised(aws: EmbeddedAws, load_eml: Any) -> None:
    from forwarder.ports import SenderNotReadyError

    boto3.client("ses", region_name="us-east-1").delete_identity(Identity=DOMAIN)
    with pytest.raises(SenderNotReadyError, match="not verified"):
        aws.deliver(load_eml("booth.eml"), ["mkt@dev.aws-educate.tw"], message_id="unverified-1")


def test_handler_without_settings_fails_with_one_line(monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    import gc

    from forwarder.app import _cold_start, lambda_handler

    _cold_start.cache_clear()  # the first invocation of a process: its failing build runs with the collector paused
    for name in ("FORWARDER_DOMAIN", "FORWARDER_BUCKET", "FORWARDER_ALIAS_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FORWARDER_BUCKET", "bucket")
    monkeypatch.setenv("FORWARDER_ALIAS_PATH", "/aliases")
    event = json.loads((EVENTS / "forward.json").read_text())
    with pytest.raises(SettingsError, match=r"^FORWARDER_DOMAIN is required$"):
        lambda_handler(event, lambda_context)
    assert gc.isenabled()


def test_handler_logs_and_metrics_carry_no_mail_content(
    aws: EmbeddedAws, load_eml: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from forwarder.observability import logger

    raw = load_eml("booth.eml")
    aws.deliver(raw, ["mkt@dev.aws-educate.tw", "event@dev.aws-educate.tw"], message_id="privacy-1")
    logs = [json.loads(logger.registered_formatter.format(record)) for record in caplog.records]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert any(r["message"] == "forwarded" and r["outcome"]["recipients"] == 3 for r in logs)
    assert any(r.get("Forwarded") == [1.0] and r.get("Recipients") == [3.0] for r in metrics)
    text = json.dumps(logs) + json.dumps(metrics)
    for secret in ("booth plan is attached", "Booth plan for the student fair", "xiaoyu.wang", "dana.wu"):
        assert secret not in text


def test_handler_counts_drops_by_reason(aws: EmbeddedAws, load_eml: Any, capsys: pytest.CaptureFixture[str]) -> None:
    aws.deliver(load_eml("prize.eml"), ["team@dev.aws-educate.tw"], message_id="virus-1", virus="FAIL")
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert any(r.get("reason") == "virus" and r.get("Dropped") == [1.0] for r in metrics)


def test_handler_uses_the_configuration_set() -> None:
    with embedded_aws(
        DOMAIN, {"team": ["a@example.org"]}, settings={"FORWARDER_CONFIGURATION_SET": "forwarder-dev"}
    ) as aws:
        _, sent = aws.deliver(b"From: x@example.com\r\n\r\nhi\r\n", ["team@dev.aws-educate.tw"])
    assert sent[0].configuration_set == "forwarder-dev"
    assert parsed(sent[0].raw)["From"].addresses[0].addr_spec == "team@dev.aws-educate.tw"


def test_handler_parks_what_cannot_succeed_instead_of_retrying(
    load_eml: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a failure queue and a domain identity SES does not (or no longer) consider verified
    from forwarder_ops.redrive import parse_record

    with embedded_aws(DOMAIN, {"mkt": ["a@example.org"]}) as aws:
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="forwarder-failures")["QueueUrl"]
        monkeypatch = pytest.MonkeyPatch()
        monkeypatch.setenv("FORWARDER_FAILURE_QUEUE_URL", queue)
        from forwarder import wiring

        wiring.reset()
        boto3.client("ses", region_name="us-east-1").delete_identity(Identity=DOMAIN)
        # WHEN a mail arrives
        result, sent = aws.deliver(load_eml("booth.eml"), ["mkt@dev.aws-educate.tw"], message_id="parked-1")
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        monkeypatch.undo()
    # THEN nothing is sent, the invocation succeeds (no vain Lambda retries), and the event waits in the
    # failure queue in the shape `forwarder redrive` replays
    assert sent == []
    assert result["outcomes"][0]["reason"] == "parked"
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert any(r.get("Parked") == [1.0] for r in metrics)
    assert not any("Dropped" in r for r in metrics)
    [message] = messages
    parked = parse_record(message["MessageId"], message["ReceiptHandle"], message["Body"])
    assert parked.message_id == "parked-1"
    assert parked.recipients == ("mkt@dev.aws-educate.tw",)
    assert parked.condition == "NotRetryable"
    assert "SenderNotReadyError" in parked.error
    assert "not verified in us-east-1" in parked.error
