"""The handler seam `forwarder.app.handle(event, context, service)` on fakes: outcomes, the park path, and
the metrics each outcome emits."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from forwarder.app import handle
from forwarder.config import Settings
from forwarder.observability import metrics
from forwarder.ports import SenderNotReadyError
from forwarder.service import ForwardingService
from tests.conftest import DOMAIN
from tests.fakes import FakeDirectory, FakeSender, FakeStore

MAIL = b"From: Alice <alice@example.com>\r\nTo: team@dev.aws-educate.tw\r\nSubject: hi\r\n\r\nhello\r\n"
NOT_READY = SenderNotReadyError("the domain identity is not verified", code="MailFromDomainNotVerifiedException")


@dataclass
class FakeParking:
    """Records what would have gone to the failure queue."""

    parked: list[tuple[dict[str, Any], Exception, str, str]] = field(default_factory=list)

    def park(self, event: dict[str, Any], error: Exception, request_id: str, function_arn: str) -> str:
        self.parked.append((event, error, request_id, function_arn))
        return f"sqs-{len(self.parked)}"


def make_service(
    event: dict[str, Any], sender: FakeSender | None = None, parking: FakeParking | None = None
) -> ForwardingService:
    mails = {record["ses"]["mail"]["messageId"]: MAIL for record in event["Records"]}
    settings = Settings(domain=DOMAIN, bucket="bucket", alias_path="/email-forwarder/dev/aliases")
    directory = FakeDirectory({"team": "a@x.org, b@y.org"})
    return ForwardingService(settings, FakeStore(mails), directory, sender or FakeSender(), parking=parking)


def emitted(text: str) -> dict[str, float]:
    """Metric name (with its reason dimension, if any) -> value, from the EMF lines printed to stdout."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        blob = json.loads(line)
        for definition in blob["_aws"]["CloudWatchMetrics"]:
            for metric in definition["Metrics"]:
                name = metric["Name"] + (f"[{blob['reason']}]" if "reason" in blob else "")
                values = blob[metric["Name"]]
                found[name] = found.get(name, 0) + sum(values if isinstance(values, list) else [values])
    return found


def flushed(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    metrics.flush_metrics()
    return emitted(capsys.readouterr().out)


def test_handle_forwards_each_record_and_counts_forwarded_and_recipients(
    load_event: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an event of two records for an alias of two members
    event = copy.deepcopy(load_event("forward"))
    second = copy.deepcopy(event["Records"][0])
    second["ses"]["mail"]["messageId"] = "second-message"
    event["Records"].append(second)
    sender = FakeSender()
    # WHEN the handler runs with the service
    result = handle(event, lambda_context, make_service(event, sender))
    # THEN both are forwarded, and the metrics count two messages to four recipients
    assert [o["forwarded"] for o in result["outcomes"]] == [True, True]
    assert len(sender.sent) == 2
    assert flushed(capsys) == {"Forwarded": 2, "Recipients": 4}


def test_handle_parks_an_event_ses_cannot_send_yet(
    load_event: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN SES refusing the whole environment (not ready), and a failure queue
    event = load_event("forward")
    parking = FakeParking()
    service = make_service(event, FakeSender(fail_calls={1: NOT_READY}), parking)
    # WHEN the handler runs
    result = handle(event, lambda_context, service)
    # THEN the record is parked with the invocation's request id and function ARN, not retried
    assert result["outcomes"] == [
        {
            "message_id": event["Records"][0]["ses"]["mail"]["messageId"],
            "forwarded": False,
            "reason": "parked",
            "recipients": 0,
            "aliases": [],
            "sent": [],
            "failed": [],
            "oversize": False,
            "reply": None,
        }
    ]
    [(parked_event, error, request_id, function_arn)] = parking.parked
    assert parked_event == {"Records": [event["Records"][0]]}
    assert error is NOT_READY
    assert (request_id, function_arn) == (lambda_context.aws_request_id, lambda_context.invoked_function_arn)
    # AND the metrics count it as parked, not dropped
    assert flushed(capsys) == {"Parked": 1}


def test_handle_without_a_failure_queue_lets_lambda_retry(load_event: Any, lambda_context: Any) -> None:
    # GIVEN SES not ready and no failure queue configured
    event = load_event("forward")
    service = make_service(event, FakeSender(fail_calls={1: NOT_READY}))
    # WHEN the handler runs THEN the error propagates (Lambda retries, then its on-failure destination)
    with pytest.raises(SenderNotReadyError):
        handle(event, lambda_context, service)


@pytest.mark.parametrize(("name", "reason"), [("virus", "virus"), ("dmarc-reject", "dmarc-reject")])
def test_handle_counts_a_drop_by_reason(
    load_event: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str], name: str, reason: str
) -> None:
    # GIVEN an event the policy drops
    event = load_event(name)
    # WHEN the handler runs
    result = handle(event, lambda_context, make_service(event))
    # THEN nothing is forwarded, and Dropped is counted in total and by its reason
    assert [(o["forwarded"], o["reason"]) for o in result["outcomes"]] == [(False, reason)]
    assert flushed(capsys) == {"Dropped": 1, f"Dropped[{reason}]": 1}


def test_handle_counts_an_unknown_recipient_drop(
    load_event: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a mail to an alias that has no list
    event = load_event("unknown-alias")
    # WHEN the handler runs
    handle(event, lambda_context, make_service(event))
    # THEN the drop is counted under its reason
    assert flushed(capsys) == {"Dropped": 1, "Dropped[unknown-recipient]": 1}
