"""The SES receipt event (Lambda action), as typed frozen models checked on the way in.

The shape is SES's "Lambda action" notification. Real events differ from the documented example in
ways Powertools' `SesModel` refuses: no `commonHeaders.to` (Bcc-only mail) or `subject`, missing
`date`/`messageId`/`returnPath`, `dkimVerdict` and `dmarcPolicy` present, `DISABLED` verdicts when a
scan is off, `RequestResponse` when the function is invoked by hand or replayed. These models accept
all of that and check every field the forwarder reads.

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
INVOCATION_TYPES = frozenset({"Event", "RequestResponse"})

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


def _object(data: Mapping[str, Any], key: str, path: str, *, optional: bool = False) -> Mapping[str, Any]:
    return _field(data, key, dict, path, optional=optional)


def _strings(data: Mapping[str, Any], key: str, path: str, *, optional: bool = False) -> tuple[str, ...] | None:
    values = _field(data, key, list, path, optional=optional)
    if values is None:
        return None
    if not all(isinstance(value, str) for value in values):
        raise EventError(f"{path}.{key}: expected a list of strings")
    return tuple(values)


def _verdict(receipt: Mapping[str, Any], key: str, path: str, *, optional: bool = False) -> str | None:
    verdict = _object(receipt, key, path, optional=optional)
    if verdict is None:
        return None
    status = _field(verdict, "status", str, f"{path}.{key}")
    if status not in VERDICTS:
        raise EventError(f"{path}.{key}.status: {status!r} is not one of {sorted(VERDICTS)}")
    return status


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
    timestamp: str
    destination: tuple[str, ...]
    headers_truncated: bool
    common_headers: CommonHeaders


@dataclass(frozen=True, slots=True)
class Receipt:
    timestamp: str
    recipients: tuple[str, ...]
    spam: str
    virus: str
    spf: str
    dkim: str | None
    dmarc: str
    dmarc_policy: str | None
    invocation_type: str
    function_arn: str

    def verdicts(self) -> Verdicts:
        """The verdicts the forwarding policy looks at."""
        return Verdicts(spam=self.spam, virus=self.virus, dmarc=self.dmarc, dmarc_policy=self.dmarc_policy)


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
    common = _object(mail, "commonHeaders", path, optional=True) or {}
    where = f"{path}.commonHeaders"
    return Mail(
        message_id=_field(mail, "messageId", str, path),
        source=_field(mail, "source", str, path),
        timestamp=_field(mail, "timestamp", str, path),
        destination=_strings(mail, "destination", path) or (),
        headers_truncated=bool(mail.get("headersTruncated", False)),
        common_headers=CommonHeaders(
            from_=_strings(common, "from", where, optional=True),
            to=_strings(common, "to", where, optional=True),
            subject=_field(common, "subject", str, where, optional=True),
            message_id=_field(common, "messageId", str, where, optional=True),
            date=_field(common, "date", str, where, optional=True),
        ),
    )


def _parse_receipt(receipt: Mapping[str, Any], path: str) -> Receipt:
    action = _object(receipt, "action", path)
    if action.get("type") != "Lambda":
        raise EventError(f"{path}.action.type: expected 'Lambda', got {action.get('type')!r}")
    invocation = _field(action, "invocationType", str, f"{path}.action")
    if invocation not in INVOCATION_TYPES:
        raise EventError(f"{path}.action.invocationType: {invocation!r} is not Event or RequestResponse")
    policy = _field(receipt, "dmarcPolicy", str, path, optional=True)
    if policy is not None and policy.lower() not in DMARC_POLICIES:
        raise EventError(f"{path}.dmarcPolicy: {policy!r} is not one of {sorted(DMARC_POLICIES)}")
    recipients = _strings(receipt, "recipients", path) or ()
    if not recipients:
        raise EventError(f"{path}.recipients: empty")
    return Receipt(
        timestamp=_field(receipt, "timestamp", str, path),
        recipients=recipients,
        spam=str(_verdict(receipt, "spamVerdict", path)),
        virus=str(_verdict(receipt, "virusVerdict", path)),
        spf=str(_verdict(receipt, "spfVerdict", path)),
        dkim=_verdict(receipt, "dkimVerdict", path, optional=True),
        dmarc=str(_verdict(receipt, "dmarcVerdict", path)),
        dmarc_policy=policy.lower() if policy else None,
        invocation_type=invocation,
        function_arn=_field(action, "functionArn", str, f"{path}.action"),
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
