"""The trace table adapter on moto: concurrent events for one member merge, alarms are claimed once, an address
that cannot be a member fails no other."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from forwarder.aws.trace import DynamoDBTrace
from forwarder.delivery import record_events
from forwarder.trace import TraceEntry, mail_pk, member_sk
from forwarder_ops.local import create_trace_table
from tests import sesevents

TABLE = "trace"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_trace_table(client, TABLE)
        yield client


class Interleaving:
    """A client whose first PutItem lets another writer in between our read and our write."""

    def __init__(self, client: Any, other: DynamoDBTrace, entry: TraceEntry) -> None:
        self._client, self._other, self._entry = client, other, entry
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **request: Any) -> Any:
        self.puts += 1
        if self.puts == 1:
            assert self._other.add_event("m1", "team", "bob@gmail.com", self._entry)
        return self._client.put_item(**request)


def test_trace_table_concurrent_events_for_one_member_both_kept(dynamodb: Any) -> None:
    # GIVEN SES's Send and Delivery for bob handled by two invocations at once
    send = TraceEntry("2026-11-30T09:14:31.000Z", "sent", "Send", "send-key")
    delivered = TraceEntry("2026-11-30T09:14:33.000Z", "delivered", "Delivery", "delivery-key")
    other = DynamoDBTrace(dynamodb, TABLE, 30)
    racing = Interleaving(dynamodb, other, send)

    # WHEN the Delivery's write finds that the Send landed between its read and its write
    assert DynamoDBTrace(racing, TABLE, 30).add_event("m1", "team", "Bob@Gmail.com", delivered)  # type: ignore[arg-type]

    # THEN it merged again: both events are in the history and the state is the later one
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": mail_pk("m1")}, "sk": {"S": member_sk("bob@gmail.com")}})
    assert racing.puts == 2
    assert [e["M"]["state"]["S"] for e in item["Item"]["history"]["L"]] == ["sent", "delivered"]
    assert item["Item"]["state"]["S"] == "delivered"
    assert int(item["Item"]["expires"]["N"]) > 0
    # AND a redelivery of either event adds nothing
    assert not other.add_event("m1", "team", "bob@gmail.com", send)


def test_trace_table_alarm_claimed_once_until_released(dynamodb: Any) -> None:
    trace = DynamoDBTrace(dynamodb, TABLE, 30)
    assert trace.claim_alarm("team", "bob@gmail.com", "bounce")
    assert not trace.claim_alarm("team", "bob@gmail.com", "bounce")
    assert trace.claim_alarm("team", "bob@gmail.com", "complaint")
    trace.release_alarm("team", "bob@gmail.com", "bounce")
    assert trace.claim_alarm("team", "bob@gmail.com", "bounce")


class Subjects:
    """The alarm topic: the subjects published."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(self, subject: str, message: str) -> None:
        self.sent.append(subject)


def test_trace_table_a_bounced_address_that_cannot_be_a_member_does_not_fail_the_others(dynamodb: Any) -> None:
    # GIVEN a bounce whose DSN names, beside bob, a Final-Recipient longer than a key holds, one with a line
    # break, and an empty one (what the receiving server wrote)
    mail = sesevents.mail_object("ses-1", ["bob@gmail.com"], {"inbound": "m1", "alias": "team"}, "2026-11-30T09:14:31Z")
    event = sesevents.bounce(mail, "bob@gmail.com", "2026-11-30T09:14:34Z", "Permanent", "General", "smtp; 550")
    hostile = ["x" * 1100 + "@gmail.com", "eve@gmail.com\r\nSubject: forged", ""]
    event["bounce"]["bouncedRecipients"][:0] = [{"emailAddress": a, "status": "5.1.1"} for a in hostile]
    alarms = Subjects()
    # WHEN the delivery function records it
    result = record_events(sesevents.sns_event(event), DynamoDBTrace(dynamodb, TABLE, 30), alarms)
    # THEN bob's bounce is recorded and alarmed; the others are left out instead of failing the record for good
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": mail_pk("m1")}, "sk": {"S": member_sk("bob@gmail.com")}})
    assert item["Item"]["state"]["S"] == "bounced"
    assert result["added"] == 1
    assert alarms.sent == ["Forwarder: bob@gmail.com of alias team: bounce"]


def test_trace_table_a_huge_diagnostic_is_recorded_shortened(dynamodb: Any) -> None:
    # GIVEN a bounce whose receiving server wrote a 250 KB diagnostic (the record fits in SNS's 256 KB; the
    # member's item would hold it twice, beyond DynamoDB's 400 KB)
    mail = sesevents.mail_object("ses-1", ["bob@gmail.com"], {"inbound": "m1", "alias": "team"}, "2026-11-30T09:14:31Z")
    event = sesevents.bounce(mail, "bob@gmail.com", "2026-11-30T09:14:34Z", "Permanent", "General", "5" * 250_000)
    # WHEN the delivery function records it
    result = record_events(sesevents.sns_event(event), DynamoDBTrace(dynamodb, TABLE, 30), None)
    # THEN bob's bounce is recorded (not failed for good), with the start of the diagnostic
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": mail_pk("m1")}, "sk": {"S": member_sk("bob@gmail.com")}})
    assert result["added"] == 1
    assert item["Item"]["state"]["S"] == "bounced"
    assert item["Item"]["detail"]["S"].startswith("Permanent/General: 5555")
    assert len(item["Item"]["detail"]["S"]) <= 1000


def test_trace_table_a_lone_surrogate_in_an_event_does_not_fail_it(dynamodb: Any) -> None:
    # GIVEN a bounce whose JSON holds lone surrogates (valid JSON escapes, no text) in an address and the diagnostic
    mail = sesevents.mail_object("ses-1", ["bob@gmail.com"], {"inbound": "m1", "alias": "team"}, "2026-11-30T09:14:31Z")
    event = sesevents.bounce(mail, "bob@gmail.com", "2026-11-30T09:14:34Z", "Permanent", "General", "smtp; 550 \udfff")
    event["bounce"]["bouncedRecipients"].append({"emailAddress": "\ud800carol@gmail.com", "status": "5.1.1"})
    # WHEN the delivery function records it
    result = record_events(sesevents.sns_event(event), DynamoDBTrace(dynamodb, TABLE, 30), None)
    # THEN both steps are recorded, each surrogate read as "?" (not a UnicodeEncodeError on every retry)
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": mail_pk("m1")}, "sk": {"S": member_sk("bob@gmail.com")}})
    assert result["added"] == 2
    assert item["Item"]["detail"]["S"] == "Permanent/General: smtp; 550 ?"


def test_trace_table_keeps_the_outside_mark_of_a_relayed_reply_step(dynamodb: Any) -> None:
    # GIVEN the outside sender's bounce of a relayed reply, recorded by the adapter
    trace = DynamoDBTrace(dynamodb, TABLE, 30)
    entry = TraceEntry("2026-11-30T09:14:34.000Z", "bounced", "Bounce", "b", "Permanent/General", outside=True)
    assert trace.add_event("m1", "team", "carol@customer.example", entry)
    # WHEN a later event for that address is merged (the item is read back) THEN the mark is still there
    later = TraceEntry("2026-11-30T09:20:00.000Z", "bounced", "Bounce", "c", "Permanent/General", outside=True)
    assert trace.add_event("m1", "team", "carol@customer.example", later)
    key = {"pk": {"S": mail_pk("m1")}, "sk": {"S": member_sk("carol@customer.example")}}
    item = dynamodb.get_item(TableName=TABLE, Key=key)["Item"]
    assert [e["M"]["outside"]["BOOL"] for e in item["history"]["L"]] == [True, True]
