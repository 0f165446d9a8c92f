"""The SES receipt event (Lambda action), parsed at the boundary: strictly what is read, tolerantly the rest.

The shape is SES's "Lambda action" notification. Real events differ from the documented example in
ways Powertools' `SesModel` refuses: no `commonHeaders.to` (Bcc-only mail) or `subject`, missing
`date`/`messageId`/`returnPath`, `dkimVerdict` and `dmarcPolicy` present, `DISABLED` verdicts when a
scan is off, `RequestResponse` when the function is invoked by hand or replayed.

What the forwarder acts on is checked, and a wrong value raises `EventError` naming the field: that the
record is SES's (`eventSource`), the message id, the envelope sender (`source`), the recipients, and the
spam, virus and DMARC verdicts with the DMARC policy. Every other field is informational: it is kept
when it has the expected type and becomes None when it does not, so that an oddity in a field nobody
reads never sends mail to the failure queue.

They are dataclasses, not pydantic models: pydantic on the Lambda path cost about 200 ms of cold start
for four fields read (docs/benchmark.md, issue 6's budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from forwarder.mail.policy import Verdicts
from forwarder.ports import Inbound

VERDICTS = frozenset({"PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED"})
DMARC_POLICIES = frozenset({"none", "quarantine", "reject"})

T = TypeVar("T")


class EventError(ValueError):
    """The event is not an SES receipt notification this function can act on; names the field."""


def _field(data: Mapping[str, Any], key: str, kind: type[T], path: str, *, optional: bool = False) -> T:
    value = data.get(key)
    if value is None and optional:
        return None  # type: ignore[return-value]
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise EventError(f"{path}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _object(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    return _field(data, key, dict, path)


def _strings(data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    values = _field(data, key, list, path)
    if not all(isinstance(value, str) for value in values):
        raise EventError(f"{path}.{key}: expected a list of strings")
    return tuple(values)


def _verdict(receipt: Mapping[str, Any], key: str, path: str) -> str:
    status = _field(_object(receipt, key, path), "status", str, f"{path}.{key}")
    if status not in VERDICTS:
        raise EventError(f"{path}.{key}.status: {status!r} is not one of {sorted(VERDICTS)}")
    return status


def _loose(data: Any, key: str, kind: type[T]) -> T | None:
    """An unread field: its value when it has the expected type, else None."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _loose_strings(data: Any, key: str) -> tuple[str, ...] | None:
    values = _loose(data, key, list)
    return tuple(values) if values is not None and all(isinstance(v, str) for v in values) else None


def _loose_verdict(receipt: Mapping[str, Any], key: str) -> str | None:
    return _loose(_loose(receipt, key, dict), "status", str)


@dataclass(frozen=True, slots=True)
class CommonHeaders:
    """The headers SES parsed for convenience; each may be absent in real mail."""

    from_: tuple[str, ...] | None
    to: tuple[str, ...] | None
    subject: str | None
    message_id: str | None
    date: str | None


@dataclass(frozen=True, slots=True)
class Mail:
    message_id: str
    source: str
    # informational, None when absent or odd:
    timestamp: str | None
    destination: tuple[str, ...] | None
    common_headers: CommonHeaders


@dataclass(frozen=True, slots=True)
class Receipt:
    recipients: tuple[str, ...]
    spam: str
    virus: str
    dmarc: str
    dmarc_policy: str | None
    # informational, None when absent or odd:
    timestamp: str | None
    spf: str | None
    dkim: str | None
    invocation_type: str | None
    function_arn: str | None

    def verdicts(self) -> Verdicts:
        """The verdicts the forwarding policy and the reply relay look at."""
        return Verdicts(
            spam=self.spam,
            virus=self.virus,
            dmarc=self.dmarc,
            dmarc_policy=self.dmarc_policy,
            spf=self.spf,
            dkim=self.dkim,
        )


@dataclass(frozen=True, slots=True)
class Record:
    mail: Mail
    receipt: Receipt

    def inbound(self) -> Inbound:
        """What the service needs of this record."""
        return Inbound(
            self.mail.message_id,
            self.receipt.recipients,
            self.mail.source,
            self.receipt.verdicts(),
            received_at=self.receipt.timestamp,
            subject=self.mail.common_headers.subject,
        )


@dataclass(frozen=True, slots=True)
class SesEvent:
    records: tuple[Record, ...]


def _parse_mail(mail: Mapping[str, Any], path: str) -> Mail:
    common = _loose(mail, "commonHeaders", dict)
    return Mail(
        message_id=_field(mail, "messageId", str, path),
        source=_field(mail, "source", str, path),
        timestamp=_loose(mail, "timestamp", str),
        destination=_loose_strings(mail, "destination"),
        common_headers=CommonHeaders(
            from_=_loose_strings(common, "from"),
            to=_loose_strings(common, "to"),
            subject=_loose(common, "subject", str),
            message_id=_loose(common, "messageId", str),
            date=_loose(common, "date", str),
        ),
    )


def _parse_receipt(receipt: Mapping[str, Any], path: str) -> Receipt:
    policy = _field(receipt, "dmarcPolicy", str, path, optional=True)
    if policy is not None and policy.lower() not in DMARC_POLICIES:
        raise EventError(f"{path}.dmarcPolicy: {policy!r} is not one of {sorted(DMARC_POLICIES)}")
    recipients = _strings(receipt, "recipients", path)
    if not recipients:
        raise EventError(f"{path}.recipients: empty")
    action = _loose(receipt, "action", dict)
    return Receipt(
        recipients=recipients,
        spam=_verdict(receipt, "spamVerdict", path),
        virus=_verdict(receipt, "virusVerdict", path),
        dmarc=_verdict(receipt, "dmarcVerdict", path),
        dmarc_policy=policy.lower() if policy else None,
        timestamp=_loose(receipt, "timestamp", str),
        spf=_loose_verdict(receipt, "spfVerdict"),
        dkim=_loose_verdict(receipt, "dkimVerdict"),
        invocation_type=_loose(action, "invocationType", str),
        function_arn=_loose(action, "functionArn", str),
    )


def parse_event(event: Any) -> SesEvent:
    """The typed event, or `EventError` naming the first field that is missing or wrong."""
    if not isinstance(event, dict):
        raise EventError(f"event: expected an object, got {type(event).__name__}")
    records = _field(event, "Records", list, "event")
    parsed = []
    for number, record in enumerate(records):
        path = f"Records[{number}]"
        if not isinstance(record, dict):
            raise EventError(f"{path}: expected an object")
        if record.get("eventSource") != "aws:ses":
            raise EventError(f"{path}.eventSource: expected 'aws:ses', got {record.get('eventSource')!r}")
        ses = _object(record, "ses", path)
        parsed.append(
            Record(
                mail=_parse_mail(_object(ses, "mail", f"{path}.ses"), f"{path}.ses.mail"),
                receipt=_parse_receipt(_object(ses, "receipt", f"{path}.ses"), f"{path}.ses.receipt"),
            )
        )
    if not parsed:
        raise EventError("event.Records: empty")
    return SesEvent(tuple(parsed))


def first_inbound(event: Any) -> Inbound:
    """What the service needs of the event's first record (local runs and replays carry one record each),
    or `EventError` naming the field that is missing or wrong."""
    return parse_event(event).records[0].inbound()
