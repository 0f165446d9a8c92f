"""Nothing lost, nothing doubled: each fault injected, Lambda's retries simulated by invoking again."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder import wiring
from forwarder_ops.local import EmbeddedAws, LocalContext, SesRefusal, build_event, embedded_aws
from forwarder_ops.samples import with_attachment
from tests.conftest import CORPUS, DOMAIN, corpus_files
from tests.mailcheck import assert_forwarded

SECRET_NAME = "forwarder/dev/link-key"


def test_sandbox_rejection_of_one_member_does_not_stop_the_others(aws: EmbeddedAws, load_eml: Any) -> None:
    # GIVEN a sandboxed region where one member's address is not verified
    aws.set_aliases({"team": ["ok.one@example.org", "unverified@example.org", "ok.two@example.org"]})
    aws.ses.sandbox = True
    aws.ses.refuse["unverified@example.org"] = SesRefusal("MessageRejected", "Email address is not verified.")
    # WHEN a mail to team@ is forwarded
    result, sent = aws.deliver(load_eml("booth.eml"), ["team@dev.aws-educate.tw"], message_id="sandbox-1")
    outcome = result["outcomes"][0]
    # THEN the verified members get it, the unverified one is reported, nothing is raised
    assert sorted(m for s in sent for m in s.recipients) == ["ok.one@example.org", "ok.two@example.org"]
    assert outcome["failed"] == ["unverified@example.org"]
    assert outcome["forwarded"] is True


def test_alias_data_errors_never_stop_valid_members(
    aws: EmbeddedAws, load_eml: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an alias with junk entries, an empty alias and a member on our own domain
    ssm = boto3.client("ssm", region_name="us-east-1")
    path = aws.alias_path
    ssm.put_parameter(
        Name=f"{path}/team",
        Type="String",
        Value=" ok@example.org ,, not an address ; x, loop@dev.aws-educate.tw",
        Overwrite=True,
    )
    ssm.put_parameter(Name=f"{path}/empty", Type="StringList", Value=" ", Overwrite=True)
    # WHEN two mails arrive on the same warm container
    for number in (1, 2):
        result, sent = aws.deliver(
            load_eml("booth.eml"), ["team@dev.aws-educate.tw"], message_id=f"alias-data-{number}"
        )
        assert [s.recipients for s in sent] == [("ok@example.org",)]
    result, sent = aws.deliver(load_eml("booth.eml"), ["empty@dev.aws-educate.tw"], message_id="alias-data-3")
    assert result["outcomes"][0]["reason"] == "unknown-recipient"
    # THEN each bad entry was logged once, not once per mail
    skipped = [r for r in caplog.records if r.getMessage() == "alias member skipped"]
    assert sorted(r.member for r in skipped) == ["loop@dev.aws-educate.tw", "not an address ; x"]  # type: ignore[attr-defined]


def test_missing_alias_path_drops_with_a_logged_error(load_eml: Any, caplog: pytest.LogCaptureFixture) -> None:
    with embedded_aws(DOMAIN, {}) as aws:
        result, sent = aws.deliver(load_eml("booth.eml"), ["team@dev.aws-educate.tw"], message_id="no-aliases")
    assert result["outcomes"][0]["reason"] == "unknown-recipient"
    assert sent == []
    assert any(r.getMessage() == "no alias lists found" for r in caplog.records)


def test_alias_cache_holds_edits_for_its_lifetime(load_eml: Any) -> None:
    settings_ = {"FORWARDER_ALIAS_CACHE_SECONDS": "60"}
    with embedded_aws(DOMAIN, {"team": ["old@example.org"]}, settings=settings_) as aws:
        aws.deliver(load_eml("booth.eml"), ["team@dev.aws-educate.tw"], message_id="cache-1")
        aws.set_aliases({"team": ["new@example.org"]})
        _, cached = aws.deliver(load_eml("booth.eml"), ["team@dev.aws-educate.tw"], message_id="cache-2")
        wiring.reset()  # a new container: the cache is gone
        _, fresh = aws.deliver(load_eml("booth.eml"), ["team@dev.aws-educate.tw"], message_id="cache-3")
    assert cached[0].recipients == ("old@example.org",)
    assert fresh[0].recipients == ("new@example.org",)


def test_unset_idempotency_table_warns_at_start_up(load_eml: Any, caplog: pytest.LogCaptureFixture) -> None:
    with embedded_aws(DOMAIN, {"team": ["a@example.org"]}, idempotency=False) as aws:
        aws.deliver(load_eml("booth.eml"), ["team@dev.aws-educate.tw"])
    assert any("FORWARDER_IDEMPOTENCY_TABLE is not set" in r.getMessage() for r in caplog.records)


# Oversize ---------------------------------------------------------------------------------------


@pytest.fixture
def linked_aws(demo_aliases: dict[str, list[str]]) -> Any:
    settings_ = {
        "FORWARDER_LINK_URL": "https://dl.example.lambda-url.us-east-1.on.aws/",
        "FORWARDER_LINK_SECRET": SECRET_NAME,
    }
    with embedded_aws(DOMAIN, demo_aliases, settings=settings_) as aws:
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name=SECRET_NAME, SecretString="s" * 64)
        yield aws


def test_oversize_mail_becomes_a_notice_with_a_working_download_link(linked_aws: EmbeddedAws, load_eml: Any) -> None:
    # GIVEN a 44 MB mail (over SES v2's 40 MB) with a named attachment
    raw = with_attachment(load_eml("workshop.eml"), 44_000_000, "recording")
    # WHEN it is forwarded to team@
    result, sent = linked_aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id="oversize-1")
    # THEN each member gets a short notice naming sender, subject, date, attachments and a link
    outcome = result["outcomes"][0]
    assert outcome["oversize"] is True
    assert outcome["recipients"] == 2
    [notice] = sent
    assert len(notice.raw) < 10_000
    message = email.message_from_bytes(notice.raw, policy=email.policy.default)
    assert message["From"].addresses[0].addr_spec == "team@dev.aws-educate.tw"
    assert message["Reply-To"].addresses[0].addr_spec == "alice.chen@example.com"
    assert str(message["Subject"]).startswith("[too large to forward] 下週工作坊議程")
    text = message.get_content()
    assert "陳愛琳 Alice Chen <alice.chen@example.com>" in text
    assert "Mon, 23 Nov 2026 17:12:40 +0800" in text
    assert "agenda.csv (text/csv" in text
    assert re.search(r"recording\.bin \(application/octet-stream, 32\.\d MB\)", text)
    assert "valid for 7 days" in text
    link = next(line for line in text.splitlines() if line.startswith("https://dl.example"))
    # AND the download function turns the link into the stored original
    from forwarder.download import _runtime, lambda_handler

    _runtime.cache_clear()
    answer = lambda_handler({"queryStringParameters": dict(parse_qsl(urlsplit(link).query))}, LocalContext())
    assert answer["statusCode"] == 302
    location = urlsplit(answer["headers"]["Location"])
    assert location.path.endswith("/inbound/oversize-1")
    assert "response-content-disposition=attachment" in location.query
    forged = {**dict(parse_qsl(urlsplit(link).query)), "m": "someone-elses-mail"}
    assert lambda_handler({"queryStringParameters": forged}, LocalContext())["statusCode"] == 403
    # AND once the bucket's lifecycle removed the mail, the link says so
    boto3.client("s3", region_name="us-east-1").delete_object(Bucket="local-forwarder-mail", Key="inbound/oversize-1")
    gone = lambda_handler({"queryStringParameters": dict(parse_qsl(urlsplit(link).query))}, LocalContext())
    assert (gone["statusCode"], gone["body"]) == (404, "this message is no longer stored\n")
    _runtime.cache_clear()


def test_a_mail_ses_refuses_to_send_becomes_a_notice_with_the_download_link(
    linked_aws: EmbeddedAws, load_eml: Any
) -> None:
    # GIVEN SES refusing the forward itself (as it does for attachment types it does not send)
    linked_aws.ses.refuse_calls[1] = SesRefusal("MessageRejected", "Illegal filename 'setup.exe'.")
    raw = load_eml("workshop.eml")
    # WHEN a mail to team@ is forwarded
    result, sent = linked_aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id="refused-1")
    # THEN the members get, in its place, the notice saying why, with the link to the stored original
    outcome = result["outcomes"][0]
    assert outcome["forwarded"] is True and outcome["oversize"] is True and outcome["failed"] == []
    [notice] = sent
    assert sorted(notice.recipients) == sorted(result_members(linked_aws))
    message = email.message_from_bytes(notice.raw, policy=email.policy.default)
    assert str(message["Subject"]).startswith("[could not forward] 下週工作坊議程")
    text = message.get_content()
    assert "Amazon SES refused to send it (Illegal filename 'setup.exe'.)" in text
    assert any(line.startswith("https://dl.example") for line in text.splitlines())
    # AND a retried event sends nothing again: the notice completed the batch's claim, and the retry reports
    # the notice as the first run did
    again = linked_aws.invoke(build_event(raw, ["team@dev.aws-educate.tw"], message_id="refused-1"))
    assert again["outcomes"][0]["sent"] == outcome["sent"]
    assert len(linked_aws.ses.outbox) == 1
    assert again["outcomes"][0]["oversize"] is True


def test_in_the_sandbox_a_mail_ses_refuses_for_its_content_still_becomes_the_notice(
    linked_aws: EmbeddedAws, load_eml: Any
) -> None:
    # GIVEN a sandboxed region (the members' addresses verified) and SES refusing the forward for its content
    linked_aws.ses.sandbox = True
    linked_aws.ses.refuse_calls[1] = SesRefusal("MessageRejected", "Illegal filename 'setup.exe'.")
    # WHEN a mail to team@ is forwarded
    result, sent = linked_aws.deliver(load_eml("workshop.eml"), ["team@dev.aws-educate.tw"], message_id="refused-s")
    # THEN the refusal is not read as unverified members: they get the notice quoting SES, with the link
    outcome = result["outcomes"][0]
    assert outcome["forwarded"] is True and outcome["oversize"] is True and outcome["failed"] == []
    [notice] = sent
    assert sorted(notice.recipients) == sorted(result_members(linked_aws))
    text = email.message_from_bytes(notice.raw, policy=email.policy.default).get_content()
    assert "Amazon SES refused to send it (Illegal filename 'setup.exe'.)" in text


def test_a_refused_notice_leaves_the_members_failed(linked_aws: EmbeddedAws, load_eml: Any) -> None:
    # GIVEN SES refusing both the forward and the notice in its place
    linked_aws.ses.refuse_calls[1] = SesRefusal("MessageRejected", "Address blacklisted.")
    linked_aws.ses.refuse_calls[2] = SesRefusal("MessageRejected", "Address blacklisted.")
    # WHEN a mail to team@ is forwarded THEN nothing is sent, nothing raises, and the members are reported
    result, sent = linked_aws.deliver(load_eml("workshop.eml"), ["team@dev.aws-educate.tw"], message_id="refused-2")
    assert sent == []
    assert result["outcomes"][0]["reason"] == "rejected-by-ses"
    assert sorted(result["outcomes"][0]["failed"]) == sorted(result_members(linked_aws))


def test_a_refused_notice_is_not_reported_as_a_notice_sent(linked_aws: EmbeddedAws, load_eml: Any) -> None:
    # GIVEN SES refusing every send to one alias's only member (an address it will not send to), forward and
    # notice alike, and another alias whose member SES accepts
    linked_aws.set_aliases({"team": ["blocked@example.org"], "ops": ["carol@example.org"]})
    linked_aws.ses.refuse["blocked@example.org"] = SesRefusal("MessageRejected", "Address blacklisted.")
    # WHEN a mail to both aliases is forwarded
    result, sent = linked_aws.deliver(
        load_eml("workshop.eml"), ["team@dev.aws-educate.tw", "ops@dev.aws-educate.tw"], message_id="refused-3"
    )
    # THEN ops' member got the mail itself, team's member is reported failed, and the outcome does not say that
    # a notice went out instead of the mail (none did: the trace would tell carol's forward was a notice)
    outcome = result["outcomes"][0]
    assert [s.recipients for s in sent] == [("carol@example.org",)]
    assert not email.message_from_bytes(sent[0].raw)["Subject"].startswith("[could not forward]")
    assert outcome["failed"] == ["blocked@example.org"]
    assert outcome["oversize"] is False


def result_members(aws: EmbeddedAws) -> list[str]:
    """The members of team@ in this environment."""
    ssm = boto3.client("ssm", region_name="us-east-1")
    value = ssm.get_parameter(Name=f"{aws.alias_path}/team")["Parameter"]["Value"]
    return [member.strip() for member in value.split(",")]


def test_download_link_signed_before_a_key_rotation_still_works(linked_aws: EmbeddedAws, load_eml: Any) -> None:
    # GIVEN an oversize notice whose link was signed with the current key
    raw = with_attachment(load_eml("booth.eml"), 41_000_000, "video")
    _, sent = linked_aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id="rotated-1")
    text = email.message_from_bytes(sent[0].raw, policy=email.policy.default).get_content()
    query = dict(parse_qsl(urlsplit(next(line for line in text.splitlines() if line.startswith("https://"))).query))
    from forwarder import wiring
    from forwarder.download import _runtime, lambda_handler

    _runtime.cache_clear()
    wiring.signing_keys.cache_clear()
    # WHEN the key is rotated (a new AWSCURRENT version; the old one becomes AWSPREVIOUS)
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=SECRET_NAME, SecretString="n" * 64
    )
    # THEN the link signed with the previous key is still honoured during the grace period
    assert lambda_handler({"queryStringParameters": query}, LocalContext())["statusCode"] == 302
    # AND a link signed with neither key is refused
    forged = {**query, "s": "0" * 64}
    assert lambda_handler({"queryStringParameters": forged}, LocalContext())["statusCode"] == 403
    _runtime.cache_clear()


def test_oversize_limit_is_configurable(load_eml: Any) -> None:
    settings_ = {"FORWARDER_MAX_MESSAGE_BYTES": "25000000"}
    with embedded_aws(DOMAIN, {"team": ["a@example.org"]}, settings=settings_) as aws:
        raw = with_attachment(load_eml("booth.eml"), 26_000_000, "video")
        result, sent = aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id="gmail-limit")
    assert result["outcomes"][0]["oversize"] is True
    # without FORWARDER_LINK_URL the link is S3-presigned
    text = email.message_from_bytes(sent[0].raw, policy=email.policy.default).get_content()
    assert "https://local-forwarder-mail.s3.amazonaws.com/inbound/gmail-limit?" in text
    assert "X-Amz-Expires=604800" in text
    assert "X-Amz-Signature=" in text


# Hostile input ----------------------------------------------------------------------------------


HOSTILE = {
    "nul-bytes": b"From: a@example.com\r\nSubject: nul\x00here\r\n\r\nbody\x00with\x00nuls\r\n",
    "no-separator": b"From: a@example.com\r\nSubject: x\r\nbody starts here without a blank line\r\n",
    "huge-headers": b"From: a@example.com\r\n"
    + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 90) for i in range(1100))
    + b"\r\nb",
    "huge-single-header": b"From: a@example.com\r\nX-Huge: "
    + b"z" * 100_000
    + b"\r\nSubject: "
    + b"s " * 60_000
    + b"\r\n\r\nb",
    "bare-cr-lf": b"From: a@example.com\rSubject: x\nTo: team@dev.aws-educate.tw\r\n\nbody\rwith\nmixed\r\n",
    "invalid-encodings": b"From: =?utf-8?b?!!!?= <a@example.com>\r\nSubject: =?x-unknown?q?abc?=\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n@@@not base64@@@\r\n",
    "binary-garbage": bytes(range(256)) * 40,
    "empty": b"",
    "only-body": b"\r\n\r\njust a body\r\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_mail_is_forwarded_with_its_body_unchanged(aws: EmbeddedAws, name: str) -> None:
    raw = HOSTILE[name]
    result, sent = aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id=f"hostile-{name}")
    assert result["outcomes"][0]["forwarded"], result
    for mail in sent:
        assert_forwarded(raw, mail.raw, "team", DOMAIN, body_may_change=name == "binary-garbage")


def test_nested_message_rfc822_and_smime_are_forwarded_untouched(aws: EmbeddedAws) -> None:
    for path in [
        CORPUS / "mimekit/messages/simple-embedded-message.eml",
        CORPUS / "mimekit/smime/thunderbird-signed.txt",
    ]:
        raw = path.read_bytes()
        _, sent = aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id=f"nested-{path.stem}")
        assert_forwarded(raw, sent[0].raw, "team", DOMAIN)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_smime_signature_still_verifies_after_forwarding(aws: EmbeddedAws, tmp_path: Path) -> None:
    # GIVEN a message we sign ourselves with a fresh key, and the signed message of the corpus
    key, cert, content = tmp_path / "key.pem", tmp_path / "cert.pem", tmp_path / "content.txt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=alice@example.com"],
        check=True, capture_output=True,
    )  # fmt: skip
    content.write_bytes(b"Content-Type: text/plain; charset=utf-8\r\n\r\nSigned words \xe2\x9c\x93\r\n")
    signed = subprocess.run(
        ["openssl", "smime", "-sign", "-in", content, "-signer", cert, "-inkey", key, "-binary"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    ours = b"From: Alice <alice@example.com>\r\nTo: team@dev.aws-educate.tw\r\nSubject: signed\r\n" + signed
    theirs = (CORPUS / "mimekit/smime/thunderbird-signed.txt").read_bytes()
    for number, raw in enumerate([ours, theirs]):
        # WHEN each is forwarded
        _, sent = aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id=f"smime-{number}")
        forwarded = tmp_path / f"forwarded-{number}.eml"
        forwarded.write_bytes(sent[0].raw)
        # THEN the signature still verifies
        check = subprocess.run(
            ["openssl", "smime", "-verify", "-noverify", "-in", forwarded], capture_output=True, check=False
        )
        assert check.returncode == 0, check.stderr
        # and a tampered body does not (the check can fail)
        tampered = tmp_path / f"tampered-{number}.eml"
        tampered.write_bytes(sent[0].raw.replace(b"Signed words", b"Signed w0rds").replace(b"Hopefully", b"Hopefu11y"))
        verify_tampered = ["openssl", "smime", "-verify", "-noverify", "-in", tampered]
        assert subprocess.run(verify_tampered, capture_output=True, check=False).returncode != 0


FUZZ_CORPUS = [p.read_bytes() for p in corpus_files()][:200]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(raw=st.one_of(st.binary(max_size=3000), st.sampled_from(FUZZ_CORPUS or [b""]).flatmap(
    lambda base: st.binary(max_size=64).map(lambda noise: base[: len(base) // 2] + noise + base[len(base) // 2 :])
)))  # fmt: skip
def test_handler_fuzz_never_raises(aws: EmbeddedAws, raw: bytes) -> None:
    import hashlib

    message_id = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
    aws.store_mail(raw, message_id)
    result = aws.invoke(build_event(b"From: a@example.com\r\n\r\n", ["team@dev.aws-educate.tw"], message_id=message_id))
    assert result["outcomes"][0]["forwarded"]


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs the gpg command")
def test_pgp_mime_signature_still_verifies_after_forwarding(aws: EmbeddedAws, tmp_path: Path) -> None:
    # GIVEN a PGP/MIME signed mail (RFC 3156) signed with a fresh key
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--passphrase", ""]
    subprocess.run(
        [*gpg, "--quick-gen-key", "alice@example.com", "ed25519", "sign", "never"], check=True, capture_output=True
    )
    part = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSigned \xe2\x9c\x93\r\n"
    (tmp_path / "part").write_bytes(part)
    subprocess.run(
        [*gpg, "--armor", "--detach-sign", "-o", str(tmp_path / "part.asc"), str(tmp_path / "part")], check=True
    )
    signature = (tmp_path / "part.asc").read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    raw = (
        b"From: Alice <alice@example.com>\r\nTo: team@dev.aws-educate.tw\r\nSubject: signed\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; micalg=pgp-sha512; protocol="application/pgp-signature"; boundary="SIG"\r\n'
        b"\r\n--SIG\r\n"
        + part
        + b"\r\n--SIG\r\nContent-Type: application/pgp-signature\r\n\r\n"
        + signature
        + b"\r\n--SIG--\r\n"
    )
    # WHEN it is forwarded
    _, sent = aws.deliver(raw, ["team@dev.aws-educate.tw"], message_id="pgp-1")
    forwarded = sent[0].raw
    # THEN the signed part, cut out of the forwarded mail as a receiving client would, still verifies
    signed_part = forwarded.split(b"\r\n--SIG\r\n", 1)[1].split(b"\r\n--SIG\r\n", 1)[0]
    (tmp_path / "forwarded-part").write_bytes(signed_part)
    verify = [*gpg, "--verify", str(tmp_path / "part.asc"), str(tmp_path / "forwarded-part")]
    assert subprocess.run(verify, capture_output=True, check=False).returncode == 0
    (tmp_path / "forwarded-part").write_bytes(signed_part.replace(b"Signed", b"Signet"))
    assert subprocess.run(verify, capture_output=True, check=False).returncode != 0
