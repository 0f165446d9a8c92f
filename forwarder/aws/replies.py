"""The reply table on DynamoDB: one item per reply address id (partition key `id` = `reply#<id>`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from forwarder.ports import ReplyRecord, ReplyStoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from forwarder.aws.claims import PendingWrites

KEY_PREFIX = "reply#"


class DynamoDBReplies:
    """Items `{id, alias, address, created, expires}` and `others` (the conversation's other outside addresses)
    when there are; `expires` (epoch seconds) is the table's TTL attribute."""

    def __init__(self, client: DynamoDBClient, table: str, pending: PendingWrites | None = None) -> None:
        self._client = client
        self.table = table
        self._pending = pending

    def save(self, record: ReplyRecord) -> None:
        """Create the item or push its expiry out; `created` keeps the first forward's time.

        With `pending` (idempotency on), the write is queued to go with the forward's claim, before its send;
        if the table then refuses it alone, the claim logs it (the forward still goes, its reply address
        without a record: a member's reply to it is refused as expired). Otherwise written at once, and a
        refusal raises `ReplyStoreError` (after botocore's retries), so that the forward names the sender."""
        if self._pending is not None:
            identity = (self.table, KEY_PREFIX + record.reply_id)
            self._pending.add(identity, {"Update": self._update_request(record)}, "reply address")
            return
        try:
            self._client.update_item(**self._update_request(record))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise ReplyStoreError(f"reply table {self.table}: {code}") from error
        except BotoCoreError as error:
            raise ReplyStoreError(f"reply table {self.table}: {type(error).__name__}") from error

    def _update_request(self, record: ReplyRecord) -> dict[str, Any]:
        request = self._update(record)
        if record.others:  # absent for the sender alone: their items are as before
            request["UpdateExpression"] += ", #others = :others"
            request["ExpressionAttributeNames"]["#others"] = "others"
            request["ExpressionAttributeValues"][":others"] = {"L": [{"S": address} for address in record.others]}
        return request

    def _update(self, record: ReplyRecord) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Key": {"id": {"S": KEY_PREFIX + record.reply_id}},
            "UpdateExpression": "SET #alias = :alias, #address = :address, #expires = :expires, "
            "#created = if_not_exists(#created, :created)",
            "ExpressionAttributeNames": {
                "#alias": "alias",
                "#address": "address",
                "#expires": "expires",
                "#created": "created",
            },
            "ExpressionAttributeValues": {
                ":alias": {"S": record.alias},
                ":address": {"S": record.address},
                ":expires": {"N": str(record.expires)},
                ":created": {"N": str(record.created)},
            },
        }

    def load(self, reply_id: str) -> ReplyRecord | None:
        """The record, read strongly consistent (a reply may follow its forward within seconds); None if absent."""
        item = self._client.get_item(
            TableName=self.table, Key={"id": {"S": KEY_PREFIX + reply_id}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return ReplyRecord(
            reply_id=reply_id,
            alias=item["alias"]["S"],
            address=item["address"]["S"],
            created=int(item.get("created", {"N": "0"})["N"]),
            expires=int(item["expires"]["N"]),
            others=tuple(value["S"] for value in item.get("others", {}).get("L", []) if "S" in value),
        )
