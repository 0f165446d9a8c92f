"""The SES receipt event, as our own typed models on top of Powertools' SES models.

Powertools' `SesModel` insists on `commonHeaders.to` and `subject` (absent in real mail: Bcc-only
messages, no subject), allows only `invocationType: Event` and has no `dkimVerdict`/`dmarcPolicy`.
Real events also omit `date`, `messageId` or `returnPath` when the mail lacks them, and report
`DISABLED` verdicts when a scan is switched off.
"""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools.utilities.parser.models import (
    SesMail,
    SesMailCommonHeaders,
    SesMessage,
    SesModel,
    SesReceipt,
    SesReceiptAction,
    SesReceiptVerdict,
    SesRecordModel,
)
from pydantic import NonNegativeInt, field_validator

from forwarder.mail.policy import Verdicts

VerdictStatus = Literal["PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED"]


class ReceiptVerdict(SesReceiptVerdict):
    status: VerdictStatus  # type: ignore[assignment]


class ReceiptAction(SesReceiptAction):
    invocationType: Literal["Event", "RequestResponse"]  # type: ignore[assignment]


class MailCommonHeaders(SesMailCommonHeaders):
    to: list[str] | None = None  # type: ignore[assignment]
    subject: str | None = None  # type: ignore[assignment]
    returnPath: str | None = None  # type: ignore[assignment]
    messageId: str | None = None  # type: ignore[assignment]
    date: str | None = None  # type: ignore[assignment]


class Mail(SesMail):
    commonHeaders: MailCommonHeaders


class Receipt(SesReceipt):
    processingTimeMillis: NonNegativeInt
    spamVerdict: ReceiptVerdict
    virusVerdict: ReceiptVerdict
    spfVerdict: ReceiptVerdict
    dkimVerdict: ReceiptVerdict | None = None
    dmarcVerdict: ReceiptVerdict
    dmarcPolicy: Literal["none", "quarantine", "reject"] | None = None
    action: ReceiptAction

    @field_validator("dmarcPolicy", mode="before")
    @classmethod
    def _lower_policy(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    def verdicts(self) -> Verdicts:
        """The verdicts the forwarding policy looks at."""
        return Verdicts(
            spam=self.spamVerdict.status,
            virus=self.virusVerdict.status,
            dmarc=self.dmarcVerdict.status,
            dmarc_policy=self.dmarcPolicy,
        )


class Message(SesMessage):
    mail: Mail
    receipt: Receipt


class Record(SesRecordModel):
    ses: Message


class SesEvent(SesModel):
    Records: list[Record]  # type: ignore[assignment]
