"""`forwarder smtp`: Python's smtplib as a real client against the ingress on an ephemeral port."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import subprocess
import sys
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from forwarder.mail.message import split_message
from forwarder_ops.aliases import read_file
from forwarder_ops.replies import compose_reply
from forwarder_ops.smtp import Ingress, Received, serve
from tests.conftest import DOMAIN, EVENTS

pytestmark = [pytest.mark.network, pytest.mark.enable_socket]
FORWARDER = Path(sys.executable).parent / "forwarder"


@pytest.fixture
def ingress(workdir: Path) -> Iterator[Ingress]:
    with serve(DOMAIN, read_file(EVENTS / "aliases.toml"), workdir / "outbox", port=0) as running:
        yield running


def send(ingress: Ingress, raw: bytes, to: list[str], sender: str = "alice.chen@example.com") -> dict[str, object]:
    with smtplib.SMTP(ingress.host, ingress.port, timeout=30) as client:
        return dict(client.sendmail(sender, to, raw))


def note(subject: str = "Booth schedule") -> bytes:
    message = EmailMessage()
    message["From"] = "Alice Chen <alice.chen@example.com>"
    message["To"] = f"team@{DOMAIN}"
    message["Subject"] = subject
    message.set_content("See you at the booth.\n")
    return message.as_bytes().replace(b"\n", b"\r\n")


def test_smtp_forwards_a_mail_through_the_handler_into_the_outbox(
    ingress: Ingress, workdir: Path, load_eml: Callable[[str], bytes]
) -> None:
    # WHEN a client delivers the sample mail to team@ over SMTP
    refused = send(ingress, load_eml("workshop.eml"), [f"team@{DOMAIN}"], sender="bounce@example.com")

    # THEN it is accepted, forwarded to team's two members, and the result is in the outbox
    assert refused == {}
    [received] = ingress.handler.received
    assert received.recipients == (f"team@{DOMAIN}",)
    assert received.result is not None
    assert received.result.outcome["forwarded"] is True
    [path] = received.result.files
    assert path.parent == workdir / "outbox"
    from_field = split_message(path.read_bytes()).first("from")
    assert from_field is not None
    assert f"<team@{DOMAIN}>" in from_field.value
    sent = ingress.handler.env.ses.outbox
    assert [s.recipients for s in sent] == [("yating.chen@example.com", "weijie.lin@example.net")]
    assert sent[0].from_address == f"team@{DOMAIN}"


def test_smtp_builds_the_ses_event_from_the_envelope(ingress: Ingress) -> None:
    # GIVEN a mail whose header recipients differ from the envelope (a Bcc to tech@)
    send(ingress, note(), [f"Tech+news@{DOMAIN}"], sender="envelope@example.net")

    # THEN the handler routed by the envelope recipient, and the event's source is the MAIL FROM
    [received] = ingress.handler.received
    assert received.mail_from == "envelope@example.net"
    assert received.result is not None
    assert received.result.outcome["aliases"] == ["tech"]
    stored = (
        ingress.handler.env.clients()["s3"]
        .get_object(Bucket=ingress.handler.env.bucket, Key=f"inbound/{received.message_id}")["Body"]
        .read()
    )
    assert stored.startswith(b"Return-Path: <envelope@example.net>\r\nReceived: from ")
    assert b"X-SES-Spam-Verdict: PASS\r\n" in stored
    assert stored.endswith(note())


def test_smtp_refuses_recipients_on_other_domains(ingress: Ingress) -> None:
    # WHEN one recipient is ours and one is not
    refused = send(ingress, note(), [f"team@{DOMAIN}", "someone@gmail.com"])

    # THEN the other domain gets 550 and the mail goes on for ours only
    assert refused == {
        "someone@gmail.com": (550, f"5.7.1 <someone@gmail.com>: this server accepts mail for @{DOMAIN} only".encode())
    }
    assert ingress.handler.received[0].recipients == (f"team@{DOMAIN}",)


def test_smtp_with_only_foreign_recipients_is_refused(ingress: Ingress) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(ingress, note(), ["someone@gmail.com"])
    assert ingress.handler.received == []


def test_smtp_unknown_alias_is_accepted_and_not_forwarded(ingress: Ingress, workdir: Path) -> None:
    # SES accepts every recipient its rule covers; the forwarder decides (and logs) that nobody is behind it
    send(ingress, note(), [f"nobody@{DOMAIN}"])

    [received] = ingress.handler.received
    assert "not forwarded: unknown-recipient" in received.line()
    assert list(workdir.glob("outbox/*.eml")) == []


def test_smtp_answers_451_when_the_handler_fails(ingress: Ingress, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a handler that raises (Lambda would retry; an SMTP server says "try later")
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("S3 is down")

    monkeypatch.setattr("forwarder_ops.smtp.run_mail", broken)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(ingress, note(), [f"team@{DOMAIN}"])

    assert refused.value.smtp_code == 451
    [received] = ingress.handler.received
    assert received.line().endswith("FAILED, answered 451 (SES would retry): RuntimeError: S3 is down")


def test_smtp_received_line_names_the_outbox_file(ingress: Ingress) -> None:
    send(ingress, note(), [f"event@{DOMAIN}"])

    [received] = ingress.handler.received
    line = received.line()
    assert isinstance(received, Received)
    assert re.search(rf"alice.chen@example.com -> event@{DOMAIN}: forwarded to 2 member\(s\) via event -> ", line)
    assert line.endswith(".eml")


def start_smtp(workdir: Path, domain: str, aliases: Path) -> subprocess.Popen[str]:
    """`forwarder smtp` started as an operator would (the console script), on any free port."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    return subprocess.Popen(
        [str(FORWARDER), "smtp", "--port", "0", "--domain", domain, "--aliases", str(aliases)],
        cwd=workdir,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_smtp_command_serves_until_interrupted(workdir: Path) -> None:
    # GIVEN `forwarder smtp` started as an operator would (the console script), on any free port
    process = start_smtp(workdir, DOMAIN, EVENTS / "aliases.toml")
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) for mail to @dev\.aws-educate\.tw \(4 alias", banner)
        assert match, banner + (process.stderr.read() if process.poll() is not None and process.stderr else "")

        # WHEN a mail is sent to it
        with smtplib.SMTP("127.0.0.1", int(match[1]), timeout=30) as client:
            client.sendmail("alice.chen@example.com", [f"mkt@{DOMAIN}"], note())

        # THEN it prints one line for the forwarded message, and stops cleanly on Ctrl-C
        line = process.stdout.readline()
        assert f"alice.chen@example.com -> mkt@{DOMAIN}: forwarded to 2 member(s) via mkt -> outbox/01-mkt-" in line
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "forwarder smtp: stopped" in process.stdout.read()
        assert len(list((workdir / "outbox").glob("*.eml"))) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_smtp_member_reply_comes_out_addressed_to_the_outside_sender(ingress: Ingress, workdir: Path) -> None:
    # GIVEN an outside mail forwarded to team@'s members, whose copies carry a reply address
    send(ingress, note(), [f"team@{DOMAIN}"], sender="alice.chen@example.com")
    [forwarded] = ingress.handler.received
    assert forwarded.result is not None
    [forward_file] = forwarded.result.files
    composed = compose_reply(forward_file.read_bytes(), "yating.chen@example.com")
    assert composed is not None
    reply, reply_address = composed
    assert reply_address.startswith("team+r-") and reply_address.endswith(f"@{DOMAIN}")

    # WHEN the member Yating answers it from her own mailbox, through the SMTP loop
    send(ingress, reply, [reply_address], sender="yating.chen@example.com")

    # THEN the answer is in outbox/ addressed to the outside sender, from team@, without Yating's address
    answered = ingress.handler.received[-1]
    assert "reply relayed to the outside sender as team, copies to 1 member(s) -> " in answered.line()
    assert answered.result is not None
    outside, copy = answered.result.files
    assert outside.parent == workdir / "outbox"
    out = split_message(outside.read_bytes())
    values = {f.key: f.value for f in out.fields}
    assert values["to"] == "alice.chen@example.com"
    assert values["from"] == f"Yating Chen via team <team@{DOMAIN}>"
    assert b"yating.chen@" not in outside.read_bytes()[: out.body_start].lower()
    sent = ingress.handler.env.ses.outbox
    assert [s.recipients for s in sent[-2:]] == [("alice.chen@example.com",), ("weijie.lin@example.net",)]
    # AND the other member's copy keeps the thread on the reply address
    copy_values = {f.key: f.value for f in split_message(copy.read_bytes()).fields}
    assert copy_values["reply-to"].endswith(f"<{reply_address}>")


def test_smtp_accepts_a_message_with_bare_lf_line_endings(ingress: Ingress) -> None:
    # GIVEN a raw client that writes commands and a message with LF line endings, as a file on disk has them
    import socket

    message = note().replace(b"\r\n", b"\n") + b"And a second line of body text.\n" * 40
    with socket.create_connection((ingress.host, ingress.port), timeout=30) as client:
        reader = client.makefile("rb")

        def say(line: bytes) -> bytes:
            client.sendall(line)
            return reader.readline()

        assert reader.readline().startswith(b"220")
        assert say(b"HELO client.example\n").startswith(b"250")
        assert say(b"MAIL FROM:<alice.chen@example.com>\n").startswith(b"250")
        assert say(f"RCPT TO:<team@{DOMAIN}>\n".encode()).startswith(b"250")
        assert say(b"DATA\n").startswith(b"354")
        # WHEN the message and its end (a dot on its own LF-ended line) are sent
        answer = say(message + b".\n")
        say(b"QUIT\n")
    # THEN it is accepted (not "500 Line too long") and forwarded with its body
    assert answer.startswith(b"250"), answer
    [received] = ingress.handler.received
    assert received.result is not None and received.result.outcome["forwarded"] is True
    assert b"And a second line of body text.\r\n" * 40 in ingress.handler.env.ses.outbox[0].raw


def test_smtp_bare_lf_translation_keeps_crlf_split_across_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a CRLF that arrives split over two reads, and bare LFs
    from aiosmtpd.smtp import SMTP

    from forwarder_ops.smtp import _LenientSmtp

    seen: list[bytes] = []
    monkeypatch.setattr(SMTP, "data_received", lambda self, data: seen.append(data))
    server = object.__new__(_LenientSmtp)
    # WHEN the chunks arrive THEN every line ends in exactly one CRLF
    for chunk in (b"one\r", b"\ntwo\nthree\r\n", b"\n", b"four"):
        server.data_received(chunk)
    assert b"".join(seen) == b"one\r\ntwo\r\nthree\r\n\r\nfour"


def test_smtp_command_warns_of_a_looping_member_whatever_the_domains_case(workdir: Path) -> None:
    # GIVEN an alias with a member on the forwarding domain itself (the forwarder skips it: a loop), and
    # the domain typed in capitals with the trailing dot of a DNS name
    aliases = workdir / "aliases.toml"
    aliases.write_text(f'[aliases]\nteam = ["loop@{DOMAIN}", "yating.chen@example.com"]\n')
    process = start_smtp(workdir, DOMAIN.upper() + ".", aliases)
    try:
        # WHEN it starts
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"for mail to @{DOMAIN} " in banner, banner
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        # THEN it warns that the member is skipped, as it does for the domain in lower case
        assert process.stderr is not None
        assert f"loop@{DOMAIN} is on {DOMAIN} itself (a forwarding loop)" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_smtp_outbox_write_failure_after_the_send_is_not_a_451(
    ingress: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an outbox that cannot be written (a read-only folder), found only after the handler has sent
    def unwritable(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", "outbox/01-team-0a1b2c3d.eml")

    monkeypatch.setattr("forwarder_ops.localrun.write_outbox", unwritable)

    # WHEN a mail is sent
    send(ingress, note(), [f"team@{DOMAIN}"])

    # THEN it is accepted (a 451 would make the client send it again, and the members get it twice), and the
    # line says that it was forwarded but not written
    assert len(ingress.handler.env.ses.outbox) == 1
    [received] = ingress.handler.received
    line = received.line()
    assert "forwarded to 2 member(s) via team" in line
    assert line.endswith("not written to the outbox: outbox/01-team-0a1b2c3d.eml: Permission denied")
