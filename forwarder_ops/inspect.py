"""`forwarder inspect MESSAGE_ID | FILE.eml`: a stored (or local) mail summarised for an operator.

Sender, recipients, subject, date, the Received hops with the delay at each, the authentication
results, the attachments with their decoded sizes, and the MIME defects. mail-parser reads the mail as
a person would (it is in the `local` extra: never on the Lambda path); two of its answers are corrected
here: an attachment's size (mail-parser's payload of a base64 part is the base64 text, a third larger
than the file) and a missing date or hop time (reported as unknown, not as a crash).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from forwarder_ops.errors import CommandError

# The header fields that carry a receiving server's verdict on the mail's authenticity.
AUTHENTICATION_FIELDS = ("authentication-results", "arc-authentication-results", "received-spf")


@dataclass(frozen=True, slots=True)
class Hop:
    """One Received field, oldest first: who handed the mail to whom, when, and how long it waited."""

    number: int
    by: str
    source: str
    at: str
    delay_seconds: float | None


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    encoding: str
    reported_size: int


@dataclass(frozen=True, slots=True)
class Summary:
    """What `inspect` shows of one mail."""

    source: str
    size: int
    sender: list[str]
    to: list[str]
    delivered_to: list[str]
    cc: list[str]
    reply_to: list[str]
    subject: str
    date: str | None
    message_id: str
    hops: list[Hop] = field(default_factory=list)
    authentication: list[tuple[str, str]] = field(default_factory=list)
    dkim_domains: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["authentication"] = [{"field": name, "value": value} for name, value in self.authentication]
        return data


@contextmanager
def _quiet_mailparser() -> Iterator[None]:
    """mail-parser logs a warning for every content type it does not render (multipart/mixed, image/png)."""
    log = logging.getLogger("mailparser")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _addresses(pairs: Any) -> list[str]:
    found = []
    for pair in pairs or []:
        if isinstance(pair, tuple | list) and len(pair) == 2:
            name, address = str(pair[0] or "").strip(), str(pair[1] or "").strip()
            found.append(f"{name} <{address}>" if name and address else address or name)
    return [a for a in found if a]


def _unfold(value: Any) -> str:
    return " ".join(str(value).split())


def decoded_size(attachment: dict[str, Any]) -> int:
    """The attachment's size as a file: base64 decoded when mail-parser kept it encoded, else its bytes."""
    payload = attachment.get("payload") or ""
    if attachment.get("binary"):
        text = "".join(str(payload).split())
        try:
            return len(base64.b64decode(text + "=" * (-len(text) % 4), validate=False))
        except (binascii.Error, ValueError):
            return len(text) * 3 // 4
    if isinstance(payload, bytes):
        return len(payload)
    charset = str(attachment.get("charset") or "utf-8")
    try:
        return len(str(payload).encode(charset, errors="replace"))
    except LookupError:
        return len(str(payload).encode("utf-8", errors="replace"))


def _hops(received: Any) -> list[Hop]:
    hops = []
    for number, hop in enumerate(received or [], start=1):
        if not isinstance(hop, dict):
            continue
        delay = hop.get("delay")
        try:
            seconds = round(float(delay), 1) if delay is not None else None
        except (TypeError, ValueError):
            seconds = None
        hops.append(
            Hop(
                number=number,
                by=_unfold(hop.get("by", ""))[:120],
                source=_unfold(hop.get("from", ""))[:120],
                at=str(hop.get("date_utc") or hop.get("date") or ""),
                delay_seconds=seconds,
            )
        )
    return hops


def _defects(parsed: Any) -> list[str]:
    found: list[str] = []
    for entry in parsed.defects or []:
        for part, defects in entry.items() if isinstance(entry, dict) else [("message", [entry])]:
            found += [f"{part}: {defect}" for defect in defects]
    return found or sorted(str(c) for c in parsed.defects_categories or [])


def summarise(raw: bytes, source: str = "") -> Summary:
    """Read `raw` with mail-parser and correct what it gets wrong; never raises on a malformed mail."""
    import mailparser

    with _quiet_mailparser():
        try:
            parsed = mailparser.parse_from_bytes(raw)
        except Exception as error:
            # mail-parser's own bugs, any exception on some malformed MIME: e.g. a multipart nested in one with
            # the same boundary, where mail-parser 4.x reads an epilogue that is not there
            return _stdlib_summary(raw, source, error)
        message = parsed.message
        date = parsed.date
        attachments = [
            Attachment(
                filename=str(a.get("filename") or "(no name)"),
                content_type=str(a.get("mail_content_type") or ""),
                size=decoded_size(a),
                encoding=str(a.get("content_transfer_encoding") or ""),
                reported_size=len(a.get("payload") or ""),
            )
            for a in parsed.attachments
        ]
        authentication = [
            (name, _unfold(value)) for name in AUTHENTICATION_FIELDS for value in message.get_all(name) or []
        ]
        dkim = [_unfold(value) for value in message.get_all("dkim-signature") or []]
        return Summary(
            source=source,
            size=len(raw),
            sender=_addresses(parsed.from_),
            to=_addresses(parsed.to),
            delivered_to=_addresses(getattr(parsed, "delivered_to", [])),
            cc=_addresses(getattr(parsed, "cc", [])),
            reply_to=_addresses(getattr(parsed, "reply_to", [])),
            subject=_unfold(parsed.subject or ""),
            date=date.isoformat() if isinstance(date, datetime) else None,
            message_id=_unfold(parsed.message_id or "") if hasattr(parsed, "message_id") else "",
            hops=_hops(parsed.received),
            authentication=authentication,
            dkim_domains=sorted({_dkim_domain(signature) for signature in dkim} - {""}),
            attachments=attachments,
            defects=_defects(parsed),
        )


def _stdlib_summary(raw: bytes, source: str, error: Exception) -> Summary:
    """The summary from the standard library's parser alone, for a mail that mail-parser cannot read: the
    same fields, the hops without mail-parser's parsing of their text, and mail-parser's failure as a defect."""
    import email
    import email.policy
    import re
    from email.errors import MessageError
    from email.header import decode_header, make_header
    from email.utils import getaddresses, parsedate_to_datetime

    message = email.message_from_bytes(raw, policy=email.policy.compat32)

    def text(value: Any) -> str:
        try:
            return _unfold(make_header(decode_header(str(value))))
        except (ValueError, LookupError, UnicodeError, MessageError):
            return _unfold(value)

    def addresses(name: str) -> list[str]:
        return _addresses(getaddresses([text(value) for value in message.get_all(name) or []]))

    def when(value: str) -> datetime | None:
        try:
            return parsedate_to_datetime(value.rpartition(";")[2].strip())
        except (TypeError, ValueError, IndexError):
            return None

    hops: list[Hop] = []
    previous: datetime | None = None
    for number, value in enumerate(reversed(message.get_all("received") or []), start=1):
        at = when(str(value))
        delay = round((at - previous).total_seconds(), 1) if at and previous and at.tzinfo and previous.tzinfo else None
        route = _unfold(value).partition(";")[0]
        by, source_host = (re.search(rf"\b{word}\s+(\S+)", route) for word in ("by", "from"))
        hops.append(
            Hop(
                number=number,
                by=by.group(1)[:120] if by else "",
                source=source_host.group(1)[:120] if source_host else "",
                at=at.isoformat() if at else "",
                delay_seconds=delay,
            )
        )
        previous = at or previous
    attachments = [
        Attachment(
            filename=str(part.get_filename() or "(no name)"),
            content_type=part.get_content_type(),
            size=len(part.get_payload(decode=True) or b""),
            encoding=str(part.get("content-transfer-encoding") or ""),
            reported_size=len(str(part.get_payload())),
        )
        for part in message.walk()
        if not part.is_multipart() and (part.get_filename() or part.get_content_disposition() == "attachment")
    ]
    date = when(str(message.get("date", "")))
    defects = [f"mail-parser could not read this mail ({type(error).__name__}): summary from the standard library"]
    defects += [f"{part.get_content_type()}: {type(d).__name__}" for part in message.walk() for d in part.defects]
    return Summary(
        source=source,
        size=len(raw),
        sender=addresses("from"),
        to=addresses("to"),
        delivered_to=addresses("delivered-to"),
        cc=addresses("cc"),
        reply_to=addresses("reply-to"),
        subject=text(message.get("subject", "")),
        date=date.isoformat() if date else None,
        message_id=_unfold(message.get("message-id", "")),
        hops=hops,
        authentication=[
            (name, _unfold(value)) for name in AUTHENTICATION_FIELDS for value in message.get_all(name) or []
        ],
        dkim_domains=sorted({_dkim_domain(_unfold(v)) for v in message.get_all("dkim-signature") or []} - {""}),
        attachments=attachments,
        defects=defects,
    )


def _dkim_domain(signature: str) -> str:
    for tag in signature.split(";"):
        name, _, value = tag.strip().partition("=")
        if name.strip() == "d":
            return value.strip()
    return ""


def _size(count: int) -> str:
    for unit in ("B", "kB", "MB"):
        if count < 1000 or unit == "MB":
            return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return str(count)


def _delay(seconds: float | None) -> str:
    """A hop's wait: 8s, 25m 1s, 3h 2m; negative when the two servers' clocks disagree."""
    if seconds is None:
        return "?"
    sign, left = ("-" if seconds < 0 else ""), round(abs(seconds))
    if left < 60:
        return f"{sign}{left}s"
    if left < 3600:
        return f"{sign}{left // 60}m {left % 60}s"
    return f"{sign}{left // 3600}h {left % 3600 // 60}m"


def render(summary: Summary) -> list[str]:
    from forwarder_ops.console import table

    lines = [f"{summary.source} ({_size(summary.size)})", ""]
    fields = [
        ("from", ", ".join(summary.sender) or "(none)"),
        ("to", ", ".join(summary.to) or "(none)"),
        *([("delivered-to", ", ".join(summary.delivered_to))] if summary.delivered_to else []),
        *([("cc", ", ".join(summary.cc))] if summary.cc else []),
        *([("reply-to", ", ".join(summary.reply_to))] if summary.reply_to else []),
        ("subject", summary.subject or "(none)"),
        ("date", summary.date or "(missing or unreadable)"),
        ("message-id", summary.message_id or "(none)"),
    ]
    lines += table(fields, indent="  ")
    lines += ["", f"Received hops ({len(summary.hops)}, oldest first)"]
    if summary.hops:
        rows = [
            (
                str(h.number),
                h.at or "?",
                _delay(h.delay_seconds),
                f"{h.source or '?'} -> {h.by or '?'}",
            )
            for h in summary.hops
        ]
        lines += table(rows, ("hop", "time (UTC)", "delay", "from -> by"), "  ")
    lines += ["", "Authentication"]
    lines += [f"  {name}: {value[:300]}" for name, value in summary.authentication] or ["  (no results recorded)"]
    if summary.dkim_domains:
        lines.append(f"  DKIM signed by: {', '.join(summary.dkim_domains)}")
    lines += ["", f"Attachments ({len(summary.attachments)})"]
    if summary.attachments:
        rows = [(a.filename, a.content_type, _size(a.size), a.encoding or "-") for a in summary.attachments]
        lines += table(rows, ("name", "type", "size (decoded)", "encoding"), "  ")
    lines += ["", f"MIME defects ({len(summary.defects)})"]
    lines += [f"  {defect}" for defect in summary.defects] or ["  none"]
    return lines


# command ----------------------------------------------------------------------------------------


def add_parser(commands: Any, environment: argparse.ArgumentParser) -> None:
    inspect = commands.add_parser(
        "inspect",
        parents=[environment],
        help="a readable summary of a stored mail (by message id) or a local .eml file",
        description="Summarise a mail for an operator deciding what happened: sender, recipients, subject, "
        "date, the Received hops with their delays, the authentication results, the attachments with their "
        "decoded sizes, and the MIME defects. MESSAGE_ID reads the stored mail from the stack's bucket "
        "(--config-env ENV); a path reads a local file.",
    )
    inspect.add_argument("mail", metavar="MESSAGE_ID|FILE", help="an inbound message id, or a .eml file")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=cmd_inspect)


def _read(args: argparse.Namespace) -> tuple[bytes, str]:
    candidate = Path(args.mail)
    if candidate.is_file():
        return candidate.read_bytes(), str(candidate)
    if candidate.suffix.lower() in {".eml", ".msg", ".txt"} or "/" in args.mail:
        raise CommandError(f"no file {args.mail}")
    from forwarder_ops.cli import _target

    target = _target(args)
    outputs = target.outputs()
    bucket = outputs.get("MailBucket") or target.output("MailBucket")
    key = f"{outputs.get('MailPrefix', 'inbound/')}{args.mail}"
    try:
        body = target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as error:
        from botocore.exceptions import ClientError

        code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
        if code in {"NoSuchKey", "404"}:
            raise CommandError(
                f"no stored mail s3://{bucket}/{key}: a wrong id, or older than the bucket's retention"
            ) from None
        if code in {"AccessDenied", "403"}:
            # S3 answers 403, not 404, for a missing key to a caller without s3:ListBucket: the id may be wrong.
            raise CommandError(
                f"S3 refused s3://{bucket}/{key} (AccessDenied): a wrong id or a mail older than the bucket's "
                f"retention reads so without s3:ListBucket on {bucket}; else allow s3:GetObject on it"
            ) from None
        raise
    return bytes(body), f"s3://{bucket}/{key}"


def cmd_inspect(args: argparse.Namespace) -> int:
    from forwarder_ops.cli import OK
    from forwarder_ops.console import print_json, printable_lines

    raw, source = _read(args)
    if not raw.strip():
        raise CommandError(f"{source} is empty")
    summary = summarise(raw, source)
    if args.json:
        print_json(summary.as_dict())
    else:
        print(printable_lines(render(summary)))  # what the mail says: a sender may write escape sequences
    return OK
