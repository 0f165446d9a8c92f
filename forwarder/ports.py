"""What the service needs from the outside world: the adapters' Protocols, the errors they raise, and the
value types that cross the boundary (what one received mail is, what happened to it).

The service imports this module and `forwarder.mail`, never `forwarder.aws`: the adapters implement these
Protocols and raise these errors, and tests replace them with in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from forwarder.mail.message import SplitMessage, split_message
from forwarder.mail.policy import Decision, Verdicts
from forwarder.mail.routing import Routing

if TYPE_CHECKING:
    from forwarder.trace import TraceEntry

# SES v2 SendEmail: at most 50 envelope recipients per call.
MAX_RECIPIENTS = 50
# The SES tag naming the claim a send completes (idempotency's send-event mode; `forwarder.feedback` reads it).
CLAIM_TAG = "claim"
# The SES tag of a send that is a notice in place of the mail (its claim's result says so: a retry that finds the
# claim completed reports the notice, as the first run did).
NOTICE_TAG = "notice"
# The SES tag of a relayed reply's send to the outside sender (value `true`): that recipient is not a member, so the
# delivery function must not advise removing it from the alias when it bounces or complains.
OUTSIDE_TAG = "outside"

Result = dict[str, Any]


def send_result(ses_id: str, notice: bool) -> Result:
    """A send's claim result: SES's message id, and `notice` when what SES took was the notice in place of the mail."""
    return {"ses_id": ses_id, "notice": True} if notice else {"ses_id": ses_id}


# errors ------------------------------------------------------------------------------------------------


class StoredMailError(RuntimeError):
    """The stored message cannot be read; the message names the bucket and key."""


class ClaimInProgressError(RuntimeError):
    """Another invocation holds this send's claim and has not completed it: Lambda retries later."""


class SendUnconfirmedError(RuntimeError):
    """A send request reached SES, or may have, but no answer came back (a read timeout, a connection closed
    before the answer): SES may have taken the mail. Sending it again could deliver it twice, so the send's claim
    is kept, not released: SES's Send event completes it if SES took the mail (send-event mode), and Lambda's
    retry sends again only once the claim's deadline passed without one."""


class ReplyStoreError(RuntimeError):
    """The reply table cannot be written; the message names the table and the error code."""


class SendError(Exception):
    """SES refused a send for a reason that retrying the same request cannot fix."""

    def __init__(self, message: str, *, code: str, recipients: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.recipients = tuple(recipients)


class RecipientNotVerifiedError(SendError):
    """The region is in the SES sandbox and a recipient is not a verified identity."""


class RecipientNotAuthorizedError(RecipientNotVerifiedError):
    """The region is in the SES sandbox, where IAM also checks the sending permission against each recipient's
    identity, and the function's policy does not name this recipient's."""


class MessageRejectedError(SendError):
    """SES rejected this message itself (content or format); other messages are unaffected."""


class SenderNotReadyError(SendError):
    """Our identity, MAIL FROM domain, account or configuration set cannot send until an operator acts."""


# adapters ----------------------------------------------------------------------------------------------


class MessageBuffer(bytearray):
    """A stored message in a buffer with free room around it: `start` free bytes, the message, and spare
    capacity after it (not part of the contents).

    The service writes each forwarded header block so that it ends where the body starts. A block no
    longer than the room plus the received head only moves the buffer's start forward (CPython shrinks a
    bytearray from the front in place); a later, longer one (a second alias) moves the body within the
    spare capacity. Without the room, a header block longer than the received one makes CPython allocate
    a second buffer and copy the whole message into it.
    """

    __slots__ = ("start",)

    def __init__(self, length: int, room: int) -> None:
        super().__init__(room + length + room)
        del self[room + length :]  # a small cut from the end keeps the capacity
        self.start = room


def split_stored(raw: bytes | bytearray) -> SplitMessage:
    """What `MailStore.read` returned, split into header fields and body: a `MessageBuffer`'s message
    starts after its free room."""
    return split_message(raw, raw.start if isinstance(raw, MessageBuffer) else 0)


class MailStore(Protocol):
    def read(self, message_id: str) -> bytes | bytearray | MessageBuffer: ...


class Parking(Protocol):
    def park(self, event: dict[str, Any], error: Exception, request_id: str, function_arn: str) -> str: ...


class AliasDirectory(Protocol):
    def aliases(self) -> dict[str, str]: ...


class Sender(Protocol):
    def send(
        self, raw: bytes | bytearray, from_address: str, recipients: Sequence[str], tags: dict[str, str] | None = None
    ) -> str: ...


class ReplyStore(Protocol):
    """The reply table: which outside address a reply address id stands for, and until when."""

    def save(self, record: ReplyRecord) -> None: ...

    def load(self, reply_id: str) -> ReplyRecord | None: ...


class Once(Protocol):
    """Runs `work` unless a run with the same `key` already completed; then returns that run's result."""

    def __call__(self, key: Result, work: Callable[[], Result]) -> Result: ...

    def register_context(self, context: Any) -> None: ...

    def tags(self, key: Result) -> dict[str, str]:
        """SES tags the send of `key` carries for its completion (none unless completed by Send events)."""

    def settle(self) -> None:
        """Record now the completions this invocation left to SES's Send events (it is failing)."""


class Pending(Protocol):
    """Writes queued to ride along with the next send's claim; `flush` writes what none took, `discard`
    forgets it (the invocation failed)."""

    def flush(self) -> None: ...

    def discard(self) -> None: ...


class TraceLog(Protocol):
    """Records the forwarder's side of a mail's path (received, decision, members); the delivery function
    adds SES's events. Failures are the service's to log: a trace is never worth losing mail over."""

    def record(
        self, inbound: Inbound, outcome: Outcome, routing: Routing | None, decision: Decision | None
    ) -> None: ...

    def intend(self, inbound: Inbound, outcome: Outcome, routing: Routing | None, decision: Decision | None) -> None:
        """What `record` will most likely be told after the sends (`outcome` if every send succeeds), told
        before them: an adapter may write it with the first send's claim, and `record` then has nothing to add."""


class NoTrace:
    """FORWARDER_TRACE_TABLE unset: nothing is recorded."""

    def intend(self, inbound: Inbound, outcome: Outcome, routing: Routing | None, decision: Decision | None) -> None:
        """Nothing to record."""

    def record(self, inbound: Inbound, outcome: Outcome, routing: Routing | None, decision: Decision | None) -> None:
        """Nothing to record."""


class DeliveryTrace(Protocol):
    """The delivery function's side of the trace table."""

    def add_event(self, inbound: str, alias: str, member: str, entry: TraceEntry) -> bool:
        """Add one SES event to a member's history; False when it was there already (a redelivery)."""

    def member_alias(self, inbound: str, member: str) -> str | None:
        """The alias the forwarder sent `member` the mail under (tags hold a sanitised alias)."""

    def claim_alarm(self, alias: str, member: str, kind: str) -> bool:
        """True the first time (alias, member, kind) is claimed; False ever after (within the retention)."""

    def release_alarm(self, alias: str, member: str, kind: str) -> None:
        """Undo a claim whose notification could not be published, so that the retry publishes it."""


class Notifier(Protocol):
    def notify(self, subject: str, message: str) -> None: ...


class Always:
    """Idempotency switched off: every call runs."""

    def register_context(self, context: Any) -> None:
        """Nothing to expire."""

    def tags(self, key: Result) -> dict[str, str]:
        return {}

    def settle(self) -> None:
        """Nothing to record."""

    def __call__(self, key: Result, work: Callable[[], Result]) -> Result:
        return work()


class NoPending:
    """Nothing is queued: every adapter writes at once."""

    def flush(self) -> None:
        """Nothing to write."""

    def discard(self) -> None:
        """Nothing to forget."""


# values ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inbound:
    """What the forwarder needs to know of one SES receipt notification."""

    message_id: str
    recipients: tuple[str, ...]
    envelope_sender: str | None = None
    verdicts: Verdicts = field(default_factory=Verdicts)
    received_at: str | None = None
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyRecord:
    """One reply address's state: the outside address it stands for, via which alias, created and expiring
    (epoch seconds). `expires` is also the table's TTL attribute; DynamoDB deletes expired items lazily
    (within days), so the relay checks it itself."""

    reply_id: str
    alias: str
    address: str
    created: int
    expires: int
    # The other outside addresses of the conversation (forwarder/mail/participants.py): a relayed reply goes to
    # `address` and, in Cc, to these.
    others: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplyAddress:
    """A forward's reply address, and the outside addresses (lower case) it stands for, which the members' copy
    writes as the reply address in To and Cc."""

    address: str
    masked: frozenset[str]
    # False when the mail's replies go straight to whom it names (a member writing to their alias, a Reply-To of
    # the alias itself): the reply address then stands only in To and Cc, for the outside people there.
    reply_to: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one received message (returned by the handler, logged, counted)."""

    message_id: str
    forwarded: bool
    reason: str | None = None
    recipients: int = 0
    aliases: tuple[str, ...] = ()
    sent: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    oversize: bool = False
    # Mail to a reply address: "relayed" (sent on to the outside sender) or why it was not ("reply-...").
    reply: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what the handler returns and logs."""
        # Not `dataclasses.asdict`, which deep-copies every value: no field nests (twice per mail, on the hot path).
        values = ((name, getattr(self, name)) for name in _OUTCOME_FIELDS)
        return {name: list(value) if isinstance(value, tuple) else value for name, value in values}


_OUTCOME_FIELDS = tuple(each.name for each in fields(Outcome))
