"""The notice a member gets instead of a message too large to forward."""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP

from forwarder.mail import headers as h
from forwarder.mail.message import SplitMessage
from forwarder.mail.rewrite import (
    clean_text,
    decode_words,
    display_name,
    find_sender,
    reply_addresses,
)

_ATTACHMENT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str
    size: int


def describe_size(size: int) -> str:
    """`44.0 MB`, `512 KB`, `900 bytes`."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.0f} KB"
    return f"{size} bytes"


def list_attachments(raw: bytes) -> list[Attachment]:
    """Name, type and decoded size of each attachment, read with mail-parser (imported only here)."""
    import mailparser

    parsed = mailparser.parse_from_bytes(raw)
    found = []
    for item in parsed.attachments[:_ATTACHMENT_LIMIT]:
        payload = item.get("payload") or ""
        if item.get("binary"):
            try:
                size = len(binascii.a2b_base64(payload))
            except (binascii.Error, ValueError):
                size = len(payload) * 3 // 4
        else:
            size = len(payload.encode("utf-8", "replace"))
        found.append(
            Attachment(
                name=clean_text(item.get("filename") or "(unnamed)", 120),
                content_type=clean_text(item.get("mail_content_type") or "application/octet-stream", 80),
                size=size,
            )
        )
    return found


def build_notice(
    *,
    message: SplitMessage,
    alias: str,
    domain: str,
    size: int,
    link: str,
    link_days: int,
    envelope_sender: str | None = None,
) -> bytes:
    """A short text message from the alias: who sent what, how big, and a link to the original."""
    sender = find_sender(message, envelope_sender)
    subject_field = message.first(h.SUBJECT)
    date_field = message.first("date")
    subject = clean_text(decode_words(subject_field.value) if subject_field else "(no subject)", 200)
    attachments = list_attachments(message.raw)
    author = f"{sender.name} <{sender.address}>" if sender.name and sender.address else sender.address or sender.name

    lines = [
        f"A message to {alias}@{domain} was too large to forward ({describe_size(size)}).",
        "",
        f"From:    {author or 'unknown'}",
        f"Subject: {subject}",
        f"Date:    {clean_text(date_field.value, 100) if date_field else 'unknown'}",
        "",
    ]
    if attachments:
        lines.append("Attachments:")
        lines.extend(f"  - {a.name} ({a.content_type}, {describe_size(a.size)})" for a in attachments)
        lines.append("")
    lines += [
        f"Download the original message (.eml, valid for {link_days} days):",
        link,
        "",
        "Open the downloaded file with your mail program. Replying to this notice reaches the sender.",
    ]

    notice = EmailMessage(policy=SMTP)
    notice[h.MARKER] = domain
    notice["From"] = Address(display_name=display_name(sender, alias), addr_spec=f"{alias}@{domain}")
    replies = [
        Address(display_name=clean_text(name, 64), addr_spec=address)
        for name, address in reply_addresses(message, envelope_sender)
    ]
    if replies:
        notice["Reply-To"] = replies
    notice["To"] = f"{alias}@{domain}"
    notice["Subject"] = f"[too large to forward] {subject}"
    notice.set_content("\n".join(lines), charset="utf-8")
    return notice.as_bytes()
