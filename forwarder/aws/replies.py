"""The reply table on DynamoDB: one item per reply address id (partition key `id` = `reply#<id>`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from forwarder.ports import ReplyRecord, ReplyStoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PREFIX = "reply#"


class DynamoDBReplies:
    """Items `{id, alias, address, created, expires}`; `expires` (epoch seconds) is the table's TTL attribute."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self.table = table

    def save(self, record: ReplyRecord) -> None:
        """Create the item or push its expiry out; `created` keeps the first forward's time.

        Raises `ReplyStoreError` when the table refuses (after botocore's retries)."""
        try:
            self._update(record)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise ReplyStoreError(f"reply table {self.table}: {code}") from error
        except BotoCoreError as error:
            raise ReplyStoreError(f"reply table {self.table}: {type(error).__name__}") from error

    def _update(self, record: ReplyRecord) -> None:
        self._client.update_item(
            TableName=self.table,
            Key={"id": {"S": KEY_PREFIX + record.reply_id}},
            UpdateExpression="SET #alias = :alias, #address = :address, #expires = :expires, "
            "#created = if_not_exists(#created, :created)",
            ExpressionAttributeNames={
                "#alias": "alias",
                "#address": "address",
                "#expires": "expires",
                "#created": "created",
            },
            ExpressionAttributeValues={
                ":alias": {"S": record.alias},
                ":address": {"S": record.address},
                ":expires": {"N": str(record.expires)},
                ":created": {"N": str(record.created)},
            },
        )

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
        )
