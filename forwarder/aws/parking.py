"""Parking an event that cannot succeed until an operator acts, without Lambda's useless retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

CONDITION = "NotRetryable"


class FailureQueue:
    """Writes an event to the stack's failure queue in the shape of Lambda's own on-failure record,
    so that `forwarder redrive` replays both alike once the cause is fixed."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self.queue_url = queue_url

    def park(self, event: dict[str, Any], error: Exception, request_id: str, function_arn: str) -> str:
        """Put `event` in the queue with the error that stopped it; returns the SQS message id."""
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": request_id,
                "functionArn": function_arn,
                "condition": CONDITION,
                "approximateInvokeCount": 1,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "responsePayload": {"errorType": type(error).__name__, "errorMessage": str(error)},
        }
        answer = self._client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(record))
        return str(answer["MessageId"])
