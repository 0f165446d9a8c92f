"""`forwarder trace` against a trace table in unusual states: more mails than --limit shows, DynamoDB throttling
the reads."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from forwarder.trace import ALIAS_PREFIX, MAIL_SK, SENDER_PREFIX, mail_pk, timestamp
from forwarder_ops.local import create_trace_table
from tests.cli.conftest import REGION, Cli

TABLE = "email-forwarder-dev-trace"
SENDER = "yating.chen@example.com"


def seed(count: int) -> list[str]:
    """`count` forwarded mails from SENDER to team@, one a minute up to now; their ids, newest first."""
    client = boto3.client("dynamodb", region_name=REGION)
    create_trace_table(client, TABLE)
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    now = datetime.now(UTC)
    ids = []
    for n in range(count):
        message_id, received = f"m{n:04d}", timestamp(now - timedelta(minutes=n))
        ids.append(message_id)
        common = {"pk": mail_pk(message_id), "received": received, "message_id": message_id}
        table.put_item(
            Item={
                **common,
                "sk": MAIL_SK,
                "day": received[:10],
                "lookup": f"{SENDER_PREFIX}{SENDER}",
                "sender": SENDER,
                "aliases": ["team"],
                "decision": "forwarded",
                "members": [{"alias": "team", "member": "alice@gmail.com", "status": "sent", "detail": ""}],
            }
        )
        table.put_item(Item={**common, "sk": f"{ALIAS_PREFIX}team", "lookup": f"{ALIAS_PREFIX}team"})
    return ids


def trace(cli: Cli, *args: str) -> Any:
    return cli("trace", *args, "--config-env", "dev", "--table", TABLE)


@pytest.mark.parametrize("search", [("--from", SENDER), ("--alias", "team"), ("--since", "1d")])
def test_trace_list_says_when_more_mails_match_than_it_shows(cli: Cli, aws: None, search: tuple[str, ...]) -> None:
    # GIVEN 60 mails from one sender to one alias today, more than the default --limit of 50
    ids = seed(60)

    # WHEN the operator lists them
    text = trace(cli, *search)
    data = json.loads(trace(cli, *search, "--json").out)

    # THEN the newest 50 are listed and the list says that 60 match (not "50 mail(s)", as if that were all)
    assert text.code == 0, text.err
    assert "the newest 50 of 60 matching mails" in text.out
    assert ids[0] in text.out and ids[49] in text.out and ids[50] not in text.out
    assert [m["message_id"] for m in data["mails"]] == ids[:50]
    assert data["matched"] == 60 and data["truncated"] is True


def test_trace_list_of_everything_says_nothing_more(cli: Cli, aws: None) -> None:
    seed(3)
    result = trace(cli, "--alias", "team")
    assert "3 mail(s); the path of one" in result.out
    assert json.loads(trace(cli, "--alias", "team", "--json").out)["truncated"] is False


class ThrottledReads:
    """DynamoDB as moto answers it, but BatchGetItem returns every key unprocessed (throttled) `throttled` times
    first; a bound on the calls, so that a loop that never gives up fails the test instead of hanging it."""

    def __init__(self, throttled: int) -> None:
        self._client = boto3.client("dynamodb", region_name=REGION)
        self.throttled, self.calls = throttled, 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        assert self.calls < 100, "BatchGetItem asked again and again without giving up"
        if self.calls <= self.throttled:
            return {"Responses": {TABLE: []}, "UnprocessedKeys": RequestItems}
        answer: dict[str, Any] = self._client.batch_get_item(RequestItems=RequestItems)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_trace_waits_before_asking_again_for_throttled_reads(
    cli: Cli, aws: None, client_overrides: dict[str, Any], pauses: list[float]
) -> None:
    # GIVEN a table whose reads DynamoDB throttles twice
    ids = seed(3)
    client_overrides["dynamodb"] = ThrottledReads(throttled=2)

    result = trace(cli, "--from", SENDER, "--json")

    # THEN the unprocessed keys are asked again after growing pauses, and every mail is listed
    assert [m["message_id"] for m in json.loads(result.out)["mails"]] == ids
    assert (len(pauses) == 2 and 0 < pauses[0] < pauses[1]) or pauses[1] > 0


def test_trace_gives_up_on_a_table_that_stays_throttled(
    cli: Cli, aws: None, client_overrides: dict[str, Any], pauses: list[float]
) -> None:
    # GIVEN a table whose reads DynamoDB throttles all the time
    seed(3)
    client_overrides["dynamodb"] = ThrottledReads(throttled=10_000)

    result = trace(cli, "--from", SENDER)

    # THEN one line says so, after a bounded number of tries (exit 2), no endless loop
    assert result.code == 2
    assert "DynamoDB kept throttling the reads of email-forwarder-dev-trace" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_trace_search_in_a_table_without_the_indexes_is_one_line(cli: Cli, aws: None) -> None:
    # GIVEN a trace table made by hand with the keys but without the `lookup` and `by-day` indexes
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )

    # WHEN the operator searches it
    result = trace(cli, "--from", SENDER)

    # THEN one line says the table lacks the indexes and what to do, not AWS's bare refusal
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert f"{TABLE} cannot answer --from/--alias/--since" in result.err
    assert "give --table the stack's TraceTable output" in result.err
