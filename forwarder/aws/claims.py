"""Doing each send once, on DynamoDB, in as few requests as a mail allows.

A send is *claimed* before it runs: one conditional write of the claim item, in the same transaction as
the writes this mail has queued by then (`PendingWrites`: the reply addresses its forwards carry, its
trace record). After the send, the claim is completed in one of two ways (`FORWARDER_IDEMPOTENCY_COMPLETION`):

- `write` (the code default): an UpdateItem right after the send, as Powertools Idempotency did;
- `send-event` (what the template deploys): no write at all. The send carries the tag `claim`, and the
  delivery function completes the claim when SES publishes the Send event, or any later event of the send
  should the Send event be lost or late (`complete_from_send_event`). A retry that finds the claim still in
  progress within the first run's deadline waits for Lambda's next retry; after the deadline, a claim that no
  event completed runs again (the first run died before SES took the mail). When an invocation raises after
  some of its sends, `settle` writes their completions at once, so that the retry does not depend on the
  events' timing.

A send that fails releases its claim (deletes it) for the retry, except a send SES may have taken without
answering (`SendUnconfirmedError`): its claim stays in progress, as a dead run's does. A run releases only the
claim it holds: once its deadline passed, another run may have taken the claim over and be sending; deleting
that run's claim would let a third one (a Lambda retry, a redrive) send the mail again.

Claim items keep Powertools Idempotency's layout (`id` = `send#<md5 of the key as sorted JSON>`, `status`
INPROGRESS/COMPLETED, `expiration` in seconds, `in_progress_expiration` in milliseconds, `data` the result
as JSON), so that a table written by earlier versions is read the same, plus `owner` while in progress: a random
token of the run that holds the claim (not its deadline, which two runs can share to the millisecond, nor
Lambda's request id, which an asynchronous event's retries share). The md5 is a key, not a secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from forwarder.config import IdempotencyCompletion
from forwarder.observability import logger
from forwarder.ports import CLAIM_TAG, ClaimInProgressError, Result, SendUnconfirmedError, send_result

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PREFIX = "send#"
INPROGRESS, COMPLETED = "INPROGRESS", "COMPLETED"
# The attribute naming the run that holds an in-progress claim (removed on completion, as the deadline is).
OWNER = "owner"
# TransactWriteItems takes at most 100 actions; one of them is the claim.
_TRANSACTION_LIMIT = 100
# Without a Lambda context (local runs, tests) a claim is in progress for at most Lambda's longest timeout.
_DEFAULT_IN_PROGRESS_MS = 900_000
_CACHE_SIZE = 256
_CLAIM_VALUE = re.compile(r"[0-9a-f]{32}")
# A queued write: (its item's identity, the TransactWriteItems action, what it is, for the log).
Queued = tuple[tuple[str, ...], dict[str, Any], str]


def claim_hash(key: Result) -> str:
    """The claim id's hash: Powertools' (md5 of the key as JSON with sorted keys), a valid SES tag value."""
    return hashlib.md5(json.dumps(key, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe(error: Exception) -> str:
    """For the log: a refusal's error code, or the kind of failure of a request that got no answer."""
    return _code(error) if isinstance(error, ClientError) else type(error).__name__


class PendingWrites:
    """Writes that ride along with the next claim's transaction instead of costing a request each.

    Each write is a TransactWriteItems action (`{"Put": ...}` or `{"Update": ...}`) under an identity
    (table, key); a later write of the same item replaces the earlier one (a transaction may touch an
    item once). `flush` writes what no claim took: at the end of a mail, or when there is no claim."""

    def __init__(self, client: DynamoDBClient) -> None:
        self._client = client
        self._writes: OrderedDict[tuple[str, ...], tuple[dict[str, Any], str]] = OrderedDict()

    def add(self, identity: tuple[str, ...], action: dict[str, Any], what: str) -> None:
        """Queue `action`; `what` names it in the log if it ends up failing on its own (e.g. "trace")."""
        self._writes.pop(identity, None)
        self._writes[identity] = (action, what)

    def take(self, room: int) -> list[Queued]:
        """Up to `room` queued writes, oldest first, removed from the queue (the caller writes them)."""
        taken: list[Queued] = []
        while self._writes and len(taken) < room:
            identity, (action, what) = self._writes.popitem(last=False)
            taken.append((identity, action, what))
        return taken

    def put_back(self, taken: list[Queued]) -> None:
        """Queue again what a refused claim did not write (unless a newer write of the item came since)."""
        for identity, action, what in taken:
            if identity not in self._writes:
                self._writes[identity] = (action, what)

    def discard(self) -> None:
        """Forget everything queued (the invocation failed: its retry queues it again)."""
        self._writes.clear()

    def flush(self) -> None:
        """Write everything queued: one transaction per 100 writes; if one is refused, each on its own."""
        while self._writes:
            batch = self.take(_TRANSACTION_LIMIT)
            if len(batch) == 1:
                self.write_each(batch)
                continue
            try:
                actions: list[Any] = [action for _, action, _ in batch]
                self._client.transact_write_items(TransactItems=actions)
            except ClientError as error:
                logger.warning("queued writes refused together; writing each", extra={"code": _code(error)})
                self.write_each(batch)

    def write_each(self, batch: list[Queued]) -> None:
        """Each write as its own request; a refused one is logged with what it was, never raised."""
        for _, action, what in batch:
            try:
                if "Put" in action:
                    self._client.put_item(**action["Put"])
                else:
                    self._client.update_item(**action["Update"])
            except (ClientError, BotoCoreError) as error:  # a timeout too: the claim before it is held already
                level = logger.error if what == "reply address" else logger.warning
                level("write not saved", extra={"write": what, "code": _describe(error)})


class DynamoDBClaims:
    """`Once` on DynamoDB: claim (with the queued writes), run, complete by `completion`."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        expiry_days: int,
        pending: PendingWrites | None = None,
        completion: IdempotencyCompletion = "write",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.table = table
        self.expiry_seconds = expiry_days * 86_400
        self.pending = pending if pending is not None else PendingWrites(client)
        self.completion = completion
        self._clock = clock
        self._context: Any = None
        self._done: OrderedDict[str, Result] = OrderedDict()  # completed here: a duplicate needs no request
        self._unsettled: dict[str, Result] = {}  # sent here, completion left to the Send event

    def register_context(self, context: Any) -> None:
        """A new invocation: its deadline bounds how long its claims count as in progress, and what the last
        one left to the Send events stays with them."""
        self._context = context
        self._unsettled.clear()

    def tags(self, key: Result) -> dict[str, str]:
        """The SES tags that let the delivery function complete this key's claim (send-event mode)."""
        return {CLAIM_TAG: claim_hash(key)} if self.completion == "send-event" else {}

    def __call__(self, key: Result, work: Callable[[], Result]) -> Result:
        claim = KEY_PREFIX + claim_hash(key)
        if claim in self._done:
            return self._done[claim]
        owner = os.urandom(16).hex()
        earlier = self._claim(claim, owner)
        if earlier is not None:
            self._remember(claim, earlier)
            return earlier
        try:
            result = work()
        except SendUnconfirmedError:
            # SES may have taken the mail: released, the claim would let Lambda's retry send it again. Kept, it is
            # completed by the send's Send event if SES took it; else the retry after its deadline sends.
            raise
        except BaseException:
            self._release(claim, owner)
            raise
        self._remember(claim, result)
        if self.completion == "write":
            try:
                self._complete(claim, result)
            except (ClientError, BotoCoreError) as error:
                # SES took the mail: failing the invocation would make Lambda's retry, once the claim's deadline
                # passed, send it again. Left to `settle`, as a completion left to the Send event is. A request
                # without an answer (a timeout, BotoCoreError) counts as much as a refused one.
                logger.warning("claim completion not written", extra={"code": _describe(error)})
                self._unsettled[claim] = result
        else:
            self._unsettled[claim] = result
        return result

    def settle(self) -> None:
        """Write the completions of this invocation's sends now (an invocation is failing after sending)."""
        while self._unsettled:
            claim, result = self._unsettled.popitem()
            try:
                self._complete(claim, result)
            except Exception as error:  # the next completion may still go through: try each
                logger.warning("claim completion not written", extra={"code": _describe(error)})

    # the claim -----------------------------------------------------------------------------------------

    def _claim(self, claim: str, owner: str) -> Result | None:
        """Claim `claim` for `owner` (this run's token), writing the queued writes with it; None when this run
        should do the work, the earlier result when a run completed it. Raises `ClaimInProgressError` while
        another run holds it."""
        now = self._clock()
        put = self._claim_put(claim, now, owner)
        riders = self.pending.take(_TRANSACTION_LIMIT - 1)
        if not riders:
            return self._put_alone(claim, put)
        try:
            actions: list[Any] = [{"Put": put}, *(action for _, action, _ in riders)]
            self._client.transact_write_items(TransactItems=actions)
        except ClientError as error:
            reasons = error.response.get("CancellationReasons") or []
            first = reasons[0].get("Code") if reasons else None
            if _code(error) == "TransactionCanceledException" and first == "ConditionalCheckFailed":
                # Claimed before: the riders wait for the next claim or the mail's end.
                self.pending.put_back(riders)
                return self._earlier(claim)
            # A rider was refused (or the transaction could not run): claim alone, write each rider alone.
            logger.warning("claim and queued writes refused together; writing each", extra={"code": _code(error)})
            earlier = self._put_alone(claim, put)
            self.pending.write_each(riders)
            return earlier
        return None

    def _claim_put(self, claim: str, now: float, owner: str) -> dict[str, Any]:
        deadline_ms = int(now * 1000) + self._remaining_ms()
        return {
            "TableName": self.table,
            "Item": {
                "id": {"S": claim},
                "status": {"S": INPROGRESS},
                "expiration": {"N": str(int(now) + self.expiry_seconds)},
                "in_progress_expiration": {"N": str(deadline_ms)},
                OWNER: {"S": owner},
            },
            # Free, expired, or held by a run whose deadline has passed.
            "ConditionExpression": "attribute_not_exists(#id) OR #expiry < :now OR "
            "(#status = :inprogress AND attribute_exists(#until) AND #until < :now_ms)",
            "ExpressionAttributeNames": {
                "#id": "id",
                "#expiry": "expiration",
                "#status": "status",
                "#until": "in_progress_expiration",
            },
            "ExpressionAttributeValues": {
                ":now": {"N": str(int(now))},
                ":now_ms": {"N": str(int(now * 1000))},
                ":inprogress": {"S": INPROGRESS},
            },
        }

    def _remaining_ms(self) -> int:
        remaining = getattr(self._context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return _DEFAULT_IN_PROGRESS_MS
        return max(0, int(remaining()))

    def _put_alone(self, claim: str, put: dict[str, Any]) -> Result | None:
        try:
            self._client.put_item(**put)
        except ClientError as error:
            # Held by a run (the condition), or being claimed by another invocation's transaction right now.
            if _code(error) in ("ConditionalCheckFailedException", "TransactionConflictException"):
                return self._earlier(claim)
            raise
        return None

    def _earlier(self, claim: str) -> Result:
        """The completed result of the run that holds `claim`; raises while that run is in progress."""
        item = self._client.get_item(TableName=self.table, Key={"id": {"S": claim}}, ConsistentRead=True).get("Item")
        if item is None:
            # Released (its run failed) between our claim and this read: Lambda's retry claims it again.
            raise ClaimInProgressError(f"{claim} was released while being claimed; retry")
        if item.get("status", {}).get("S") == COMPLETED:
            loaded = json.loads(item.get("data", {}).get("S") or "{}")
            return loaded if isinstance(loaded, dict) else {"result": loaded}
        raise ClaimInProgressError(f"{claim} is being sent by another invocation; retry later")

    def _complete(self, claim: str, result: Result) -> None:
        """Mark `claim` completed with this run's result. Unlike `_release`, whether this run still holds the
        claim does not matter: its mail went out, which is what a completed claim says. Should a run that took
        the claim over (after this run's deadline) fail later, its release finds the claim completed and keeps
        it, and no retry sends the mail again."""
        expires = int(self._clock()) + self.expiry_seconds
        self._client.update_item(**completion(self.table, claim, result, expires))

    def _release(self, claim: str, owner: str) -> None:
        """The work raised: delete the claim, so that a retry runs it again (best effort: a claim left
        behind expires at this invocation's deadline). Only while in progress and held by this run (`owner`):
        a send whose answer was lost (a read timeout) may have reached SES, whose event completed the claim
        meanwhile; a run that overran its deadline may find the claim taken over by another run, sending now.
        Deleting either would let the retry send the mail again."""
        try:
            self._client.delete_item(
                TableName=self.table,
                Key={"id": {"S": claim}},
                ConditionExpression="#status = :inprogress AND #owner = :owner",
                ExpressionAttributeNames={"#status": "status", "#owner": OWNER},
                ExpressionAttributeValues={":inprogress": {"S": INPROGRESS}, ":owner": {"S": owner}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except (ClientError, BotoCoreError) as error:  # never in place of the work's own error
            if isinstance(error, ClientError) and _code(error) == "ConditionalCheckFailedException":
                found = _found(error.response.get("Item"))
                logger.info("claim kept: not this run's any more", extra={"claim_now": found})
            else:
                logger.warning("claim not released", extra={"code": _describe(error)})

    def _remember(self, claim: str, result: Result) -> None:
        self._done[claim] = result
        self._done.move_to_end(claim)
        while len(self._done) > _CACHE_SIZE:
            self._done.popitem(last=False)


def _found(item: object) -> str:
    """For the log, the claim a refused release found (DynamoDB returns it with the refusal): `completed`,
    `taken over` by another run, or `gone` (deleted, or expired and removed)."""
    if not isinstance(item, dict) or not item:
        return "gone"
    return "completed" if item.get("status", {}).get("S") == COMPLETED else "taken over"


def completion(table: str, claim: str, result: Result, expires: int | None = None) -> dict[str, Any]:
    """The UpdateItem that marks `claim` (its whole id) completed with `result`, in Powertools' layout. With
    `expires` (epoch seconds), an item without an expiry gets that one: a completion that finds its claim gone
    (released by a run that took it over, then failed) writes the item anew, which the TTL must still remove."""
    request: dict[str, Any] = {
        "TableName": table,
        "Key": {"id": {"S": claim}},
        "UpdateExpression": "SET #status = :completed, #data = :data REMOVE #until, #owner",
        "ExpressionAttributeNames": {
            "#status": "status",
            "#data": "data",
            "#until": "in_progress_expiration",
            "#owner": OWNER,
        },
        "ExpressionAttributeValues": {":completed": {"S": COMPLETED}, ":data": {"S": json.dumps(result)}},
    }
    if expires is not None:
        request["UpdateExpression"] = (
            "SET #status = :completed, #data = :data, #expiry = if_not_exists(#expiry, :expiry) REMOVE #until, #owner"
        )
        request["ExpressionAttributeNames"]["#expiry"] = "expiration"
        request["ExpressionAttributeValues"][":expiry"] = {"N": str(expires)}
    return request


def complete_from_send_event(client: DynamoDBClient, table: str, claim: str, ses_id: str, notice: bool = False) -> bool:
    """The delivery function's half of send-event mode: SES published an event of a claimed send, its Send
    event or a later one (`notice`: a notice sent in place of the mail; the result says so, as the forwarder's
    own does). False when the claim is not in progress (completed already, by an earlier event of the send or
    by the run's `settle`, or released and gone): a completed claim is never written over."""
    if not _CLAIM_VALUE.fullmatch(claim):
        return False
    request = completion(table, KEY_PREFIX + claim, send_result(ses_id, notice))
    request["ConditionExpression"] = "#status = :inprogress"
    request["ExpressionAttributeValues"][":inprogress"] = {"S": INPROGRESS}
    try:
        client.update_item(**request)
    except ClientError as error:
        if _code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True
