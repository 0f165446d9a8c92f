"""The delivery trace, as pure data: what one received mail became, member by member.

Two writers fill one DynamoDB table (`FORWARDER_TRACE_TABLE`): the forwarder records its own side once
per mail (received, verdicts, decision, the members it sent to or skipped and why), and the delivery
function records what SES reported afterwards for each member (Send, Delivery, Bounce, Complaint, ...).
This module holds the item layout, the states and their order, and the merge rules that make the
latest state independent of the order in which SES's events arrive and of the clocks that stamped them.
No boto3 here.

Item layout (partition `pk`, sort `sk`):
- `mail#<inbound id>` / `mail`: the forwarder's record; `day` + `received` feed the `by-day` index,
  `lookup` = `from#<envelope sender>` + `received` the `lookup` index.
- `mail#<inbound id>` / `alias#<alias>`: one small item per addressed alias, `lookup` = `alias#<alias>`,
  so that `forwarder trace --alias` is a query, not a scan.
- `mail#<inbound id>` / `member#<address>`: SES's events for one member: `history` and the `state` it implies.
- `alarm#<alias>#<member>` / `<kind>`: written once, conditionally, before the alarm topic is notified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from forwarder.mail.policy import INTERRUPTED, MARKED, RELAYED

if TYPE_CHECKING:
    from forwarder.mail.policy import Decision
    from forwarder.mail.routing import Routing
    from forwarder.ports import Inbound, Outcome

# The states of a member's copy, in the order they can follow each other: SES reports a send's stages in
# this order only (sent, delays, then delivered or not; a bounce or a complaint may still follow a delivery,
# nothing follows a bounce). The stage decides which state is the latest, the time only orders events of
# one stage: a Bounce or Complaint carries the receiving side's time (its DSN or feedback report, often to
# the second), which may read earlier than SES's Delivery that it follows.
RECEIVED = "received"
SENT = "sent"
DELAYED = "delayed"
DELIVERED = "delivered"
BOUNCED = "bounced"
SUPPRESSED = "suppressed"
REJECTED = "rejected"
FAILED = "failed"
COMPLAINED = "complained"
SKIPPED = "skipped"

_RANK = {
    SKIPPED: 0,
    RECEIVED: 0,
    SENT: 1,
    DELAYED: 2,
    DELIVERED: 3,
    BOUNCED: 4,
    SUPPRESSED: 4,
    REJECTED: 4,
    FAILED: 4,
    COMPLAINED: 5,
}

# The states that mean the member did not get the mail, or told their provider it is spam.
PROBLEMS = frozenset({BOUNCED, SUPPRESSED, REJECTED, FAILED, COMPLAINED})

MAIL_SK = "mail"
MEMBER_PREFIX = "member#"
ALIAS_PREFIX = "alias#"
SENDER_PREFIX = "from#"


def mail_pk(message_id: str) -> str:
    return f"mail#{message_id}"


def member_sk(member: str) -> str:
    return f"{MEMBER_PREFIX}{member.lower()}"


def alarm_key(alias: str, member: str, kind: str) -> dict[str, str]:
    return {"pk": f"alarm#{alias}#{member.lower()}", "sk": kind}


def timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with milliseconds, the form SES uses: strings of it sort in time order."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    # The year by hand: strftime's %Y writes a year before 1000 without its leading zeros ("999-..."), which sorts
    # after "2026-...".
    return f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def normalise_time(text: str | None, fallback: str | None = None) -> str:
    """An SES timestamp (with or without fractions or an offset) in the one sortable form; `fallback` (else the
    time now) when it is missing or unreadable."""
    if not text:
        return fallback or timestamp()
    try:
        return timestamp(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except (ValueError, OverflowError):  # OverflowError: a time at the calendar's end, beyond it in UTC
        return fallback or timestamp()


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One step of one member's path: when, which state, SES's event type, a readable detail.

    `key` identifies the event itself, so that a second delivery of the same SNS notification (SNS and
    Lambda both retry) is recognised and not added twice.
    """

    at: str
    state: str
    event: str
    key: str
    detail: str = ""
    # The recipient is the outside sender a member's reply was relayed to (the send's `outside` tag), not a member.
    outside: bool = False

    def as_item(self) -> dict[str, Any]:
        item: dict[str, Any] = asdict(self)
        if not self.outside:
            del item["outside"]  # a member's step, as items were written before the field
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> TraceEntry:
        return cls(
            at=str(item.get("at", "")),
            state=str(item.get("state", "")),
            event=str(item.get("event", "")),
            key=str(item.get("key", "")),
            detail=str(item.get("detail", "")),
            outside=item.get("outside") is True,
        )


def order(entry: TraceEntry) -> tuple[int, str]:
    """The stage's rank first, the event time within a stage."""
    return _RANK.get(entry.state, 0), entry.at


def merge_entry(history: Sequence[TraceEntry], entry: TraceEntry) -> tuple[list[TraceEntry], bool]:
    """`history` with `entry` in stage order, and whether it was new (False: a duplicate delivery)."""
    if any(known.key == entry.key for known in history):
        return list(history), False
    return sorted([*history, entry], key=order), True


def latest(history: Iterable[TraceEntry]) -> TraceEntry | None:
    """The entry that says where the member is now: by stage, then event time, never by arrival."""
    return max(history, key=order, default=None)


def path(history: Iterable[TraceEntry]) -> list[str]:
    """The states in stage order without repeats, e.g. ['sent', 'delayed', 'delivered']."""
    states: list[str] = []
    for entry in sorted(history, key=order):
        if not states or states[-1] != entry.state:
            states.append(entry.state)
    return states


# the forwarder's record ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """What the forwarder did for one member: sent (with the batch's SES message id), failed, skipped."""

    alias: str
    member: str
    status: str
    detail: str = ""

    def as_item(self) -> dict[str, str]:
        return {"alias": self.alias, "member": self.member, "status": self.status, "detail": self.detail}


def decision_text(forwarded: bool, reason: str | None, tag_spam: bool, reply: str | None = None) -> str:
    """The policy's decision in a few words; `reply` is `Outcome.reply` (mail to a reply address)."""
    if reply == RELAYED:
        return "reply relayed to the outside sender as the alias, a copy to each other member"
    if forwarded and reply in MARKED:
        return f"reply not relayed ({reply}): forwarded to the members, subject tagged"
    if reason == "parked":
        return "parked in the failure queue (SES cannot send until an operator acts)"
    if reason and reason.startswith(INTERRUPTED):
        error = reason.removeprefix(INTERRUPTED)
        return f"interrupted by {error}: Lambda retries the event; the members' SES events show who got it"
    if not forwarded and reason:
        return f"not forwarded: {reason}"
    return "forwarded, subject tagged as spam" if tag_spam else "forwarded"


def day_of(received: str) -> str:
    return received[:10]


def expires_at(days: int, now: datetime | None = None) -> int:
    """The TTL attribute: epoch seconds `days` from now (DynamoDB deletes the item some time after)."""
    return int((now or datetime.now(UTC)).timestamp()) + days * 86_400


def forward_items(
    inbound: Inbound,
    outcome: Outcome,
    routing: Routing | None,
    decision: Decision | None,
    *,
    subjects: bool,
    expires: int,
) -> list[dict[str, Any]]:
    """The forwarder's items for one mail: the `mail` record and one lookup item per addressed alias."""
    received = normalise_time(inbound.received_at)
    sender = (inbound.envelope_sender or "").strip().lower()
    pk = mail_pk(inbound.message_id)
    failed = {m.lower() for m in outcome.failed}
    members: list[MemberRecord] = []
    unknown: list[str] = []
    if routing is not None:
        for delivery in routing.deliveries:
            for member in delivery.members:
                if member.lower() in failed:
                    members.append(MemberRecord(delivery.alias, member.lower(), FAILED, "SES refused the send"))
                else:
                    detail = "oversize: a notice with a download link" if outcome.oversize else ""
                    members.append(MemberRecord(delivery.alias, member.lower(), SENT, detail))
        members += [MemberRecord(s.alias, s.member.lower(), SKIPPED, s.reason) for s in routing.skipped]
        unknown = list(routing.unknown)
    verdicts = inbound.verdicts
    mail: dict[str, Any] = {
        "pk": pk,
        "sk": MAIL_SK,
        "message_id": inbound.message_id,
        "received": received,
        "day": day_of(received),
        "recorded": timestamp(),
        "sender": sender,
        "recipients": list(inbound.recipients),
        "verdicts": {
            "spam": verdicts.spam,
            "virus": verdicts.virus,
            "dmarc": verdicts.dmarc,
            **({"dmarc_policy": verdicts.dmarc_policy} if verdicts.dmarc_policy else {}),
        },
        "decision": decision_text(
            outcome.forwarded, outcome.reason, bool(decision and decision.tag_spam), outcome.reply
        ),
        "forwarded": outcome.forwarded,
        "reason": outcome.reason or "",
        "aliases": list(outcome.aliases) or sorted({m.alias for m in members}),
        "members": [m.as_item() for m in members],
        "unknown": unknown,
        "oversize": outcome.oversize,
        "expires": expires,
    }
    if outcome.reply:
        mail["reply"] = outcome.reply
    if sender:
        mail["lookup"] = f"{SENDER_PREFIX}{sender}"
    if subjects and inbound.subject:
        mail["subject"] = inbound.subject[:500]
    aliases = {m.alias for m in members} | set(outcome.aliases)
    items = [mail]
    for alias in sorted(aliases):
        items.append(
            {
                "pk": pk,
                "sk": f"{ALIAS_PREFIX}{alias}",
                "lookup": f"{ALIAS_PREFIX}{alias}",
                "received": received,
                "message_id": inbound.message_id,
                "expires": expires,
            }
        )
    return items
