"""The SES event models: every sample event parses; real-world gaps in SES events are accepted;
anything the forwarder reads is checked, and a bad event names the field; an odd unread field is tolerated."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from forwarder.models import EventError, first_inbound, parse_event
from tests.conftest import EVENTS

SAMPLES = sorted(p.stem for p in Path(EVENTS).glob("*.json"))


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_events_parse(load_event: Any, name: str) -> None:
    event = parse_event(load_event(name))
    record = event.records[0]
    assert record.receipt.recipients
    assert record.mail.message_id == load_event(name)["Records"][0]["ses"]["mail"]["messageId"]


def test_event_without_to_subject_date_and_with_request_response(load_event: Any) -> None:
    event = copy.deepcopy(load_event("forward"))
    common = event["Records"][0]["ses"]["mail"]["commonHeaders"]
    for name in ("to", "subject", "date", "messageId", "returnPath"):
        common.pop(name, None)
    event["Records"][0]["ses"]["receipt"]["action"]["invocationType"] = "RequestResponse"
    event["Records"][0]["ses"]["receipt"]["processingTimeMillis"] = 0
    parsed = parse_event(event).records[0]
    assert parsed.mail.common_headers.to is None
    assert parsed.mail.common_headers.subject is None
    assert parsed.receipt.invocation_type == "RequestResponse"


def test_event_verdicts_and_dmarc_policy(load_event: Any) -> None:
    receipt = parse_event(load_event("dmarc-reject")).records[0].receipt
    verdicts = receipt.verdicts()
    assert (verdicts.dmarc, verdicts.dmarc_policy) == ("FAIL", "reject")
    assert receipt.dkim == "PASS"


def test_event_inbound_carries_spf_and_dkim_for_the_reply_relay(load_event: Any) -> None:
    # GIVEN an event whose SPF failed and whose DKIM verdict is missing
    event = copy.deepcopy(load_event("forward"))
    receipt = event["Records"][0]["ses"]["receipt"]
    receipt["spfVerdict"] = {"status": "FAIL"}
    del receipt["dkimVerdict"]
    # THEN the service sees exactly that: no DKIM verdict is not a PASS
    verdicts = parse_event(event).records[0].inbound().verdicts
    assert (verdicts.spf, verdicts.dkim) == ("FAIL", None)


def test_event_upper_case_dmarc_policy_and_disabled_scans(load_event: Any) -> None:
    event = copy.deepcopy(load_event("forward"))
    receipt = event["Records"][0]["ses"]["receipt"]
    receipt["spamVerdict"] = {"status": "DISABLED"}
    receipt["dmarcPolicy"] = "QUARANTINE"
    del receipt["dkimVerdict"]
    parsed = parse_event(event).records[0].receipt
    assert (parsed.spam, parsed.dmarc_policy, parsed.dkim) == ("DISABLED", "quarantine", None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["Records"][0].update(eventSource="aws:s3"), r"Records\[0\]\.eventSource"),
        (lambda e: e["Records"][0]["ses"]["mail"].pop("messageId"), r"mail\.messageId: expected str"),
        (lambda e: e["Records"][0]["ses"]["receipt"].update(recipients=[]), r"receipt\.recipients: empty"),
        (lambda e: e["Records"][0]["ses"]["receipt"].update(recipients=[1]), r"list of strings"),
        (lambda e: e["Records"][0]["ses"]["receipt"]["virusVerdict"].update(status="MAYBE"), r"virusVerdict\.status"),
        (lambda e: e["Records"][0]["ses"]["mail"].update(source=None), r"mail\.source: expected str"),
        (lambda e: e["Records"][0]["ses"]["receipt"].pop("dmarcVerdict"), r"receipt\.dmarcVerdict: expected dict"),
        (lambda e: e["Records"][0]["ses"]["receipt"]["spamVerdict"].pop("status"), r"spamVerdict\.status"),
        (lambda e: e["Records"][0]["ses"]["receipt"].update(dmarcPolicy="maybe"), r"dmarcPolicy"),
        (lambda e: e.update(Records=[]), r"event\.Records: empty"),
        (lambda e: e.pop("Records"), r"event\.Records: expected list"),
    ],
)
def test_bad_events_are_refused_naming_the_field(load_event: Any, change: Any, message: str) -> None:
    event = copy.deepcopy(load_event("forward"))
    change(event)
    with pytest.raises(EventError, match=message):
        parse_event(event)


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["Records"][0]["ses"]["receipt"]["action"].update(type="S3"),
        lambda e: e["Records"][0]["ses"]["receipt"]["action"].update(invocationType="Sync"),
        lambda e: e["Records"][0]["ses"]["receipt"].pop("action"),
        lambda e: e["Records"][0]["ses"]["receipt"].update(timestamp=12),
        lambda e: e["Records"][0]["ses"]["mail"].update(timestamp=None, destination="team", headersTruncated="no"),
        lambda e: e["Records"][0]["ses"]["mail"].update(headers={"odd": True}, commonHeaders=[]),
        lambda e: e["Records"][0]["ses"]["mail"]["commonHeaders"].update(to=[1], subject=["x"], date=0),
        lambda e: e["Records"][0].update(eventVersion=2, extra={"new": "field"}),
    ],
)
def test_parse_event_tolerates_odd_unread_fields(load_event: Any, change: Any) -> None:
    # GIVEN a real event with one field the forwarder never reads changed to something odd
    event = copy.deepcopy(load_event("forward"))
    change(event)
    # WHEN it is parsed
    inbound = first_inbound(event)
    # THEN what the service needs is exactly what the untouched event gives (the receipt time and subject,
    # which only the delivery trace notes, become unknown when they are odd)
    untouched = first_inbound(load_event("forward"))
    assert dataclasses.replace(inbound, received_at=untouched.received_at, subject=untouched.subject) == untouched


@pytest.mark.parametrize(
    ("change", "verdict"),
    [
        (lambda e: e["Records"][0]["ses"]["receipt"].update(spfVerdict={"status": "SOFTFAIL"}), "spf"),
        (lambda e: e["Records"][0]["ses"]["receipt"].update(dkimVerdict="PASS"), "dkim"),
    ],
)
def test_parse_event_tolerates_odd_authentication_verdicts(load_event: Any, change: Any, verdict: str) -> None:
    # GIVEN a real event whose SPF or DKIM verdict (read only to authenticate a member's reply) is odd
    event = copy.deepcopy(load_event("forward"))
    change(event)
    # WHEN it is parsed
    inbound = first_inbound(event)
    # THEN the mail is accepted as it is, and the odd verdict does not count as a PASS
    assert getattr(inbound.verdicts, verdict) != "PASS"
    untouched = first_inbound(load_event("forward"))
    assert dataclasses.replace(inbound, verdicts=untouched.verdicts) == untouched


def test_first_inbound_is_the_first_records_inbound(load_event: Any) -> None:
    # GIVEN a sample event
    event = load_event("dmarc-reject")
    ses = event["Records"][0]["ses"]
    # WHEN its inbound is taken
    inbound = first_inbound(event)
    # THEN it carries the message id, recipients, envelope sender and verdicts of the record
    assert inbound.message_id == ses["mail"]["messageId"]
    assert inbound.recipients == tuple(ses["receipt"]["recipients"])
    assert inbound.envelope_sender == ses["mail"]["source"]
    assert (inbound.verdicts.dmarc, inbound.verdicts.dmarc_policy) == ("FAIL", "reject")
