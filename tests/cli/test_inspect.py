"""`forwarder inspect`: a readable summary of any mail, from a file or the environment's bucket."""

from __future__ import annotations

import base64
import json
import os
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from forwarder_ops.inspect import summarise
from tests.cli.conftest import STACK, Cli, client
from tests.conftest import corpus_files

PAYLOAD = os.urandom(3000)


def sample_mail() -> bytes:
    """Two Received hops 65 s apart, authentication results, a DKIM signature, a 3,000-byte base64 attachment."""
    message = EmailMessage()
    message["Received"] = (
        "from mx.example.com (mx.example.com [192.0.2.1]) by inbound-smtp.us-east-1.amazonaws.com"
        " with SMTP id abc; Mon, 30 Nov 2026 09:15:05 +0000"
    )
    message["Received"] = (
        "from laptop.example.com ([198.51.100.7]) by mx.example.com with ESMTPSA id xyz;"
        " Mon, 30 Nov 2026 09:14:00 +0000"
    )
    message["Authentication-Results"] = (
        "amazonses.com; spf=pass smtp.mailfrom=example.com; dkim=pass header.i=@example.com;"
        " dmarc=pass header.from=example.com"
    )
    message["DKIM-Signature"] = "v=1; a=rsa-sha256; d=example.com; s=sel; h=from:to; bh=abc=; b=def="
    message["From"] = "Yating Chen <yating.chen@example.com>"
    message["To"] = "team@dev.aws-educate.tw"
    message["Subject"] = "Slides"
    message["Date"] = "Mon, 30 Nov 2026 09:13:58 +0000"
    message["Message-ID"] = "<slides-1@example.com>"
    message.set_content("The slides are attached.\n")
    message.add_attachment(PAYLOAD, maintype="application", subtype="pdf", filename="slides.pdf")
    return message.as_bytes()


def test_inspect_summary_corrects_attachment_sizes_and_times_hops(cli: Cli, tmp_path: Path) -> None:
    # GIVEN a local mail file
    path = tmp_path / "slides.eml"
    path.write_bytes(sample_mail())

    # WHEN it is inspected, as text and as JSON
    text = cli("inspect", str(path))
    data = json.loads(cli("inspect", str(path), "--json").out)

    # THEN the attachment's size is the file's (mail-parser alone reports the base64 text's length)
    (attachment,) = data["attachments"]
    assert attachment["size"] == len(PAYLOAD) == 3000
    assert attachment["reported_size"] >= 4000
    assert attachment["filename"] == "slides.pdf"
    assert "slides.pdf  application/pdf  3.0 kB" in text.out
    # AND the hops are listed oldest first with the delay at the second one
    assert [hop["delay_seconds"] for hop in data["hops"]] == [0, 65]
    assert "1m 5s" in text.out
    assert data["sender"] == ["Yating Chen <yating.chen@example.com>"]
    assert data["subject"] == "Slides"
    assert data["date"] == "2026-11-30T09:13:58+00:00"
    assert "dmarc=pass" in data["authentication"][0]["value"]
    assert data["dkim_domains"] == ["example.com"]
    assert data["defects"] == []
    assert text.code == 0


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_inspect_every_corpus_message_without_a_traceback(path: Path) -> None:
    # GIVEN any real or malformed mail WHEN summarised THEN a summary comes out, JSON-ready
    summary = summarise(path.read_bytes(), path.name)
    json.dumps(summary.as_dict())
    for attachment in summary.attachments:
        assert 0 <= attachment.size <= max(attachment.reported_size, 1) * 4
    assert summary.size == path.stat().st_size


def test_inspect_reads_a_stored_mail_by_message_id(cli: Cli, aws: None) -> None:
    # GIVEN a deployed environment whose bucket holds a received mail under inbound/
    client("s3").create_bucket(Bucket="mail-bucket")
    client("s3").put_object(Bucket="mail-bucket", Key="inbound/abc123", Body=sample_mail())
    outputs = {"MailBucket": {"Value": "mail-bucket"}, "MailPrefix": {"Value": "inbound/"}}
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}, "Outputs": outputs}
    client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))

    # WHEN the operator inspects it by its message id
    result = cli("inspect", "abc123", "--config-env", "dev")

    # THEN the summary names where it came from
    assert result.code == 0, result.err
    assert "s3://mail-bucket/inbound/abc123" in result.out
    assert "slides.pdf" in result.out
    missing = cli("inspect", "nope", "--config-env", "dev")
    assert missing.code == 2 and "no stored mail s3://mail-bucket/inbound/nope" in missing.err
    assert cli("inspect", "missing.eml").code == 2


def test_inspect_base64_attachment_size_matches_the_stdlib() -> None:
    # GIVEN mail-parser's attachments WHEN their decoded sizes are computed THEN they equal the stdlib's decoding
    import email

    raw = sample_mail()
    (part,) = [p for p in email.message_from_bytes(raw).walk() if p.get_filename()]
    assert summarise(raw).attachments[0].size == len(part.get_payload(decode=True))
    assert base64.b64decode(part.get_payload()) == PAYLOAD


# A multipart nested in one with the same boundary, no epilogue: mail-parser 4.x raises AttributeError on it.
SAME_BOUNDARY = (
    b"Received: from a.example by b.example; Mon, 30 Nov 2026 09:15:05 +0000\r\n"
    b"Received: from c.example by a.example; Mon, 30 Nov 2026 09:14:00 +0000\r\n"
    b"From: =?utf-8?q?Caf=C3=A9?= <cafe@example.org>\r\nSubject: =?utf-8?q?r=C3=A9sum=C3=A9?=\r\n"
    b"Date: Mon, 30 Nov 2026 09:13:58 +0000\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
    b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
    b"--a\r\nContent-Type: application/pdf; name=cv.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n"
)


def test_inspect_summarises_a_mail_that_mail_parser_cannot_read() -> None:
    # GIVEN a mail whose MIME structure makes mail-parser raise
    # WHEN it is summarised THEN a summary comes out, with the sender, subject, date and attachment
    summary = summarise(SAME_BOUNDARY, "same-boundary.eml")
    json.dumps(summary.as_dict())
    assert summary.sender == ["Café <cafe@example.org>"]
    assert summary.subject == "résumé"
    assert summary.date == "2026-11-30T09:13:58+00:00"
    assert [(a.filename, a.size) for a in summary.attachments] == [("cv.pdf", 3)]


def test_inspect_falls_back_to_the_stdlib_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN mail-parser failing on a mail
    import mailparser

    def broken(raw: bytes) -> None:
        raise AttributeError("'NoneType' object has no attribute 'index'")

    monkeypatch.setattr(mailparser, "parse_from_bytes", broken)
    # WHEN the mail is summarised THEN the standard library's reading is shown, hops oldest first with the delay
    summary = summarise(SAME_BOUNDARY)
    assert summary.sender == ["Café <cafe@example.org>"]
    assert [(h.source, h.by, h.delay_seconds) for h in summary.hops] == [
        ("c.example", "a.example", None),
        ("a.example", "b.example", 65.0),
    ]
    assert [(a.filename, a.content_type, a.size, a.encoding) for a in summary.attachments] == [
        ("cv.pdf", "application/pdf", 3, "base64")
    ]
    # AND the defects say that mail-parser could not read it
    assert summary.defects[0].startswith("mail-parser could not read this mail (AttributeError)")


def test_inspect_refused_read_says_it_may_be_a_wrong_id(cli: Cli, aws: None, client_overrides: dict[str, Any]) -> None:
    # GIVEN a deployed environment whose bucket answers AccessDenied (S3's answer for a missing key to a role
    # without s3:ListBucket)
    outputs = {"MailBucket": {"Value": "mail-bucket"}, "MailPrefix": {"Value": "inbound/"}}
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}, "Outputs": outputs}
    client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))

    class Refusing:
        def get_object(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    client_overrides["s3"] = Refusing()

    # WHEN the operator inspects a mail by id
    result = cli("inspect", "abc123", "--config-env", "dev")

    # THEN one line says both readings: a wrong or expired id, or a missing permission
    assert result.code == 2
    assert "S3 refused s3://mail-bucket/inbound/abc123 (AccessDenied): a wrong id" in result.err
    assert "s3:ListBucket on mail-bucket" in result.err and "s3:GetObject" in result.err
