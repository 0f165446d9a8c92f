"""`forwarder redrive`: replay the events parked in the on-failure queue through the deployed function.

When the function fails three times on an SES event (the first try and Lambda's two retries), Lambda
sends an invocation record to the on-failure destination, an SQS queue (Lambda developer guide,
"Capturing records of Lambda asynchronous invocations"):

    {"version": "1.0", "timestamp": "...",
     "requestContext": {"requestId": "...", "functionArn": "...:$LATEST",
                        "condition": "RetriesExhausted", "approximateInvokeCount": 3},
     "requestPayload": {<the SES event>},
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
     "responsePayload": {"errorMessage": "...", "errorType": "..."}}

Each record's `requestPayload` is invoked again synchronously; the function's idempotency (keyed by
the SES message id) makes a replay of an already forwarded mail send nothing twice. A record is
deleted from the queue only when its replay succeeded; otherwise it stays, with the error reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forwarder.models import EventError, first_inbound

_BATCH = 10  # SQS ReceiveMessage returns at most 10 messages
# The forwarder's Timeout (template.yaml). A batch's records are replayed one after another, so they stay hidden
# for the replays of the whole batch: a record whose visibility ran out would come back in the same run, be
# replayed twice, and the delete with its first receipt handle might leave it in the queue.
FUNCTION_TIMEOUT_SECONDS = 120
VISIBILITY_SECONDS = _BATCH * (FUNCTION_TIMEOUT_SECONDS + 10)


@dataclass(frozen=True, slots=True)
class Parked:
    """One record of the failure queue: the SES event and why it was parked."""

    sqs_id: str
    receipt_handle: str
    event: dict[str, Any] | None
    message_id: str = "?"
    recipients: tuple[str, ...] = ()
    condition: str = ""
    attempts: int = 0
    error: str = ""
    timestamp: str = ""

    @property
    def reason(self) -> str:
        tries = f" after {self.attempts} tries" if self.attempts else ""
        return f"{self.condition or 'parked'}{tries}" + (f": {self.error}" if self.error else "")


@dataclass(frozen=True, slots=True)
class Replay:
    """What happened to one parked record."""

    parked: Parked
    status: str  # replayed | failed | unreadable | dry-run
    detail: str
    deleted: bool = False

    @property
    def ok(self) -> bool:
        return self.status in {"replayed", "dry-run"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.parked.message_id,
            "recipients": list(self.parked.recipients),
            "parked_at": self.parked.timestamp,
            "reason": self.parked.reason,
            "status": self.status,
            "detail": self.detail,
            "deleted": self.deleted,
        }


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        kind, message = payload.get("errorType", ""), payload.get("errorMessage", "")
        return f"{kind}: {message}" if kind and message else str(kind or message)
    return str(payload or "")


def _count(value: Any) -> int:
    """Lambda's attempt count, 0 (not shown) when it is not a whole number."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parse_record(sqs_id: str, receipt_handle: str, body: str) -> Parked:
    """A failure-queue message: a Lambda invocation record, or (from a dead-letter queue) the bare event."""
    try:
        record = json.loads(body)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return Parked(sqs_id, receipt_handle, None, error="not a JSON invocation record")
    event = record.get("requestPayload", record if "Records" in record else None)
    context = record.get("requestContext")
    context = context if isinstance(context, dict) else {}  # only read for the report: odd fields show as unknown
    if not isinstance(event, dict):
        return Parked(sqs_id, receipt_handle, None, error="no requestPayload in the record")
    try:
        inbound = first_inbound(event)
    except EventError as error:
        # Not an SES receipt event (another function's, or a damaged one): the forwarder would only fail on it
        # again, and count one more error against its alarm. It stays in the queue for a look.
        return Parked(
            sqs_id,
            receipt_handle,
            None,
            error=f"not an SES receipt event ({error})",
            timestamp=str(record.get("timestamp", "")),
        )
    message_id, recipients = inbound.message_id, inbound.recipients
    return Parked(
        sqs_id,
        receipt_handle,
        event,
        message_id=message_id,
        recipients=recipients,
        condition=str(context.get("condition", "")),
        attempts=_count(context.get("approximateInvokeCount")),
        error=_error_text(record.get("responsePayload")),
        timestamp=str(record.get("timestamp", "")),
    )


def describe_result(result: Any) -> str:
    """The handler's answer in a few words: `forwarded to 2 member(s) via team` or why not."""
    outcomes = result.get("outcomes") if isinstance(result, dict) else None
    if not outcomes:
        return "done"
    parts = []
    for outcome in outcomes:
        if outcome.get("forwarded"):
            aliases = ", ".join(outcome.get("aliases", []))
            parts.append(f"forwarded to {outcome.get('recipients', '?')} member(s) via {aliases}")
        else:
            parts.append(f"not forwarded: {outcome.get('reason', 'unknown')}")
        if outcome.get("failed"):
            parts.append(f"SES refused {len(outcome['failed'])} member(s)")
    return "; ".join(parts)


# Replays an SES event; returns (succeeded, what happened).
Invoke = Callable[[dict[str, Any]], tuple[bool, str]]


class LambdaInvoker:
    """Invoke the deployed function synchronously (RequestResponse) with the parked event."""

    def __init__(self, client: Any, function: str) -> None:
        self._client = client
        self.function = function

    def __call__(self, event: dict[str, Any]) -> tuple[bool, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.invoke(
                FunctionName=self.function, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
            )
        except ClientError as error:
            problem = error.response.get("Error", {})
            return False, f"{problem.get('Code', 'error')}: {problem.get('Message', '')}".rstrip(": ")
        except BotoCoreError as error:
            # No answer (connection lost, timeout): the function may have run. The record stays for the next run,
            # whose replay its idempotency makes safe; the other records are still replayed.
            return False, f"no answer from Lambda: {error}"
        raw = response["Payload"].read() if response.get("Payload") is not None else b""
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        if response.get("FunctionError"):
            return False, f"{response['FunctionError']}: {_error_text(payload)}"
        return True, describe_result(payload)


@dataclass
class Redrive:
    """Reads the failure queue and replays each record with `invoke`."""

    sqs: Any
    queue_url: str
    invoke: Invoke
    limit: int | None = None
    dry_run: bool = False
    wait_seconds: int = 2
    results: list[Replay] = field(default_factory=list)

    def waiting(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def run(self) -> list[Replay]:
        """Replay the records that were waiting when the run started (at most `limit`)."""
        expected = self.waiting()
        if self.limit is not None:
            expected = min(expected, self.limit)
        keep: list[Parked] = []
        try:
            while len(self.results) < expected:
                # Long polling answers at once when records are there, and waits only when the
                # (approximate) count promised more than the queue holds.
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=min(_BATCH, expected - len(self.results)),
                    VisibilityTimeout=VISIBILITY_SECONDS,
                    WaitTimeSeconds=self.wait_seconds,
                ).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    parked = parse_record(message["MessageId"], message["ReceiptHandle"], message.get("Body", ""))
                    replay = self._replay(parked)
                    self.results.append(replay)
                    if not replay.deleted:
                        keep.append(parked)
        finally:
            self._release(keep)
        return self.results

    def _replay(self, parked: Parked) -> Replay:
        if parked.event is None:
            return Replay(parked, "unreadable", parked.error)
        if self.dry_run:
            return Replay(parked, "dry-run", "would be replayed")
        ok, detail = self.invoke(parked.event)
        if not ok:
            return Replay(parked, "failed", detail)
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=parked.receipt_handle)
        return Replay(parked, "replayed", detail, deleted=True)

    def _release(self, kept: Sequence[Parked]) -> None:
        """Make the records that stay visible again at once, for the next run or a look in the console."""
        for start in range(0, len(kept), _BATCH):
            entries = [
                {"Id": str(n), "ReceiptHandle": p.receipt_handle, "VisibilityTimeout": 0}
                for n, p in enumerate(kept[start : start + _BATCH])
            ]
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)


def summary(results: Sequence[Replay], dry_run: bool) -> str:
    if not results:
        return "the failure queue is empty: nothing to replay"
    if dry_run:
        unreadable = sum(r.status == "unreadable" for r in results)
        extra = f", {unreadable} unreadable" if unreadable else ""
        return f"{len(results)} parked event(s) would be replayed{extra} (dry run: nothing changed)"
    replayed = sum(r.deleted for r in results)
    kept = len(results) - replayed
    return f"{len(results)} parked event(s): {replayed} replayed and deleted, {kept} kept in the queue"


def report(results: Sequence[Replay]) -> list[str]:
    from forwarder_ops.console import table

    symbols = {"replayed": "✓", "dry-run": "·", "failed": "✗", "unreadable": "✗"}
    rows = []
    for result in results:
        parked = result.parked
        after = "deleted" if result.deleted else ("kept" if result.status != "dry-run" else "")
        rows.append(
            (
                symbols[result.status],
                parked.message_id,
                ", ".join(parked.recipients) or "?",
                parked.reason if len(parked.reason) <= 80 else parked.reason[:79] + "…",
                f"{result.detail}" + (f" ({after})" if after else ""),
            )
        )
    return table(rows, header=("", "message id", "recipients", "parked because", "replay"), indent="  ")
