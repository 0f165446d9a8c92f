"""Verdict policy: what SES's scans say about a message, and whether it is forwarded."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

FAIL = "FAIL"


# The reason of the outcome the trace records when forwarding raised (the error's name follows).
INTERRUPTED = "interrupted: "


class DropReason(StrEnum):
    """Why a message was deliberately not forwarded (a metric dimension: keep the values stable)."""

    VIRUS = "virus"
    DMARC_REJECT = "dmarc-reject"
    SPAM = "spam"
    UNKNOWN_RECIPIENT = "unknown-recipient"
    NO_MEMBERS = "no-valid-members"
    LOOP = "loop"
    # Mail to a reply address that is never relayed to the outside sender (see forwarder/relay.py).
    REPLY_FORGED = "reply-forged"
    REPLY_BAD_TOKEN = "reply-bad-token"  # noqa: S105 (a reason, not a password)
    REPLY_EXPIRED = "reply-expired"
    REPLY_AUTOMATIC = "reply-automatic"


# What became of mail to a reply address (`Outcome.reply`, forwarder/relay.py): relayed, or why not. The drops are
# DropReasons; these refusals are forwarded to the members, tagged, instead of relayed.
RELAYED = "relayed"
NOT_MEMBER = "reply-not-member"
SPAM = "reply-spam"
# A reply SES would refuse (lines over 998 octets that re-encoding cannot shorten): never sent out; the members
# get it marked, which the forward path turns into its notice with the download link (the stored mail is kept).
UNSENDABLE = "reply-unsendable"
# A reply SES refused to send to the outside address (its content, or in the sandbox an unverified address): the
# members, its author among them, get it marked, so that the author sees it did not go out; the forward path turns
# a refusal of the same content into the notice with the download link.
REFUSED = "reply-refused"
# An opaque S/MIME reply (the content inside the signature's blob, with the member's certificate): never sent out;
# the members get it marked. A `multipart/signed` reply goes out without its signature (forwarder/mail/signed.py).
SIGNED = "reply-signed"
# Every refusal forwarded to the members tagged: the above, and an answer to an expired reply address (not automatic).
MARKED = frozenset({NOT_MEMBER, SPAM, UNSENDABLE, REFUSED, SIGNED, DropReason.REPLY_EXPIRED})


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The receipt verdicts SES reports (`PASS`, `FAIL`, `GRAY`, `PROCESSING_FAILED`, `DISABLED`)."""

    spam: str = "PASS"
    virus: str = "PASS"
    dmarc: str = "PASS"
    dmarc_policy: str | None = None
    # SPF and DKIM only decide whether a member's reply is relayed out as the team: unknown (None, e.g. an
    # Inbound built without them) must never count as authentic, so they do not default to PASS.
    spf: str | None = None
    dkim: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Forward or not; when forwarded, whether to tag the subject as spam."""

    forward: bool
    reason: DropReason | None = None
    tag_spam: bool = False


FORWARD = Decision(forward=True)


def decide(verdicts: Verdicts, spam_action: Literal["tag", "drop"] = "tag") -> Decision:
    """Apply the contract's policy: virus and DMARC reject are dropped, spam is tagged or dropped."""
    if verdicts.virus == FAIL:
        return Decision(forward=False, reason=DropReason.VIRUS)
    if verdicts.dmarc == FAIL and (verdicts.dmarc_policy or "").lower() == "reject":
        return Decision(forward=False, reason=DropReason.DMARC_REJECT)
    if verdicts.spam == FAIL:
        if spam_action == "drop":
            return Decision(forward=False, reason=DropReason.SPAM)
        return Decision(forward=True, tag_spam=True)
    return FORWARD
