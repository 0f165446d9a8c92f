"""SES event publishing records (the configuration set's events, delivered through SNS), parsed at the
boundary into one trace entry per member.

The record format is the one documented in the SES developer guide, "Contents of event data that Amazon
SES publishes to Amazon SNS": a top-level `eventType`, the `mail` object (with the send's `tags`), and one
object named after the type (`bounce`, `complaint`, `delivery`, `send`, `reject`, `failure`,
`deliveryDelay`). SES reserves the right to add fields: only what is read here is checked, the rest
ignored. Identity feedback notifications name the type `notificationType`; they carry no tags, so they
cannot be traced and are skipped like any record without our tags.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from forwarder.ports import CLAIM_TAG, NOTICE_TAG, OUTSIDE_TAG
from forwarder.trace import (
    BOUNCED,
    COMPLAINED,
    DELAYED,
    DELIVERED,
    FAILED,
    REJECTED,
    SENT,
    SUPPRESSED,
    TraceEntry,
    normalise_time,
)

INBOUND_TAG = "inbound"
ALIAS_TAG = "alias"

# The event types that prove SES took a send: each completes the send's claim. A Reject too (SES accepted the
# send, then found a virus): sending again would be rejected again. Open and Click, should the configuration set
# ever publish them, follow a delivery. Not a Rendering Failure: SES sent nothing (and renders no raw send).
CLAIM_EVENTS = frozenset({"Send", "Reject", "Delivery", "Bounce", "Complaint", "DeliveryDelay", "Open", "Click"})
# The bounce subtypes with which SES reports a recipient it did not try at all: the account-level
# suppression list (OnAccountSuppressionList) and SES's global suppression list (Suppressed). SES "accepts
# the message, but doesn't send it" (developer guide, "Using the account-level suppression list") and
# reports a Permanent bounce instead; a complaint can carry complaintSubType OnAccountSuppressionList too.
SUPPRESSION_SUBTYPES = frozenset({"OnAccountSuppressionList", "Suppressed"})
# A step's detail is the receiving server's words (a DSN's diagnostic code, an SMTP response): kept to what a reader
# needs, so that a member's item (every step's detail, twice the latest) stays far below DynamoDB's 400 KB.
MAX_DETAIL = 1000
# A complaint's detail says this when SES names several recipients who may have sent it (see `_complaint`).
UNSURE_COMPLAINANT = "the provider did not say which"
# The Feedback-Type of a report that says the mail is *not* spam (RFC 5965; SES passes it on as a Complaint event
# with this complaintFeedbackType): the member's provider reports the mail as wanted, e.g. moved out of the spam folder.
NOT_SPAM = "not-spam"
# A bounce's detail says this when SES names an address the send did not go to (see `_bounce`).
NOT_SENT_TO = "on no alias: a member's mailbox forwards there"
# Longer than any address (RFC 5321 caps a path at 256 octets), well within the 1024 bytes of a member's key.
_MAX_ADDRESS = 320
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class FeedbackError(ValueError):
    """A record that is not an SES event publishing record we can read."""


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """One member's step, addressed by the tags of the send it belongs to (or, when `entry.outside`, the step of
    the outside sender a member's reply was relayed to)."""

    inbound: str
    alias: str
    member: str
    entry: TraceEntry
    # Of a complaint whose provider did not say who complained: every member SES names, any of whom it may be.
    among: tuple[str, ...] = ()

    @property
    def alarm_kind(self) -> str | None:
        """`bounce` for a permanent bounce (suppression included), `complaint`; else None."""
        if self.entry.state == COMPLAINED:
            return "complaint"
        if self.entry.state == SUPPRESSED or (
            self.entry.state == BOUNCED and self.entry.detail.startswith("Permanent")
        ):
            return "bounce"
        return None


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    return value if isinstance(value, Mapping) else {}


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    return value.strip() if isinstance(value, str) else ""


def _tag(tags: Mapping[str, Any], name: str) -> str:
    value = tags.get(name)
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return value if isinstance(value, str) else ""


def _address(value: Any) -> str:
    """`value` as a member's address, or "" when it cannot be one: empty, longer than an address may be
    (RFC 5321: 254 octets; the member's key allows 1024 bytes), or holding a control character. A bounce's
    address is the receiving server's Final-Recipient: such a value must not fail the record for the others."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text.encode("utf-8", "surrogatepass")) > _MAX_ADDRESS or _CONTROL.search(text):
        return ""
    return text


def _recipients(items: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """(address, its object) of `bouncedRecipients`, `complainedRecipients`, `delayedRecipients`."""
    found = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and (address := _address(item.get("emailAddress"))):
            found.append((address, item))
    return found


def _addresses(items: Any) -> list[str]:
    return [a for a in map(_address, items) if a] if isinstance(items, list) else []


def sns_messages(event: Any) -> list[tuple[str, str | None]]:
    """(SNS message id, message text) of each record of a Lambda event from an SNS subscription; the text is
    None for a record without one (that record is unreadable, the others are not)."""
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        raise FeedbackError("event: expected an SNS event with Records")
    messages: list[tuple[str, str | None]] = []
    for record in event["Records"]:
        sns = _object(record, "Sns") if isinstance(record, Mapping) else {}
        message = sns.get("Message")
        messages.append((_text(sns, "MessageId"), message if isinstance(message, str) else None))
    return messages


def _load(text: str) -> Mapping[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise FeedbackError(f"not JSON: {error.msg}") from None
    if not isinstance(record, Mapping):
        raise FeedbackError("not a JSON object")
    # A lone surrogate (JSON allows "\ud800") is no text: DynamoDB's request and the log cannot encode it, and the
    # record would fail on every retry. Each one becomes "?".
    written = json.dumps(record, ensure_ascii=False)
    try:
        written.encode("utf-8")
    except UnicodeEncodeError:
        repaired: Mapping[str, Any] = json.loads(written.encode("utf-8", "replace"))
        return repaired
    return record


def send_claim(text: str) -> tuple[str, str, bool] | None:
    """(claim, SES message id, whether the send was a notice in place of the mail) of an event that proves SES
    took a send which carried the `claim` tag (the forwarder's send-event mode), else None. Not only the Send
    event: should it be lost, or come after another, any later event of the send (`CLAIM_EVENTS`) completes the
    claim the same way."""
    record = _load(text)
    mail = _object(record, "mail")
    tags = _object(mail, "tags")
    claim, ses_id = _tag(tags, CLAIM_TAG), _text(mail, "messageId")
    if _text(record, "eventType") not in CLAIM_EVENTS or not claim or not ses_id:
        return None
    return claim, ses_id, _tag(tags, NOTICE_TAG) == "true"


def parse_record(text: str) -> list[MemberEvent]:
    """The member steps of one SES event record (empty when it carries none of our tags)."""
    record = _load(text)
    kind = _text(record, "eventType") or _text(record, "notificationType")
    mail = _object(record, "mail")
    tags = _object(mail, "tags")
    inbound, alias = _tag(tags, INBOUND_TAG), _tag(tags, ALIAS_TAG)
    if not kind or not inbound:
        return []
    ses_id = _text(mail, "messageId")
    # An event's own time when it has a readable one, else the send's: the same for every redelivery of the event,
    # whose key (below) then recognises it (the time of processing made each one a new history entry).
    sent_at = normalise_time(_text(mail, "timestamp"))
    steps = _steps(kind, record, mail, sent_at)
    outside = _tag(tags, OUTSIDE_TAG) == "true"

    def event(member: str, state: str, at: str, detail: str, feedback: str = "") -> MemberEvent:
        key = f"{kind}|{ses_id}|{at}|{feedback}"
        entry = TraceEntry(at, state, kind, key, detail[:MAX_DETAIL], outside)
        return MemberEvent(inbound, alias, member.lower(), entry)

    events = [event(*step) for step in steps]
    unsure = tuple(e.member for e in events if e.entry.state == COMPLAINED)
    if len(unsure) > 1:  # one complaint, of one of them (see `_complaint`): its alarm names them all, once
        events = [replace(e, among=unsure) if e.entry.state == COMPLAINED else e for e in events]
    return events


Step = tuple[str, str, str, str, str]


def _send(record: Mapping[str, Any], destination: list[str], sent_at: str) -> list[Step]:
    return [(m, SENT, sent_at, "accepted by SES", "") for m in destination]


def _delivery(record: Mapping[str, Any], destination: list[str], sent_at: str) -> list[Step]:
    delivery = _object(record, "delivery")
    at = normalise_time(_text(delivery, "timestamp"), sent_at)
    # Only the recipients it names: SES may publish a send's Deliveries one per recipient (SNS contents, "you
    # might receive a single notification per recipient"), so one naming nobody tells nothing of the others.
    members = _addresses(delivery.get("recipients"))
    return [(m, DELIVERED, at, _text(delivery, "smtpResponse"), "") for m in members]


def _bounce(record: Mapping[str, Any], destination: list[str], sent_at: str) -> list[Step]:
    bounce = _object(record, "bounce")
    at, feedback = normalise_time(_text(bounce, "timestamp"), sent_at), _text(bounce, "feedbackId")
    kind = "/".join(p for p in (_text(bounce, "bounceType"), _text(bounce, "bounceSubType")) if p)
    state = SUPPRESSED if _text(bounce, "bounceSubType") in SUPPRESSION_SUBTYPES else BOUNCED
    named = _recipients(bounce.get("bouncedRecipients"))
    # SES names the DSN's Final-Recipient: the address the member's own mailbox forwards to, when that one refused.
    # A send to one member that bounced for nobody it was sent to bounced for that member; of a send to several,
    # nobody can tell whose forwarding it was.
    sent_to = {d.lower() for d in destination}
    forwarded = len(destination) == 1 and all(a.lower() not in sent_to for a, _ in named)
    steps = []
    for address, item in named:
        diagnostic = _text(item, "diagnosticCode") or _text(item, "status")
        note, member = "", address
        if forwarded:
            note, member = f" (refused by {address}, where {destination[0]} forwards)", destination[0]
        elif sent_to and address.lower() not in sent_to:
            note = f" ({NOT_SENT_TO}, SES does not say whose)"
        # The note survives a long diagnostic: the detail is cut at MAX_DETAIL, and the alarm and the fix read the note.
        detail = f"{kind}: {diagnostic}".rstrip(": ")[: MAX_DETAIL - len(note)] + note
        steps.append((member, state, at, detail, feedback))
    return steps


def _complaint(record: Mapping[str, Any], destination: list[str], sent_at: str) -> list[Step]:
    complaint = _object(record, "complaint")
    at, feedback = normalise_time(_text(complaint, "timestamp"), sent_at), _text(complaint, "feedbackId")
    subtype = _text(complaint, "complaintSubType")
    state = SUPPRESSED if subtype in SUPPRESSION_SUBTYPES else COMPLAINED
    detail = _text(complaint, "complaintFeedbackType") or subtype or "marked as spam"
    named = [m for m, _ in _recipients(complaint.get("complainedRecipients"))]
    if state == COMPLAINED and detail.lower() == NOT_SPAM:
        # No complaint: the mail reached the mailbox and was reported as wanted. Neither an alarm nor "marked as spam".
        wanted = "reported as not spam by the provider (feedback type not-spam)"
        return [(m, DELIVERED, at, wanted, feedback) for m in named]
    if state == COMPLAINED and len(named) > 1:
        # Most providers strip the complainant's address from their report: SES then names every recipient of the
        # send at that provider ("recipients who might have sent the complaint"). Each row must not read as certain.
        detail += f" (one of {len(named)} recipients SES names: {UNSURE_COMPLAINANT})"
    return [(m, state, at, detail, feedback) for m in named]


def _delay(record: Mapping[str, Any], destination: list[str], sent_at: str) -> list[Step]:
    delay = _object(record, "deliveryDelay")
    at = normalise_time(_text(delay, "timestamp"), sent_at)
    until = _text(delay, "expirationTime")
    steps = []
    for member, item in _recipients(delay.get("delayedRecipients")):
        why = "; ".join(p for p in (_text(delay, "delayType"), _text(item, "diagnosticCode")) if p)
        steps.append((member, DELAYED, at, why + (f" (SES retries until {until})" if until else ""), ""))
    return steps


def _reject(record: Mapping[str, Any], destination: list[str], sent_at: str) -> list[Step]:
    reason = _text(_object(record, "reject"), "reason") or "rejected by SES"
    return [(m, REJECTED, sent_at, reason, "") for m in destination]


def _failure(record: Mapping[str, Any], destination: list[str], sent_at: str) -> list[Step]:
    error = _text(_object(record, "failure"), "errorMessage") or "rendering failure"
    return [(m, FAILED, sent_at, error, "") for m in destination]


# Open, Click, Subscription and any type SES adds later are nothing a trace shows.
_READERS: dict[str, Callable[[Mapping[str, Any], list[str], str], list[Step]]] = {
    "Send": _send,
    "Delivery": _delivery,
    "Bounce": _bounce,
    "Complaint": _complaint,
    "DeliveryDelay": _delay,
    "Reject": _reject,
    "Rendering Failure": _failure,
    "RenderingFailure": _failure,
}


def _steps(kind: str, record: Mapping[str, Any], mail: Mapping[str, Any], sent_at: str) -> list[Step]:
    """(member, state, time, detail, feedback id) for each member the record is about."""
    reader = _READERS.get(kind)
    return reader(record, _addresses(mail.get("destination")), sent_at) if reader else []
