"""The trace table on DynamoDB: the forwarder's record of each mail, SES's events per member, alarm claims."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from forwarder.trace import (
    MAIL_SK,
    TraceEntry,
    alarm_key,
    expires_at,
    forward_items,
    latest,
    mail_pk,
    member_sk,
    merge_entry,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from forwarder.aws.claims import PendingWrites
    from forwarder.mail.policy import Decision
    from forwarder.mail.routing import Routing
    from forwarder.ports import Inbound, Outcome

# Optimistic concurrency on a member's item: SES may publish a member's Send and Delivery within
# milliseconds, and SNS invokes the function for each in parallel.
_ATTEMPTS = 8
_BATCH = 25


def _serializer() -> Any:
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer()


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {key: to_attribute(value) for key, value in data.items() if value is not None}


_SCALARS: dict[type, Callable[[Any], dict[str, Any]]] = {
    str: lambda value: {"S": value},
    bool: lambda value: {"BOOL": value},
    int: lambda value: {"N": str(value)},
    type(None): lambda _: {"NULL": True},
}


def to_attribute(value: Any) -> dict[str, Any]:
    """boto3's `TypeSerializer().serialize`, direct for the types the trace writes (str, bool, int, None,
    lists, maps): the generic one tries each DynamoDB type in turn, a tenth of a mail's own CPU as deployed.
    Anything else (Decimal, bytes, sets) goes to boto3's."""
    kind = type(value)
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        return scalar(value)
    if kind is list or kind is tuple:
        return {"L": [to_attribute(item) for item in value]}
    if kind is dict:
        return {"M": {key: to_attribute(item) for key, item in value.items()}}
    return dict(_serializer().serialize(value))


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {key: deserializer.deserialize(value) for key, value in item.items()}


def _shape(outcome: Outcome, routing: Routing | None, decision: Decision | None) -> tuple[Any, ...]:
    """What `forward_items` reads of an outcome (not its SES ids or recipient count), with the routing and
    decision it was given: equal shapes make equal items, but for the times of writing."""
    failed = frozenset(m.lower() for m in outcome.failed)
    return (
        outcome.forwarded,
        outcome.reason,
        failed,
        outcome.oversize,
        outcome.reply,
        outcome.aliases,
        id(routing),
        id(decision),
    )


def _conflict(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoDBTrace:
    """Both writers' access to the table; the key layout is `forwarder.trace`'s."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        expiry_days: int,
        subjects: bool = False,
        pending: PendingWrites | None = None,
    ) -> None:
        self._client = client
        self.table = table
        self.expiry_days = expiry_days
        self.subjects = subjects
        self._pending = pending
        self._intended: dict[str, tuple[Any, ...]] = {}

    # the forwarder ------------------------------------------------------------------------------

    def intend(self, inbound: Inbound, outcome: Outcome, routing: Routing | None, decision: Decision | None) -> None:
        """With `pending` (idempotency on): queue the items of the outcome every send succeeding would give,
        to be written with the first send's claim."""
        if self._pending is None:
            return
        self._queue(self._items(inbound, outcome, routing, decision))
        if len(self._intended) > 64:  # intents of invocations that raised before recording
            self._intended.clear()
        self._intended[inbound.message_id] = _shape(outcome, routing, decision)

    def record(self, inbound: Inbound, outcome: Outcome, routing: Routing | None, decision: Decision | None) -> None:
        """Write (or overwrite, on a retried event) the forwarder's items of one mail; with `pending`, queue
        them (the service flushes at the mail's end), or nothing when they are what `intend` queued."""
        if self._pending is not None:
            if self._intended.pop(inbound.message_id, None) != _shape(outcome, routing, decision):
                self._queue(self._items(inbound, outcome, routing, decision))
            return
        items = self._items(inbound, outcome, routing, decision)
        for start in range(0, len(items), _BATCH):
            requests = [{"PutRequest": {"Item": to_item(item)}} for item in items[start : start + _BATCH]]
            pending: Any = {self.table: requests}
            for _ in range(_ATTEMPTS):
                answer = self._client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise RuntimeError(f"trace table {self.table}: items left unprocessed after {_ATTEMPTS} attempts")

    def _items(
        self, inbound: Inbound, outcome: Outcome, routing: Routing | None, decision: Decision | None
    ) -> list[dict[str, Any]]:
        return forward_items(
            inbound, outcome, routing, decision, subjects=self.subjects, expires=expires_at(self.expiry_days)
        )

    def _queue(self, items: list[dict[str, Any]]) -> None:
        assert self._pending is not None
        for item in items:
            put = {"Put": {"TableName": self.table, "Item": to_item(item)}}
            self._pending.add((self.table, item["pk"], item["sk"]), put, "trace")

    # the delivery function -----------------------------------------------------------------------

    def add_event(self, inbound: str, alias: str, member: str, entry: TraceEntry) -> bool:
        key = {"pk": {"S": mail_pk(inbound)}, "sk": {"S": member_sk(member)}}
        for _ in range(_ATTEMPTS):
            found = self._client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
            current = from_item(found) if found else {}
            history = [TraceEntry.from_item(e) for e in current.get("history", [])]
            merged, added = merge_entry(history, entry)
            if not added:
                return False
            state = latest(merged) or entry
            version = int(current.get("version", 0))
            item = {
                "pk": mail_pk(inbound),
                "sk": member_sk(member),
                "message_id": inbound,
                "member": member.lower(),
                "alias": current.get("alias") or alias,
                "state": state.state,
                "state_at": state.at,
                "detail": state.detail,
                "history": [e.as_item() for e in merged],
                "version": version + 1,
                "expires": expires_at(self.expiry_days),
            }
            condition: dict[str, Any] = (
                {
                    "ConditionExpression": "#v = :v",
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": {":v": {"N": str(version)}},
                }
                if found
                else {"ConditionExpression": "attribute_not_exists(pk)"}
            )
            try:
                self._client.put_item(TableName=self.table, Item=to_item(item), **condition)
            except ClientError as error:
                if _conflict(error):
                    continue  # another event for this member landed first: merge again
                raise
            return True
        raise RuntimeError(f"trace table {self.table}: {member} of {inbound} kept changing; retry")

    def member_alias(self, inbound: str, member: str) -> str | None:
        found = self._client.get_item(
            TableName=self.table,
            Key={"pk": {"S": mail_pk(inbound)}, "sk": {"S": MAIL_SK}},
            ProjectionExpression="#m",
            ExpressionAttributeNames={"#m": "members"},  # MEMBERS is a DynamoDB reserved word
        ).get("Item")
        for record in from_item(found).get("members", []) if found else []:
            if str(record.get("member", "")).lower() == member.lower():
                return str(record.get("alias"))
        return None

    def claim_alarm(self, alias: str, member: str, kind: str) -> bool:
        item = {**alarm_key(alias, member, kind), "expires": expires_at(self.expiry_days)}
        try:
            self._client.put_item(
                TableName=self.table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if _conflict(error):
                return False
            raise
        return True

    def release_alarm(self, alias: str, member: str, kind: str) -> None:
        self._client.delete_item(TableName=self.table, Key=to_item(alarm_key(alias, member, kind)))
