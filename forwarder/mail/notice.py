"""The notice a member gets instead of a message too large to forward (or one SES would refuse)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, make_msgid

from forwarder.mail import headers as h
from forwarder.mail.addresses import (
    clean_text,
    display_name,
    find_sender,
    format_address,
    original_authors,
    readable_name,
)
from forwarder.mail.fields import decode_words, render_field
from forwarder.mail.message import SplitMessage
from forwarder.mail.mime import Leaf, content_type, transfer_encoding, walk_leaves

_ATTACHMENT_LIMIT = 50
_CRLF = b"\r\n"  # the SMTP policies' line break


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str
    size: int


def _reply_to(authors: list[tuple[str, str]]) -> list[Address] | str:
    """The authors as Reply-To: `Address`es, or the mailboxes as text when the stdlib will not build an Address
    of one (it raises on an RFC 6532 local part, and on the obsolete `a..b@` and `abc.@` local parts that some
    mobile carriers give out) but still reads and writes the field."""
    try:
        return [Address(display_name=_unquoted(clean_text(name, 64)), addr_spec=address) for name, address in authors]
    except ValueError:  # the stdlib's header defects are ValueErrors
        if all(address.isascii() for _, address in authors):
            # Written as the forward writes its Reply-To: quoted or RFC 2047-encoded, the address as it came. The
            # encoded words are joined by a space, not folded: the stdlib refuses a CR or LF in a value, and folds.
            return ", ".join(format_address(_unquoted(clean_text(name, 64)), address, b"") for name, address in authors)
        # In UTF-8 (RFC 6532) the stdlib decodes an encoded word and writes the name bare, where a comma or an
        # address in it makes more mailboxes of one: each name goes quoted.
        return ", ".join(_quoted_mailbox(readable_name(name, 64), address) for name, address in authors)


def _unquoted(name: str) -> str:
    """The name without `"` and `\\`: quoted, it then fits on a line (64 characters), where the stdlib's folding
    drops the quotes of a longer quoted name, and its comma or address makes more mailboxes of one."""
    return name.replace('"', "'").replace("\\", "/")


def _quoted_mailbox(name: str, address: str) -> str:
    plain = _unquoted(name)
    return f'"{plain}" <{address}>' if plain else f"<{address}>"


def describe_size(size: int) -> str:
    """`44.0 MB`, `512 KB`, `900 bytes`."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.0f} KB"
    return f"{size} bytes"


def list_attachments(message: SplitMessage, limit: int = _ATTACHMENT_LIMIT) -> list[Attachment]:
    """Name, type and decoded size of each attachment, the first `limit`, from the part headers: no part is decoded
    (a 40 MB message is walked in milliseconds, where a full MIME parser takes seconds and
    hundreds of megabytes)."""
    found = []
    for leaf in walk_leaves(message.fields, message.raw, message.body_start, len(message.raw)):
        kind = content_type(leaf.fields)
        name = kind.get_filename()
        disposition = (kind.get("Content-Disposition") or "").split(";")[0].strip().lower()
        if name is None and disposition != "attachment" and kind.get_content_type() != "message/rfc822":
            continue
        found.append(
            Attachment(
                name=clean_text(decode_words(name) if name else "(unnamed)", 120),
                content_type=clean_text(kind.get_content_type(), 80),
                size=_decoded_size(leaf, transfer_encoding(leaf.fields)),
            )
        )
        if len(found) == limit:
            break
    return found


def _decoded_size(leaf: Leaf, encoding: str) -> int:
    length = leaf.end - leaf.start
    if encoding != "base64":
        return length
    white = sum(leaf.data.count(char, leaf.start, leaf.end) for char in (b"\r", b"\n", b" ", b"\t"))
    padding = leaf.data.count(b"=", max(leaf.start, leaf.end - 4), leaf.end)
    return max(0, (length - white) * 3 // 4 - padding)


def build_notice(
    *,
    message: SplitMessage,
    alias: str,
    domain: str,
    size: int,
    link: str,
    link_days: int,
    envelope_sender: str | None = None,
    reply_address: str | None = None,
    unsendable: bool = False,
    now: datetime | None = None,
    refused: str | None = None,
) -> bytes:
    """A short text message from the alias: who sent what, how big, and a link to the original.

    `reply_address` (team mode): Reply-To is the reply address, as on the forward it stands in for.
    `unsendable`: the message is not too large but has lines over 998 octets that cannot be shortened
    (SES refuses such a message), and the notice says so. `refused`: SES refused the forward itself, for
    this reason (its words: e.g. an attachment type SES does not send)."""
    sender = find_sender(message, envelope_sender)
    subject_field = message.first(h.SUBJECT)
    date_field = message.first("date")
    # readable_name: an encoded word that does not decode is left as `= ?...`, which the stdlib's header policy
    # would otherwise decode itself, to bytes it then cannot write (a crash, and no notice).
    subject = (readable_name(subject_field.value, 200) if subject_field else "") or "(no subject)"
    # One past the limit: whether the list shown is all of them, without walking every part of a hostile message.
    attachments = list_attachments(message, _ATTACHMENT_LIMIT + 1)
    author = f"{sender.name} <{sender.address}>" if sender.name and sender.address else sender.address or sender.name

    if refused is not None:
        headline = f"A message to {alias}@{domain} could not be forwarded: Amazon SES refused to send it ({refused})."
        tag = "[could not forward]"
    elif unsendable:
        headline = f"A message to {alias}@{domain} could not be forwarded: it has lines too long to send."
        tag = "[could not forward]"
    else:
        headline = f"A message to {alias}@{domain} was too large to forward ({describe_size(size)})."
        tag = "[too large to forward]"
    lines = [
        headline,
        "",
        f"From:    {author or 'unknown'}",
        f"Subject: {subject}",
        f"Date:    {clean_text(date_field.value, 100) if date_field else 'unknown'}",
        "",
    ]
    if attachments:
        lines.append("Attachments:")
        lines.extend(
            f"  - {a.name} ({a.content_type}, {describe_size(a.size)})" for a in attachments[:_ATTACHMENT_LIMIT]
        )
        if len(attachments) > _ATTACHMENT_LIMIT:
            lines.append("  - and more: the download holds them all")
        lines.append("")
    lines += [
        f"Download the original message (.eml, valid for {link_days} days):",
        link,
        "",
        "Open the downloaded file with your mail program. Replying to this notice reaches the sender.",
    ]

    authors = original_authors(message, envelope_sender) if reply_address is None else []
    # An RFC 6532 address (UTF-8 local part) can only be written in UTF-8, as the forward writes it.
    notice = EmailMessage(policy=SMTP if all(address.isascii() for _, address in authors) else SMTPUTF8)
    replies = _reply_to(authors)
    if reply_address is not None:
        notice["Reply-To"] = reply_address
    elif replies:
        notice["Reply-To"] = replies
    notice["To"] = f"{alias}@{domain}"
    notice["Subject"] = f"{tag} {subject}"
    notice["Date"] = format_datetime(now or datetime.now(UTC))
    notice["Message-ID"] = make_msgid("notice", domain=domain)
    notice.set_content("\n".join(lines), charset="utf-8")
    # Our fields first, and From written as the forward writes it: the stdlib's folding drops the quotes of a name too
    # long for one line, and `"Muller, Hans ..." <alias@...>` became two mailboxes, `Muller` and `Hans ...`.
    mailbox = format_address(display_name(sender, alias), f"{alias}@{domain}", _CRLF)
    return render_field(h.MARKER, domain, _CRLF) + render_field("From", mailbox, _CRLF) + notice.as_bytes()
