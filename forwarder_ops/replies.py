"""A member's reply to a forwarded mail, as their mail program would write it: for the local round trip
(`forwarder run --reply-as MEMBER`, tests). It carries what a provider adds (its own Message-ID, Received,
a DKIM signature, X-Mailer), so that the run shows what the relay keeps back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from forwarder.mail.addresses import parse_addresses
from forwarder.mail.fields import decode_words
from forwarder.mail.message import split_message

REPLY_TEXT = "Thanks for writing! Booth 12 is reserved for you.\n"


def member_name(member: str) -> str:
    """`Yating Chen` for yating.chen@example.com: what a provider shows as the account's name."""
    return " ".join(part.capitalize() for part in member.partition("@")[0].replace("_", ".").split(".") if part)


def compose_reply(forwarded: bytes, member: str, text: str = REPLY_TEXT) -> tuple[bytes, str] | None:
    """(the member's reply to `forwarded`, the address it goes to), or None when the forward has no Reply-To."""
    message = split_message(forwarded)
    reply_to = message.first("reply-to")
    pairs = parse_addresses(reply_to.value) if reply_to is not None else []
    if not pairs:
        return None
    to = pairs[0][1]
    subject_field = message.first("subject")
    subject = decode_words(subject_field.value) if subject_field is not None else ""
    from_field = message.first("from")
    quoted_from = decode_words(from_field.value) if from_field is not None else "the sender"
    domain = member.rpartition("@")[2]
    reply = EmailMessage()
    reply["Received"] = f"from [192.0.2.10] by smtp.{domain} with ESMTPSA; {format_datetime(datetime.now(UTC))}"
    reply["DKIM-Signature"] = f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=mail; b=bG9jYWw="
    reply["From"] = f"{member_name(member)} <{member}>"
    reply["To"] = to
    reply["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    reply["Date"] = format_datetime(datetime.now(UTC))
    reply["Message-ID"] = make_msgid(domain=f"mail.{domain}")
    message_id = message.first("message-id")
    references = message.first("references")
    if message_id is not None:
        reply["In-Reply-To"] = message_id.value
        chain = references.value.split() if references is not None else []
        reply["References"] = " ".join([*chain, message_id.value] if message_id.value not in chain else chain)
    reply["X-Mailer"] = f"{domain} webmail"
    reply.set_content(f"{text}\nOn {reply['Date']}, {quoted_from} wrote:\n> ...\n")
    return reply.as_bytes(policy=SMTP), to  # CRLF, as a mail program sends it
