"""SES event publishing records in the documented format ("Examples of event data that Amazon SES publishes
to Amazon SNS"), wrapped in the Lambda event of an SNS subscription, for the delivery function's tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"


def mail_object(
    ses_id: str,
    recipients: Sequence[str],
    tags: Mapping[str, str],
    sent_at: str,
    source: str = "team@dev.aws-educate.tw",
) -> dict[str, Any]:
    return {
        "timestamp": sent_at,
        "source": source,
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/dev.aws-educate.tw",
        "sendingAccountId": "123456789012",
        "messageId": ses_id,
        "destination": list(recipients),
        "headersTruncated": False,
        "headers": [{"name": "From", "value": source}, {"name": "Subject", "value": "Workshop"}],
        "commonHeaders": {"from": [source], "to": ["team@dev.aws-educate.tw"], "subject": "Workshop"},
        "tags": {
            "ses:configuration-set": ["email-forwarder-dev"],
            "ses:source-ip": ["192.0.2.1"],
            **{name: [value] for name, value in tags.items()},
        },
    }


def record(kind: str, mail: dict[str, Any], **body: Any) -> dict[str, Any]:
    """One event record: `eventType`, `mail`, and the object named after the type."""
    names = {
        "Send": "send",
        "Delivery": "delivery",
        "Bounce": "bounce",
        "Complaint": "complaint",
        "DeliveryDelay": "deliveryDelay",
        "Reject": "reject",
        "Rendering Failure": "failure",
    }
    return {"eventType": kind, "mail": mail, names[kind]: body}


def send(mail: dict[str, Any]) -> dict[str, Any]:
    return record("Send", mail)


def delivery(mail: dict[str, Any], member: str, at: str) -> dict[str, Any]:
    return record(
        "Delivery",
        mail,
        timestamp=at,
        processingTimeMillis=546,
        recipients=[member],
        smtpResponse="250 2.6.0 Message received",
        reportingMTA="a8-70.smtp-out.amazonses.com",
        remoteMtaIp="127.0.2.0",
    )


def bounce(
    mail: dict[str, Any], member: str, at: str, kind: str, subtype: str, diagnostic: str | None = None
) -> dict[str, Any]:
    recipient: dict[str, Any] = {"emailAddress": member, "action": "failed", "status": "5.1.1"}
    if diagnostic:
        recipient["diagnosticCode"] = diagnostic
    return record(
        "Bounce",
        mail,
        bounceType=kind,
        bounceSubType=subtype,
        bouncedRecipients=[recipient],
        timestamp=at,
        feedbackId=f"0100{uuid.uuid4().hex}-000000",
        reportingMTA="dsn; mta.example.com",
    )


def complaint(mail: dict[str, Any], member: str, at: str) -> dict[str, Any]:
    return record(
        "Complaint",
        mail,
        complainedRecipients=[{"emailAddress": member}],
        timestamp=at,
        feedbackId=f"0100{uuid.uuid4().hex}-000000",
        userAgent="Mozilla/5.0",
        complaintFeedbackType="abuse",
        arrivalDate=at,
    )


def delay(mail: dict[str, Any], member: str, at: str) -> dict[str, Any]:
    return record(
        "DeliveryDelay",
        mail,
        timestamp=at,
        delayType="MailboxFull",
        expirationTime="2026-11-30T22:00:00.000Z",
        delayedRecipients=[
            {"emailAddress": member, "status": "4.2.2", "diagnosticCode": "smtp; 452 4.2.2 Mailbox full"}
        ],
    )


def sns_event(*records: dict[str, Any], duplicate_of: str | None = None) -> dict[str, Any]:
    """The Lambda event of an SNS subscription carrying `records` (one SNS notification each)."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{TOPIC}:{uuid.uuid4()}",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": duplicate_of or str(uuid.uuid4()),
                    "TopicArn": TOPIC,
                    "Subject": None,
                    "Message": json.dumps(item),
                    "Timestamp": "2026-11-30T09:15:00.000Z",
                    "SignatureVersion": "1",
                    "MessageAttributes": {},
                },
            }
            for item in records
        ]
    }
