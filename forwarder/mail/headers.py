"""Header names the forwarder reads, writes or removes: all in one place, lower-case."""

from __future__ import annotations

FROM = "from"
REPLY_TO = "reply-to"
TO = "to"
CC = "cc"
SUBJECT = "subject"
CONTENT_TYPE = "content-type"
CONTENT_TRANSFER_ENCODING = "content-transfer-encoding"

# Our own output carries this header, naming every forwarding domain it went through, so that a mail
# coming back to one of them is recognised as a loop.
MARKER = "X-SES-Forwarder"

# Removed from every forwarded message: signatures that our rewrite breaks, envelope-ish fields that would claim a
# sender other than our verified domain, and SES's own control headers: in a raw send SES reads them (a
# configuration set, message tags, another account's identity to send as) and removes them before sending, so
# whoever wrote the received mail could steer or break our sends, and no member would ever see them.
SES_CONTROL = frozenset(
    {"x-ses-configuration-set", "x-ses-message-tags", "x-ses-source-arn", "x-ses-from-arn", "x-ses-return-path-arn"}
)
REMOVED = frozenset({"dkim-signature", "domainkey-signature", "return-path", "sender"}) | SES_CONTROL

# Removed from forwards in team mode as well: fields that make a member's mail program write to the outside
# sender straight from the member's own mailbox, around the reply address (a group reply honouring
# Mail-Followup-To or Mail-Reply-To, a Reply List to a list's List-Post, a read receipt to Disposition-Notification-To
# or Return-Receipt-To, an old server's bounce to Errors-To), which would give the member's address away.
TEAM_REMOVED = frozenset(
    {
        "mail-followup-to",
        "list-post",
        "mail-reply-to",
        "disposition-notification-to",
        "disposition-notification-options",
        "return-receipt-to",
        "x-confirm-reading-to",
        "errors-to",
    }
)

# Fields SES accepts only once per message (SES developer guide, "Amazon SES header fields").
SINGLE_INSTANCE = frozenset(
    name.lower()
    for name in (
        "Accept-Language", "acceptLanguage", "Archived-At", "Auto-Submitted", "Bounces-to",
        "Comments", "Content-Alternative", "Content-Base", "Content-Class", "Content-Description",
        "Content-Disposition", "Content-Duration", "Content-ID", "Content-Language",
        "Content-Length", "Content-Location", "Content-MD5", "Content-Transfer-Encoding",
        "Content-Type", "Date", "Delivered-To", "Disposition-Notification-Options",
        "Disposition-Notification-To", "DKIM-Signature", "DomainKey-Signature", "Errors-To", "From",
        "Importance", "In-Reply-To", "Keywords", "List-Archive", "List-Help", "List-Id",
        "List-Owner", "List-Post", "List-Subscribe", "List-Unsubscribe", "List-Unsubscribe-Post",
        "Message-Context", "Message-ID", "MIME-Version", "Organization", "Original-From",
        "Original-Message-ID", "Original-Recipient", "Original-Subject", "Precedence", "Priority",
        "References", "Reply-To", "Return-Path", "Return-Receipt-To", "Sender", "Solicitation",
        "Sensitivity", "Subject", "Thread-Index", "Thread-Topic", "User-Agent", "VBR-Info",
    )
)  # fmt: skip

# RFC 5321: a line is at most 1,000 octets including CRLF.
MAX_LINE = 998

IN_REPLY_TO = "in-reply-to"
REFERENCES = "references"
MESSAGE_ID = "message-id"

# The only fields of a member's reply that go out to the outside sender (forwarder/mail/reply.py): the
# conversation (Subject, threading) and what a reader needs to decode the body. Everything else, above
# all the member's envelope and provider (Received, Return-Path, Sender, DKIM signatures, X- fields,
# Message-ID, User-Agent, Cc), stays behind; SES assigns its own Message-ID and Date.
REPLY_ALLOWED = frozenset(
    {
        SUBJECT,
        IN_REPLY_TO,
        REFERENCES,
        "mime-version",
        CONTENT_TYPE,
        CONTENT_TRANSFER_ENCODING,
        "content-language",
        "content-disposition",
    }
)

# RFC 3834 and the de facto fields of vacation responders and mailing lists: mail carrying these is
# automatic, and is never relayed to an outside sender in the team's name.
AUTO_SUBMITTED = "auto-submitted"
PRECEDENCE = "precedence"
AUTOMATIC_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
AUTOREPLY_FIELDS = frozenset({"x-autoreply", "x-autorespond"})
# A mailing list's distribution names its list (RFC 2919) whether or not it says `Precedence: list`; a person's
# answer never does (mail programs do not copy it into replies).
LIST_ID = "list-id"
# Reports mail programs and servers write by themselves (RFC 6522, 3464, 8098).
REPORT_TYPES = frozenset({"multipart/report", "message/disposition-notification", "message/delivery-status"})
