"""`forwarder smtp`: a local SMTP ingress for the local-dev loop, in front of the real handler.

It plays SES's receiving side on 127.0.0.1: accepts RCPT only for the environment's domain (550
otherwise, as SES rejects recipients no receipt rule covers), stores each message the way the receipt
rule's S3 action does (with the headers SES prepends), invokes the handler with the SES event (all
verdicts PASS) against the embedded AWS emulator, and writes what was sent to the outbox.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from forwarder.config import SES_V2_RAW_LIMIT
from forwarder_ops.local import EmbeddedAws, build_event, embedded_aws
from forwarder_ops.localrun import OutboxError, RunResult, run_mail

MAX_MESSAGE_BYTES = SES_V2_RAW_LIMIT  # what SES receives
HOSTNAME = "inbound-smtp.local"


@dataclass(frozen=True, slots=True)
class Received:
    """One message the ingress took: the envelope and what the handler did with it."""

    message_id: str
    mail_from: str
    recipients: tuple[str, ...]
    result: RunResult | None
    error: str = ""

    def line(self) -> str:
        """One line for the terminal: who to whom, and the outcome."""
        head = f"{datetime.now():%H:%M:%S} {self.mail_from or '<>'} -> {', '.join(self.recipients)}:"
        if self.result is None:
            return f"{head} FAILED, answered 451 (SES would retry): {self.error}"
        outcome = self.result.outcome
        files = ", ".join(str(path) for path in self.result.files)
        unwritten = f"; not written to the outbox: {self.error}" if self.error else ""
        if outcome.get("reply") == "relayed":
            copies = self.result.copies
            alias = outcome["aliases"][0]
            relayed = f"{head} reply relayed to the outside sender as {alias}, copies to {copies} member(s)"
            return relayed + (f" -> {files}" if files else "") + unwritten
        if outcome.get("reply"):
            head = f"{head} not relayed ({outcome['reply']}):"
        if not outcome.get("forwarded"):
            return f"{head} not forwarded: {outcome.get('reason', 'unknown')}"
        text = f"{head} forwarded to {outcome['recipients']} member(s) via {', '.join(outcome['aliases'])}"
        text += f" -> {files}" if files else ""
        if outcome.get("failed"):
            text += f" (SES refused: {', '.join(outcome['failed'])})"
        return text + unwritten


def ses_stored(raw: bytes, mail_from: str, recipients: Sequence[str], peer: str, helo: str, message_id: str) -> bytes:
    """`raw` as SES's S3 action stores it: with the Return-Path, Received and verdict headers it prepends."""
    newline = b"\r\n" if b"\r\n" in raw[:4096] or not raw else b"\n"
    recipient = recipients[0] if len(recipients) == 1 else "multiple recipients"
    headers = [
        f"Return-Path: <{mail_from}>",
        f"Received: from {helo or 'unknown'} ({peer}) by {HOSTNAME} with SMTP id {message_id}",
        f" for {recipient}; {format_datetime(datetime.now(UTC))}",
        "X-SES-Spam-Verdict: PASS",
        "X-SES-Virus-Verdict: PASS",
    ]
    return newline.join(h.encode() for h in headers) + newline + raw


@dataclass
class IngressHandler:
    """aiosmtpd handler: RCPT for our domain only; DATA goes through the handler, one message at a time."""

    env: EmbeddedAws
    domain: str
    outbox: Path
    on_received: Callable[[Received], None]
    verbose: bool = False
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address.rpartition("@")[2].lower().rstrip(".") != self.domain:
            return f"550 5.7.1 <{address}>: this server accepts mail for @{self.domain} only"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        raw = ses_stored(
            bytes(envelope.original_content or envelope.content),
            envelope.mail_from or "",
            envelope.rcpt_tos,
            peer,
            session.host_name or "",
            message_id,
        )
        received = self.deliver(raw, envelope.mail_from or "", tuple(envelope.rcpt_tos), message_id)
        self.received.append(received)
        self.on_received(received)
        if received.result is None:
            return f"451 4.3.0 forwarding failed, try again later: {received.error[:200]}"
        return f"250 OK {message_id}"

    def deliver(self, raw: bytes, mail_from: str, recipients: tuple[str, ...], message_id: str) -> Received:
        """Store the mail and invoke the handler as SES would; an exception is reported, not raised."""
        event = build_event(raw, recipients, message_id=message_id, source=mail_from or None)
        try:
            with self._lock:
                result = run_mail(self.env, message_id, raw, event, self.outbox, self.verbose)
        except OutboxError as error:  # forwarded, only not written: a 451 would have the client send it again
            return Received(message_id, mail_from, recipients, error.result, f"{error.filename}: {error.strerror}")
        except Exception as error:  # the handler raised: Lambda would retry, SMTP says 451
            return Received(message_id, mail_from, recipients, None, f"{type(error).__name__}: {error}")
        return Received(message_id, mail_from, recipients, result)


_BARE_LF = re.compile(rb"(?<!\r)\n")


class _LenientSmtp(SMTP):
    """aiosmtpd's server, taking a line that ends in a bare LF as if it ended in CRLF.

    SMTP requires CRLF, and aiosmtpd reads DATA up to CRLF only: a message written with LF line endings
    (a file piped through `nc`, a script that writes bytes as they are on disk) would be one endless line
    and get "500 Line too long". The local loop is for trying mail, not for teaching SMTP: each bare LF
    becomes CRLF as the bytes arrive, so such a message is received as a CRLF client would send it.
    """

    _after_cr = False

    def data_received(self, data: bytes) -> None:
        head, rest = (b"\n", data[1:]) if self._after_cr and data[:1] == b"\n" else (b"", data)
        self._after_cr = data.endswith(b"\r")
        super().data_received(head + _BARE_LF.sub(b"\r\n", rest))


class _Controller(Controller):
    """aiosmtpd's threaded controller, able to listen on an ephemeral port (port 0), with `_LenientSmtp`."""

    def factory(self) -> SMTP:
        return _LenientSmtp(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        server: Any = self.server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Ingress:
    """A running ingress: where it listens and what it received."""

    host: str
    port: int
    domain: str
    handler: IngressHandler


@contextmanager
def serve(
    domain: str,
    aliases: Mapping[str, Sequence[str]],
    outbox: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 2525,
    on_received: Callable[[Received], None] = lambda r: None,
    verbose: bool = False,
) -> Iterator[Ingress]:
    """Run the ingress (port 0 = any free port) with the embedded AWS emulator until the block ends."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    domain = domain.strip().lower().rstrip(".")
    with embedded_aws(domain, aliases, reply_mode="team") as env:
        handler = IngressHandler(env, domain, outbox, on_received, verbose)
        controller = _Controller(
            handler,
            hostname=host,
            port=port,
            server_hostname=HOSTNAME,
            ident="forwarder smtp (local SES ingress)",
            data_size_limit=MAX_MESSAGE_BYTES,
        )
        controller.start()
        try:
            yield Ingress(host, controller.port, domain, handler)
        finally:
            controller.stop()
