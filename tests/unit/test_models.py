"""The SES event models: every sample event parses; real-world gaps in SES events are accepted."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser import ValidationError, parse

from forwarder.models import SesEvent
from tests.conftest import EVENTS

SAMPLES = sorted(p.stem for p in Path(EVENTS).glob("*.json"))


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_events_parse(load_event: Any, name: str) -> None:
    event = parse(event=load_event(name), model=SesEvent)
    assert event.Records[0].ses.receipt.recipients


def test_event_without_to_subject_date_and_with_request_response(load_event: Any) -> None:
    event = copy.deepcopy(load_event("forward"))
    common = event["Records"][0]["ses"]["mail"]["commonHeaders"]
    for name in ("to", "subject", "date", "messageId", "returnPath"):
        common.pop(name, None)
    event["Records"][0]["ses"]["receipt"]["action"]["invocationType"] = "RequestResponse"
    event["Records"][0]["ses"]["receipt"]["processingTimeMillis"] = 0
    parsed = parse(event=event, model=SesEvent)
    assert parsed.Records[0].ses.mail.commonHeaders.to is None


def test_event_verdicts_and_dmarc_policy(load_event: Any) -> None:
    receipt = parse(event=load_event("dmarc-reject"), model=SesEvent).Records[0].ses.receipt
    verdicts = receipt.verdicts()
    assert (verdicts.dmarc, verdicts.dmarc_policy) == ("FAIL", "reject")
    assert receipt.dkimVerdict is not None


def test_event_disabled_scan_verdicts_are_accepted(load_event: Any) -> None:
    event = copy.deepcopy(load_event("forward"))
    event["Records"][0]["ses"]["receipt"]["spamVerdict"] = {"status": "DISABLED"}
    assert parse(event=event, model=SesEvent).Records[0].ses.receipt.verdicts().spam == "DISABLED"


def test_event_that_is_not_ses_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse(event={"Records": [{"eventSource": "aws:s3"}]}, model=SesEvent)
