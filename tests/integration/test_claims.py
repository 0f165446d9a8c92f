"""Sends claimed on DynamoDB (moto): the claim rides with the mail's queued writes, completion by a write or
by SES's Send event (the template's send-event mode), retries and duplicates in each state of a claim."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from forwarder import wiring
from forwarder.aws.claims import COMPLETED, INPROGRESS, DynamoDBClaims, PendingWrites, claim_hash
from forwarder.delivery import record_events
from forwarder.ports import ClaimInProgressError
from forwarder_ops.local import (
    REPLY_TABLE,
    TABLE,
    TRACE_TABLE,
    EmbeddedAws,
    SentMail,
    SesRefusal,
    build_event,
    embedded_aws,
)
from tests import sesevents

DOMAIN = "dev.aws-educate.tw"
TEAM = ["ming@example.com", "bob@example.net"]
MAIL = b"From: Alice <alice@customer.example>\r\nTo: team@dev.aws-educate.tw\r\nSubject: Quote\r\n\r\nhello\r\n"
AUTHENTIC = {"spf": "PASS", "dkim": "PASS", "dmarc": "PASS"}
SEND_EVENTS = {"FORWARDER_IDEMPOTENCY_COMPLETION": "send-event", "FORWARDER_CONFIGURATION_SET": "forwarder-dev"}


@pytest.fixture
def deployed() -> Iterator[EmbeddedAws]:
    """As the template deploys it: team replies, the trace table, send-event completion."""
    with embedded_aws(DOMAIN, {"team": TEAM}, trace=True, reply_mode="team", settings=SEND_EVENTS) as aws:
        yield aws


def dynamodb_calls() -> Counter[str]:
    """Counts the DynamoDB operations of clients made from now on (call `wiring.reset()` first)."""
    seen: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        seen[model.name] += 1

    boto3.DEFAULT_SESSION.events.register("before-call.dynamodb", count)  # type: ignore[union-attr]
    return seen


def claims_table() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=TABLE)["Items"]


def table(name: str) -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=name)["Items"]


def mail_item() -> dict[str, Any]:
    [mail] = [item for item in table(TRACE_TABLE) if item["sk"]["S"] == "mail"]
    return mail


def send_events(sent: list[SentMail]) -> dict[str, Any]:
    """SES's Send events of `sent`, as SNS hands them to the delivery function."""
    records = [
        sesevents.send(sesevents.mail_object(s.message_id, s.recipients, dict(s.tags), "2026-11-30T09:15:00.000Z"))
        for s in sent
    ]
    return sesevents.sns_event(*records)


def deliver_events(event: dict[str, Any]) -> dict[str, int]:
    """The delivery function's work on `event`, wired from this environment's variables as in Lambda
    (FORWARDER_TRACE_TABLE, FORWARDER_IDEMPOTENCY_TABLE: the claims are completed)."""
    from forwarder.delivery import get_adapters

    get_adapters.cache_clear()
    trace, alarm, complete = get_adapters()
    assert complete is not None
    return record_events(event, trace, alarm, complete)


def pass_the_deadline(claim: dict[str, Any]) -> int:
    """Move an in-progress claim's deadline into the past (the run that holds it died, or timed out); returns it."""
    past = int(time.time() * 1000) - 1000
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"id": claim["id"]},
        UpdateExpression="SET in_progress_expiration = :past",
        ExpressionAttributeValues={":past": {"N": str(past)}},
    )
    return past


def test_as_deployed_a_mail_costs_one_dynamodb_request_before_its_send_and_none_after(
    deployed: EmbeddedAws,
) -> None:
    # GIVEN the template's configuration, on a warm function
    wiring.reset()
    calls = dynamodb_calls()
    # WHEN an outside mail is forwarded to the team
    result, sent = deployed.deliver(MAIL, [f"team@{DOMAIN}"], message_id="m-deployed", **AUTHENTIC)
    # THEN one transaction wrote the claim, the reply address and the trace; nothing was written after the send
    assert result["outcomes"][0]["forwarded"]
    assert calls == Counter({"TransactWriteItems": 1})
    [claim] = claims_table()
    assert claim["status"]["S"] == INPROGRESS
    assert len(table(REPLY_TABLE)) == 1
    trace = {item["sk"]["S"]: item for item in table(TRACE_TABLE)}
    assert trace["mail"]["forwarded"]["BOOL"] is True
    assert {m["M"]["status"]["S"] for m in trace["mail"]["members"]["L"]} == {"sent"}
    # AND the send names its claim for the delivery function
    [mail] = sent
    assert mail.tags["claim"] == claim["id"]["S"].removeprefix("send#")
    assert mail.tags["inbound"] == "m-deployed" and mail.tags["alias"] == "team"


def test_send_event_completes_the_claim_and_a_retry_elsewhere_sends_nothing(deployed: EmbeddedAws) -> None:
    # GIVEN a forwarded mail, its claim left to the Send event
    event = build_event(MAIL, [f"team@{DOMAIN}"], message_id="m-dup", **AUTHENTIC)
    deployed.store_mail(MAIL, "m-dup")
    first = deployed.invoke(event)
    sent = list(deployed.ses.outbox)
    # WHEN a duplicate of the event reaches another instance before SES's Send event
    wiring.reset()
    with pytest.raises(ClaimInProgressError, match="being sent by another invocation"):
        deployed.invoke(event)
    # THEN nothing is sent twice; Lambda retries the duplicate later; the trace is the first run's
    assert len(deployed.ses.outbox) == 1
    assert mail_item()["decision"]["S"] == "forwarded"
    # WHEN the Send event arrives and the retry runs on yet another instance
    assert deliver_events(send_events(sent))["added"] == len(TEAM)
    [claim] = claims_table()
    assert claim["status"]["S"] == COMPLETED
    assert json.loads(claim["data"]["S"]) == {"ses_id": sent[0].message_id}
    wiring.reset()
    second = deployed.invoke(event)
    # THEN it answers with the first run's outcome and sends nothing
    assert len(deployed.ses.outbox) == 1
    assert second["outcomes"] == first["outcomes"]


def test_a_retry_after_the_send_event_of_a_refusal_notice_reports_the_notice() -> None:
    # GIVEN the template's send-event mode with download links, and SES refusing the forward itself
    linked = {**SEND_EVENTS, "FORWARDER_LINK_URL": "https://dl.example/", "FORWARDER_LINK_SECRET": "link-secret"}
    with embedded_aws(DOMAIN, {"team": TEAM}, trace=True, settings=linked) as aws:
        boto3.client("secretsmanager").create_secret(Name="link-secret", SecretString="s" * 64)
        aws.ses.refuse_calls[1] = SesRefusal("MessageRejected", "Illegal filename 'setup.exe'.")
        event = build_event(MAIL, [f"team@{DOMAIN}"], message_id="m-notice", **AUTHENTIC)
        aws.store_mail(MAIL, "m-notice")
        first = aws.invoke(event)
        [notice] = aws.ses.outbox
        assert first["outcomes"][0]["oversize"] is True and notice.tags["notice"] == "true"
        # WHEN the notice's Send event completes the claim, and a duplicate of the event runs on another instance
        assert deliver_events(send_events([notice]))["added"] == len(TEAM)
        [claim] = claims_table()
        assert json.loads(claim["data"]["S"]) == {"ses_id": notice.message_id, "notice": True}
        wiring.reset()
        second = aws.invoke(event)
    # THEN it sends nothing and reports what the first run did: a notice in place of the mail
    assert len(aws.ses.outbox) == 1
    assert second["outcomes"] == first["outcomes"]


def test_duplicate_on_the_same_instance_needs_no_request(deployed: EmbeddedAws) -> None:
    event = build_event(MAIL, [f"team@{DOMAIN}"], message_id="m-warm", **AUTHENTIC)
    deployed.store_mail(MAIL, "m-warm")
    first = deployed.invoke(event)
    assert deployed.invoke(event)["outcomes"] == first["outcomes"]
    assert len(deployed.ses.outbox) == 1


def test_a_claim_whose_run_died_before_sending_is_taken_over_after_its_deadline(deployed: EmbeddedAws) -> None:
    # GIVEN a claim left in progress by a run that died before SES took the mail, its deadline passed
    event = build_event(MAIL, [f"team@{DOMAIN}"], message_id="m-died", **AUTHENTIC)
    deployed.store_mail(MAIL, "m-died")
    deployed.invoke(event)
    [claim] = claims_table()
    deployed.ses.outbox.clear()
    past = pass_the_deadline(claim)
    # WHEN Lambda's retry runs on another instance
    wiring.reset()
    deployed.invoke(event)
    # THEN it sends, under a renewed claim
    assert len(deployed.ses.outbox) == 1
    [renewed] = claims_table()
    assert int(renewed["in_progress_expiration"]["N"]) > past


def test_a_failing_invocation_settles_its_sends_so_the_retry_sends_only_the_rest(deployed: EmbeddedAws) -> None:
    # GIVEN an alias of 120 members and SES throttling the second batch
    members = [f"member{i:03d}@example.org" for i in range(120)]
    deployed.set_aliases({"big": members})
    deployed.ses.refuse_calls[2] = SesRefusal("TooManyRequestsException", "Maximum sending rate exceeded")
    event = build_event(MAIL, [f"big@{DOMAIN}"], message_id="m-settle", **AUTHENTIC)
    deployed.store_mail(MAIL, "m-settle")
    with pytest.raises(Exception, match="TooManyRequests"):
        deployed.invoke(event)
    # THEN the first batch's claim was completed at once, without waiting for its Send event
    assert [item["status"]["S"] for item in claims_table()] == [COMPLETED]
    # AND the trace says the attempt failed, not what the intent written with the first claim said
    assert mail_item()["decision"]["S"].startswith("interrupted by TooManyRequestsException: Lambda retries the event")
    # AND Lambda's retry, on another instance, sends the other two batches only
    wiring.reset()
    result = deployed.invoke(event)
    assert [len(s.recipients) for s in deployed.ses.outbox] == [50, 50, 20]
    assert sorted(m for s in deployed.ses.outbox for m in s.recipients) == members
    assert result["outcomes"][0]["recipients"] == 120
    # AND the trace then tells the forward, every member sent
    assert mail_item()["decision"]["S"] == "forwarded"
    assert len(mail_item()["members"]["L"]) == 120


def test_a_refused_send_releases_its_claim_and_the_trace_tells_the_refusal(deployed: EmbeddedAws) -> None:
    # GIVEN SES refusing the forward and the notice sent in its place
    deployed.ses.refuse_calls[1] = SesRefusal("MessageRejected", "Email address is not verified.")
    deployed.ses.refuse_calls[2] = SesRefusal("MessageRejected", "Email address is not verified.")
    result, _ = deployed.deliver(MAIL, [f"team@{DOMAIN}"], message_id="m-refused", **AUTHENTIC)
    assert not result["outcomes"][0]["forwarded"]
    assert claims_table() == []
    mail = mail_item()
    assert mail["forwarded"]["BOOL"] is False
    assert {m["M"]["status"]["S"] for m in mail["members"]["L"]} == {"failed"}


def test_a_refused_rider_does_not_stop_the_mail(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN the trace table named but missing: the claim's transaction cannot write the trace
    with embedded_aws(
        DOMAIN, {"team": TEAM}, reply_mode="team", settings={**SEND_EVENTS, "FORWARDER_TRACE_TABLE": "gone"}
    ) as aws:
        result, sent = aws.deliver(MAIL, [f"team@{DOMAIN}"], message_id="m-rider", **AUTHENTIC)
        # THEN the mail goes, claimed alone, the reply address saved alone, and the failure is logged
        assert result["outcomes"][0]["forwarded"] and len(sent) == 1
        assert [item["status"]["S"] for item in claims_table()] == [INPROGRESS]
        assert len(table(REPLY_TABLE)) == 1
    logged = [r.getMessage() for r in caplog.records]
    assert "claim and queued writes refused together; writing each" in logged
    assert "write not saved" in logged


def test_write_mode_completes_after_the_send_and_writes_the_riders_with_the_claim() -> None:
    with embedded_aws(DOMAIN, {"team": TEAM}, trace=True, reply_mode="team") as aws:
        wiring.reset()
        calls = dynamodb_calls()
        _, sent = aws.deliver(MAIL, [f"team@{DOMAIN}"], message_id="m-write", **AUTHENTIC)
        assert calls == Counter({"TransactWriteItems": 1, "UpdateItem": 1})
        assert "claim" not in sent[0].tags
        [claim] = claims_table()
        assert claim["status"]["S"] == COMPLETED and "in_progress_expiration" not in claim
        assert json.loads(claim["data"]["S"]) == {"ses_id": sent[0].message_id}


def test_a_record_written_by_powertools_idempotency_is_honoured() -> None:
    # GIVEN a send completed by an earlier version, through Powertools Idempotency (key prefix "send")
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    with embedded_aws(DOMAIN, {"team": TEAM}):
        client = boto3.client("dynamodb")
        key = {"message_id": "m-old", "alias": "team", "recipients": TEAM}

        def send(key: dict[str, Any]) -> dict[str, Any]:
            return {"ses_id": "ses-from-before"}

        earlier = idempotent_function(
            send,
            data_keyword_argument="key",
            persistence_store=DynamoDBPersistenceLayer(table_name=TABLE, boto3_client=client),
            config=IdempotencyConfig(expires_after_seconds=3600),
            key_prefix="send",
        )
        earlier(key=key)
        # WHEN the new claims see the same key
        ran: list[bool] = []
        result = DynamoDBClaims(client, TABLE, 7)(key, lambda: ran.append(True) or {"ses_id": "again"})
        # THEN the send does not run again and the earlier result comes back
        assert ran == []
        assert result == {"ses_id": "ses-from-before"}
        assert claims_table()[0]["id"]["S"] == f"send#{claim_hash(key)}"


def test_work_that_raises_releases_the_claim_for_the_retry() -> None:
    with embedded_aws(DOMAIN, {"team": TEAM}):
        client = boto3.client("dynamodb")
        claims = DynamoDBClaims(client, TABLE, 7)
        key = {"message_id": "m-raise", "alias": "team", "recipients": TEAM}

        def broken() -> dict[str, Any]:
            raise ConnectionError("SES unreachable")

        with pytest.raises(ConnectionError):
            claims(key, broken)
        assert claims_table() == []
        assert DynamoDBClaims(client, TABLE, 7)(key, lambda: {"ses_id": "sent"}) == {"ses_id": "sent"}


def test_a_send_whose_answer_was_lost_keeps_the_claim_its_send_event_completed() -> None:
    from forwarder.aws.claims import complete_from_send_event

    with embedded_aws(DOMAIN, {"team": TEAM}):
        client = boto3.client("dynamodb")
        key = {"message_id": "m-lost", "alias": "team", "recipients": TEAM}

        def answer_lost() -> dict[str, Any]:
            # GIVEN SES took the mail and the delivery function completed the claim from its Send event, while
            # SES's answer never came back to the forwarder (a read timeout after botocore's attempts)
            assert complete_from_send_event(client, TABLE, claim_hash(key), "ses-took-it")
            raise ConnectionError("Read timeout on endpoint URL")

        # WHEN the send raises, and Lambda retries the mail on another instance
        with pytest.raises(ConnectionError):
            DynamoDBClaims(client, TABLE, 7, completion="send-event")(key, answer_lost)
        sent_again: list[str] = []

        def send_again() -> dict[str, Any]:
            sent_again.append("second")
            return {"ses_id": "second"}

        retried = DynamoDBClaims(client, TABLE, 7, completion="send-event")(key, send_again)
        # THEN the completed claim was kept: the retry answers with SES's message id and sends nothing
        assert retried == {"ses_id": "ses-took-it"}
        assert sent_again == []


def test_pending_writes_beyond_one_transaction_are_written_in_several() -> None:
    with embedded_aws(DOMAIN, {}, trace=True):
        client = boto3.client("dynamodb")
        pending = PendingWrites(client)
        for n in range(150):
            item = {"pk": {"S": f"mail#{n}"}, "sk": {"S": "mail"}}
            pending.add((TRACE_TABLE, f"mail#{n}"), {"Put": {"TableName": TRACE_TABLE, "Item": item}}, "trace")
        # a later write of the same item replaces the queued one (a transaction may touch an item once)
        again = {"pk": {"S": "mail#7"}, "sk": {"S": "mail"}, "note": {"S": "newer"}}
        pending.add((TRACE_TABLE, "mail#7"), {"Put": {"TableName": TRACE_TABLE, "Item": again}}, "trace")
        claims = DynamoDBClaims(client, TABLE, 7, pending)
        claims({"message_id": "m-many"}, lambda: {"ses_id": "x"})
        assert len(table(TRACE_TABLE)) == 99  # the claim took 99 riders
        pending.flush()
        items = {item["pk"]["S"]: item for item in table(TRACE_TABLE)}
        assert len(items) == 150
        assert items["mail#7"]["note"]["S"] == "newer"


def test_delivery_ignores_claim_tags_that_are_not_ours(deployed: EmbeddedAws) -> None:
    from forwarder.aws.claims import complete_from_send_event

    client = boto3.client("dynamodb")
    assert not complete_from_send_event(client, TABLE, "send#../other", "ses-1")
    assert not complete_from_send_event(client, TABLE, "0" * 32, "ses-1")  # no such claim in progress
    assert claims_table() == []


def test_a_duplicate_held_off_by_a_claim_leaves_the_first_runs_trace(deployed: EmbeddedAws) -> None:
    # GIVEN a mail to two aliases whose second send SES refused: the trace tells that member failed
    deployed.set_aliases({"team": TEAM, "ops": ["carol@example.org"]})
    deployed.ses.refuse_calls[2] = SesRefusal("MessageRejected", "Email address is not verified.")
    deployed.ses.refuse_calls[3] = SesRefusal("MessageRejected", "Email address is not verified.")  # its notice
    event = build_event(MAIL, [f"team@{DOMAIN}", f"ops@{DOMAIN}"], message_id="m-held", **AUTHENTIC)
    deployed.store_mail(MAIL, "m-held")
    deployed.invoke(event)
    failed = {m["M"]["member"]["S"] for m in mail_item()["members"]["L"] if m["M"]["status"]["S"] == "failed"}
    assert failed == {"carol@example.org"}
    # WHEN a duplicate reaches another instance while the first send's claim is held
    wiring.reset()
    with pytest.raises(ClaimInProgressError):
        deployed.invoke(event)
    # THEN its own intent (everyone sent) is not written over the first run's trace
    after = {m["M"]["member"]["S"] for m in mail_item()["members"]["L"] if m["M"]["status"]["S"] == "failed"}
    assert after == {"carol@example.org"}


def test_write_mode_a_completion_not_written_does_not_fail_the_sent_mail(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN write mode, and DynamoDB refusing the completion (after botocore's retries) once SES took the mail
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    def refuse(**_: Any) -> tuple[Any, dict[str, Any]]:
        error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}
        return AWSResponse("https://dynamodb.local", 400, HTTPHeaders(), None), {
            "Error": error,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    with embedded_aws(DOMAIN, {"team": TEAM}) as aws:
        boto3.DEFAULT_SESSION.events.register("before-call.dynamodb.UpdateItem", refuse)  # type: ignore[union-attr]
        # WHEN a mail is forwarded
        result, sent = aws.deliver(MAIL, [f"team@{DOMAIN}"], message_id="m-uncompleted", **AUTHENTIC)
        # THEN the invocation succeeds with the mail sent once: failing it would make Lambda retry, and the retry
        # that comes after the claim's deadline would send the mail again
        assert result["outcomes"][0]["forwarded"] and len(sent) == 1
        assert [item["status"]["S"] for item in claims_table()] == [INPROGRESS]
    assert "claim completion not written" in [r.getMessage() for r in caplog.records]


def test_a_claim_being_written_by_another_transaction_counts_as_held() -> None:
    # GIVEN DynamoDB answering the claim's put with TransactionConflictException: a duplicate's claim
    # transaction on the same item is in flight
    from botocore.exceptions import ClientError

    with embedded_aws(DOMAIN, {"team": TEAM}):
        client = boto3.client("dynamodb")
        conflict = {"Error": {"Code": "TransactionConflictException", "Message": "in a transaction"}}

        def conflicting(**_: Any) -> None:
            raise ClientError(conflict, "PutItem")  # type: ignore[arg-type]

        client.put_item = conflicting  # type: ignore[method-assign]
        ran: list[bool] = []
        # WHEN a send is claimed THEN it does not run, and Lambda is asked to retry later
        with pytest.raises(ClaimInProgressError):
            DynamoDBClaims(client, TABLE, 7)({"message_id": "m-race"}, lambda: ran.append(True) or {})
        assert ran == []


def test_settle_writes_every_completion_it_can(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN two sends left to their Send events, and a connection that fails for the first completion only
    with embedded_aws(DOMAIN, {"team": TEAM}):
        client = boto3.client("dynamodb")
        claims = DynamoDBClaims(client, TABLE, 7, completion="send-event")
        claims({"batch": 1}, lambda: {"ses_id": "s1"})
        claims({"batch": 2}, lambda: {"ses_id": "s2"})
        update = client.update_item
        calls: list[int] = []

        def flaky(**kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("connection reset")
            return update(**kwargs)

        client.update_item = flaky  # type: ignore[method-assign]
        # WHEN the failing invocation settles
        claims.settle()
        # THEN the second completion is written all the same, and the first failure is logged
        assert sorted(item["status"]["S"] for item in claims_table()) == [COMPLETED, INPROGRESS]
        assert "claim completion not written" in [r.getMessage() for r in caplog.records]


def _unanswered(aws: EmbeddedAws, taken: bool) -> None:
    """SES's first send request goes unanswered (a read timeout); `taken`: SES took that mail all the same."""
    from botocore.exceptions import ReadTimeoutError

    accept = aws.ses.accept
    calls: list[int] = []

    def lost_answer(params: Any) -> SentMail:
        calls.append(1)
        if len(calls) == 1:
            if taken:
                accept(params)
            raise ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com/v2/email/outbound-emails")
        return accept(params)

    aws.ses.accept = lost_answer  # type: ignore[method-assign]


def test_claims_keep_the_claim_of_a_send_ses_took_without_answering(deployed: EmbeddedAws) -> None:
    # GIVEN SES taking a forward but its answer lost (a read timeout)
    from forwarder.ports import SendUnconfirmedError

    _unanswered(deployed, taken=True)
    event = build_event(MAIL, [f"team@{DOMAIN}"], message_id="m-unanswered", **AUTHENTIC)
    deployed.store_mail(MAIL, "m-unanswered")
    # WHEN the invocation fails for it
    with pytest.raises(SendUnconfirmedError):
        deployed.invoke(event)
    # THEN the send's claim is kept (not released), in progress
    assert [item["status"]["S"] for item in claims_table()] == [INPROGRESS]
    # WHEN SES's Send event completes it and Lambda's retry runs on another instance
    assert deliver_events(send_events(deployed.ses.outbox))["added"] == len(TEAM)
    wiring.reset()
    result = deployed.invoke(event)
    # THEN each member got the mail once, and the retry reports it forwarded
    assert [sorted(s.recipients) for s in deployed.ses.outbox] == [sorted(TEAM)]
    assert result["outcomes"][0]["forwarded"] and result["outcomes"][0]["recipients"] == len(TEAM)


def test_claims_a_send_ses_did_not_take_is_sent_after_the_claims_deadline(deployed: EmbeddedAws) -> None:
    # GIVEN a send left unanswered that SES did not take (no Send event will come)
    _unanswered(deployed, taken=False)
    event = build_event(MAIL, [f"team@{DOMAIN}"], message_id="m-untaken", **AUTHENTIC)
    deployed.store_mail(MAIL, "m-untaken")
    with pytest.raises(Exception, match="SES may have taken the mail"):
        deployed.invoke(event)
    # WHEN Lambda's first retry comes within the claim's deadline THEN it waits (is retried later)
    wiring.reset()
    with pytest.raises(ClaimInProgressError):
        deployed.invoke(event)
    # WHEN a retry comes after the deadline
    [claim] = claims_table()
    pass_the_deadline(claim)
    wiring.reset()
    deployed.invoke(event)
    # THEN the members get the mail, once
    assert [sorted(s.recipients) for s in deployed.ses.outbox] == [sorted(TEAM)]


def test_claims_write_mode_a_completion_lost_in_transit_does_not_fail_the_sent_mail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN write mode, and the completion's UpdateItem never answered (a read timeout, after botocore's retries)
    from botocore.exceptions import ReadTimeoutError

    def lost(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    with embedded_aws(DOMAIN, {"team": TEAM}) as aws:
        boto3.DEFAULT_SESSION.events.register("before-call.dynamodb.UpdateItem", lost)  # type: ignore[union-attr]
        # WHEN a mail is forwarded
        result, sent = aws.deliver(MAIL, [f"team@{DOMAIN}"], message_id="m-completion-lost", **AUTHENTIC)
        # THEN the invocation succeeds with the mail sent once, as for a refused completion: failing it would make
        # Lambda's retry after the claim's deadline send the mail again
        assert result["outcomes"][0]["forwarded"] and len(sent) == 1
    assert "claim completion not written" in [r.getMessage() for r in caplog.records]


def test_claims_a_release_lost_in_transit_leaves_the_sends_own_error() -> None:
    # GIVEN SES refusing the message itself, and the claim's release (DeleteItem) unreachable
    from botocore.exceptions import EndpointConnectionError

    from forwarder.ports import MessageRejectedError

    with embedded_aws(DOMAIN, {"team": TEAM}):
        client = boto3.client("dynamodb")

        def unreachable(**_: Any) -> None:
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

        client.delete_item = unreachable  # type: ignore[method-assign]

        def refused() -> dict[str, Any]:
            raise MessageRejectedError("Illegal filename 'setup.exe'.", code="MessageRejected")

        # WHEN the send is claimed and refused THEN the refusal reaches the service (which sends the notice in its
        # place), not the release's error; the claim left behind expires at the deadline
        with pytest.raises(MessageRejectedError):
            DynamoDBClaims(client, TABLE, 7)({"message_id": "m-release-lost"}, refused)


def test_claims_a_rider_written_alone_without_an_answer_does_not_stop_the_claimed_send(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a claim whose transaction DynamoDB refused, and the rider then written alone getting no answer
    from botocore.exceptions import ClientError, ReadTimeoutError

    with embedded_aws(DOMAIN, {}, trace=True):
        client = boto3.client("dynamodb")
        pending = PendingWrites(client)
        item = {"pk": {"S": "mail#m-rider"}, "sk": {"S": "mail"}}
        pending.add((TRACE_TABLE, "mail#m-rider"), {"Put": {"TableName": TRACE_TABLE, "Item": item}}, "trace")
        refused = {"Error": {"Code": "ValidationException", "Message": "Item size has exceeded the maximum"}}

        def refuse(**_: Any) -> None:
            raise ClientError(refused, "TransactWriteItems")  # type: ignore[arg-type]

        put = client.put_item

        def rider_lost(**kwargs: Any) -> Any:
            if kwargs["TableName"] == TRACE_TABLE:
                raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
            return put(**kwargs)

        client.transact_write_items = refuse  # type: ignore[method-assign]
        client.put_item = rider_lost  # type: ignore[method-assign]
        sent: list[bool] = []
        # WHEN the send is claimed
        result = DynamoDBClaims(client, TABLE, 7, pending)({"message_id": "m-rider"}, lambda: sent.append(True) or {})
        # THEN it runs under its claim (a rider is worth less than the mail), and the lost rider is logged
        assert sent == [True] and result == {}
        assert [i["status"]["S"] for i in claims_table()] == [COMPLETED]
    assert "write not saved" in [r.getMessage() for r in caplog.records]


def test_claims_a_run_past_its_deadline_keeps_the_claim_another_run_took_over(caplog: pytest.LogCaptureFixture) -> None:
    with embedded_aws(DOMAIN, {"team": TEAM}):
        client = boto3.client("dynamodb")
        key = {"message_id": "m-overrun", "alias": "team", "recipients": TEAM}
        sends: list[str] = []

        def overrun() -> dict[str, Any]:
            # GIVEN run A holding the claim past its deadline, and run B taking the claim over and sending (its
            # completion left to the Send event, which has not come yet)
            [claim] = claims_table()
            pass_the_deadline(claim)
            DynamoDBClaims(client, TABLE, 7, completion="send-event")(key, lambda: sends.append("B") or {"ses_id": "b"})
            # WHEN A's own send then fails
            raise ConnectionError("SES unreachable")

        with pytest.raises(ConnectionError):
            DynamoDBClaims(client, TABLE, 7, completion="send-event")(key, overrun)
        # THEN A's release leaves B's claim in progress: a third run (Lambda's retry of A's event) waits, sends nothing
        assert [item["status"]["S"] for item in claims_table()] == [INPROGRESS]
        with pytest.raises(ClaimInProgressError):
            DynamoDBClaims(client, TABLE, 7, completion="send-event")(key, lambda: sends.append("C") or {})
        assert sends == ["B"]
    # AND the log says why A released nothing
    [kept] = [r for r in caplog.records if r.getMessage() == "claim kept: not this run's any more"]
    assert kept.claim_now == "taken over"


def test_claims_write_mode_completes_a_sent_mail_whose_claim_another_run_took_over() -> None:
    # GIVEN write mode, run A sending past its deadline, and run B, which took the claim over, failing only after A
    # completed (threads: B's work runs while A's does)
    import threading

    with embedded_aws(DOMAIN, {"team": TEAM}):
        client = boto3.client("dynamodb")
        key = {"message_id": "m-overrun-write", "alias": "team", "recipients": TEAM}
        b_claimed, a_completed = threading.Event(), threading.Event()
        sends: list[str] = []
        b_failed: list[Exception] = []

        def b_fails_after_a_completed() -> dict[str, Any]:
            b_claimed.set()
            a_completed.wait(10)
            raise ConnectionError("SES unreachable")

        def run_b() -> None:
            try:
                DynamoDBClaims(client, TABLE, 7)(key, b_fails_after_a_completed)
            except ConnectionError as error:
                b_failed.append(error)

        b = threading.Thread(target=run_b)

        def a_sends_past_its_deadline() -> dict[str, Any]:
            [claim] = claims_table()
            pass_the_deadline(claim)
            b.start()
            assert b_claimed.wait(10)
            sends.append("A")
            return {"ses_id": "a"}

        # WHEN A's send succeeds and A completes the claim B holds, then B fails and releases
        DynamoDBClaims(client, TABLE, 7)(key, a_sends_past_its_deadline)
        a_completed.set()
        b.join(10)
        assert len(b_failed) == 1
        # THEN the claim stays completed with A's result: A's mail went out, and a retry sends nothing
        [claim] = claims_table()
        assert claim["status"]["S"] == COMPLETED and json.loads(claim["data"]["S"]) == {"ses_id": "a"}
        assert DynamoDBClaims(client, TABLE, 7)(key, lambda: sends.append("C") or {}) == {"ses_id": "a"}
        assert sends == ["A"]


LATER_EVENTS = {
    "Delivery": lambda mail, member: sesevents.delivery(mail, member, "2026-11-30T09:15:02.000Z"),
    "Bounce": lambda mail, member: sesevents.bounce(mail, member, "2026-11-30T09:15:02.000Z", "Transient", "General"),
    "Complaint": lambda mail, member: sesevents.complaint(mail, member, "2026-11-30T09:15:02.000Z"),
    "DeliveryDelay": lambda mail, member: sesevents.delay(mail, member, "2026-11-30T09:15:02.000Z"),
    "Reject": lambda mail, member: sesevents.record("Reject", mail, reason="Bad content"),
}


def later_events(kind: str, sent: list[SentMail]) -> dict[str, Any]:
    """An event of type `kind` of each of `sent` (for its first recipient), as SNS hands them to the delivery
    function."""
    mails = [sesevents.mail_object(s.message_id, s.recipients, dict(s.tags), "2026-11-30T09:15:00.000Z") for s in sent]
    return sesevents.sns_event(*(LATER_EVENTS[kind](mail, mail["destination"][0]) for mail in mails))


@pytest.mark.parametrize("kind", sorted(LATER_EVENTS))
def test_claims_any_later_event_of_a_send_completes_its_claim_when_the_send_event_is_lost(
    deployed: EmbeddedAws, kind: str
) -> None:
    # GIVEN a forwarded mail whose claim is left to its events, and its Send event lost
    event = build_event(MAIL, [f"team@{DOMAIN}"], message_id=f"m-{kind}", **AUTHENTIC)
    deployed.store_mail(MAIL, f"m-{kind}")
    first = deployed.invoke(event)
    sent = list(deployed.ses.outbox)
    # WHEN a later event of the send reaches the delivery function
    deliver_events(later_events(kind, sent))
    # THEN it completes the claim with SES's message id, as the Send event would
    [claim] = claims_table()
    assert claim["status"]["S"] == COMPLETED
    assert json.loads(claim["data"]["S"]) == {"ses_id": sent[0].message_id}
    assert "in_progress_expiration" not in claim and "owner" not in claim
    # AND a retry after the first run's deadline, on another instance, answers with its outcome and sends nothing
    pass_the_deadline(claim)
    wiring.reset()
    assert deployed.invoke(event)["outcomes"] == first["outcomes"]
    assert len(deployed.ses.outbox) == 1


@pytest.mark.parametrize("kind", sorted(LATER_EVENTS))
def test_claims_a_later_event_leaves_a_claim_its_send_event_completed_as_it_was(
    deployed: EmbeddedAws, kind: str
) -> None:
    # GIVEN a forwarded mail whose claim its Send event completed
    _, sent = deployed.deliver(MAIL, [f"team@{DOMAIN}"], message_id=f"m-then-{kind}", **AUTHENTIC)
    deliver_events(send_events(sent))
    [completed] = claims_table()
    # WHEN a later event of the send arrives, twice (SNS delivers at least once)
    deliver_events(later_events(kind, sent))
    deliver_events(later_events(kind, sent))
    # THEN the claim is as the Send event left it
    assert claims_table() == [completed]


def test_claims_write_mode_completion_of_a_claim_gone_meanwhile_keeps_an_expiry() -> None:
    # GIVEN write mode, and a claim deleted while its run sends (another run took it over after the deadline, then
    # failed and released it)
    with embedded_aws(DOMAIN, {"team": TEAM}):
        client = boto3.client("dynamodb")
        key = {"message_id": "m-gone", "alias": "team", "recipients": TEAM}

        def send_while_the_claim_is_deleted() -> dict[str, Any]:
            [claim] = claims_table()
            client.delete_item(TableName=TABLE, Key={"id": claim["id"]})
            return {"ses_id": "a"}

        # WHEN the send succeeds and the run completes the claim
        DynamoDBClaims(client, TABLE, 7)(key, send_while_the_claim_is_deleted)
        # THEN the completed item it writes anew has an expiry for the TTL (it had none: kept for ever)
        [claim] = claims_table()
        assert claim["status"]["S"] == COMPLETED
        assert int(claim["expiration"]["N"]) > time.time() + 6 * 86_400
