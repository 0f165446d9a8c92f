"""A member's signed answer loses its signature before it goes out as the team (forwarder/mail/signed.py)."""

from __future__ import annotations

import email
import email.policy
import tracemalloc

import pytest

from forwarder.mail.message import split_message
from forwarder.mail.signed import without_signature

# What Thunderbird writes for an S/MIME-signed plain-text answer; the signature's base64 stands for a
# certificate that names the member's address.
CERTIFICATE = b"MIIGbob-example-net-certificate-bytes0123456789abcdef"
SMIME = (
    b"From: Bob <bob@example.net>\r\n"
    b"Subject: Re: Booth?\r\n"
    b"In-Reply-To: <q1@customer.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
    b' micalg=sha-256; boundary="------------ms0102"\r\n'
    b"\r\n"
    b"This is a cryptographically signed message in MIME format.\r\n"
    b"\r\n"
    b"--------------ms0102\r\n"
    b"Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Yes, see you there. \xe8\xa6\x8b\r\n"
    b"\r\n"
    b"--------------ms0102\r\n"
    b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="smime.p7s"\r\n'
    b"\r\n" + CERTIFICATE + b"\r\n"
    b"--------------ms0102--\r\n"
)


def parsed(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_without_signature_sends_the_signed_content_as_the_message() -> None:
    # GIVEN an S/MIME-signed answer
    bare = without_signature(split_message(SMIME))
    # THEN its signed text is the message, with that part's content fields; nothing of the signature is left
    assert bare is not None
    raw = bytes(bare.raw)
    assert CERTIFICATE not in raw and b"pkcs7" not in raw and b"ms0102" not in raw
    message = parsed(raw)
    assert message.get_content_type() == "text/plain"
    assert message["Content-Transfer-Encoding"] == "8bit"
    assert bytes(bare.body) == b"Yes, see you there. \xe8\xa6\x8b\r\n"
    assert message.get_content().startswith("Yes, see you there. 見")
    # AND the other fields stay as they were, in order
    assert [field.name for field in bare.fields] == [
        "From",
        "Subject",
        "In-Reply-To",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]
    assert raw.startswith(SMIME[: SMIME.index(b"Content-Type")])


def test_without_signature_keeps_a_multipart_signed_content_whole() -> None:
    # GIVEN a PGP/MIME-signed answer (LF line endings) whose signed content is text and HTML
    inner = (
        b'Content-Type: multipart/alternative; boundary="alt"\n'
        b"\n"
        b"--alt\nContent-Type: text/plain\n\nYes\n--alt\nContent-Type: text/html\n\n<p>Yes</p>\n--alt--\n"
    )
    raw = (
        b"From: bob@example.net\nSubject: Re: Booth?\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="sig"\n'
        b"\n--sig\n" + inner + b"\n--sig\n"
        b"Content-Type: application/pgp-signature; name=signature.asc\n\n"
        b"-----BEGIN PGP SIGNATURE-----\niQEzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n--sig--\n"
    )
    bare = without_signature(split_message(raw))
    # THEN the message is the alternative, byte for byte after its content field
    assert bare is not None
    assert bytes(bare.raw).endswith(inner[inner.index(b"\n\n") + 2 :])
    message = parsed(bytes(bare.raw))
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert b"PGP SIGNATURE" not in bytes(bare.raw)


def test_without_signature_writes_the_part_fields_in_the_message_line_endings() -> None:
    # GIVEN an LF message whose signed part was written with CRLF (a canonical signed part in an LF file)
    raw = (
        b'From: bob@example.net\nContent-Type: multipart/signed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain;\r\n charset=utf-8\r\n\r\nYes\r\n"
        b"--b\nContent-Type: application/pgp-signature\n\nx\n--b--\n"
    )
    bare = without_signature(split_message(raw))
    assert bare is not None
    # THEN the header block has LF line endings only
    head = bytes(bare.raw[: bare.body_start])
    assert b"\r" not in head
    assert head == b"From: bob@example.net\nContent-Type: text/plain;\n charset=utf-8\n\n"


def test_without_signature_leaves_unsigned_mail_as_it_is() -> None:
    raw = b"From: bob@example.net\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n"
    message = split_message(raw)
    assert without_signature(message) is message


def test_without_signature_without_content_type_in_the_part_is_plain_text() -> None:
    raw = (
        b'From: b@example.net\r\nContent-Type: multipart/signed; boundary="b"\r\n\r\n'
        b"--b\r\n\r\nYes\r\n--b\r\n\r\nsig\r\n--b--\r\n"
    )
    bare = without_signature(split_message(raw))
    assert bare is not None
    assert bare.first("content-type") is None
    assert bytes(bare.body) == b"Yes"


@pytest.mark.parametrize(
    "content_type",
    [
        b'application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"',
        b"application/x-pkcs7-mime; smime-type=enveloped-data",
        b"multipart/signed; protocol=application/pkcs7-signature",  # no boundary: the signed part is unknown
        b'multipart/signed; boundary="never-there"',
    ],
)
def test_without_signature_refuses_what_cannot_be_taken_apart(content_type: bytes) -> None:
    raw = b"From: bob@example.net\r\nContent-Type: " + content_type + b"\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\r\n"
    assert without_signature(split_message(raw)) is None


def _signed(content: bytes, boundary: bytes = b"s1", signature: bytes = CERTIFICATE) -> bytes:
    return (
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; boundary="' + boundary + b'"\r\n'
        b"\r\n--" + boundary + b"\r\n" + content + b"\r\n--" + boundary + b"\r\n"
        b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n\r\n' + signature + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )


TOP = b"From: Bob <bob@example.net>\r\nSubject: Re: Booth?\r\nMIME-Version: 1.0\r\n"


def test_without_signature_takes_off_a_signature_inside_the_signed_content() -> None:
    # GIVEN an answer signed twice (a signed part inside multipart/signed)
    inner = _signed(b"Content-Type: text/plain\r\n\r\nYes", b"s2", b"MIIGinner-certificate")
    bare = without_signature(split_message(TOP + _signed(inner)))
    # THEN neither signature goes out: the innermost content is the message
    assert bare is not None
    raw = bytes(bare.raw)
    assert b"certificate" not in raw and b"pkcs7" not in raw
    assert parsed(raw).get_content_type() == "text/plain" and bytes(bare.body) == b"Yes"


@pytest.mark.parametrize(
    "raw",
    [
        # the signature written as the first part
        TOP + b'Content-Type: multipart/signed; boundary="s"\r\n\r\n--s\r\n'
        b"Content-Type: application/pkcs7-signature\r\n\r\n" + CERTIFICATE + b"\r\n--s\r\n"
        b"Content-Type: text/plain\r\n\r\nYes\r\n--s--\r\n",
        # opaque S/MIME as the signed content
        TOP + _signed(b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n" + CERTIFICATE),
        # Outlook's opaque S/MIME typed application/octet-stream
        TOP + b'Content-Type: application/octet-stream; name="smime.p7m"\r\n'
        b'Content-Disposition: attachment; filename="smime.p7m"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + CERTIFICATE
        + b"\r\n",
        # a signed part inside multipart/mixed
        TOP
        + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
        + _signed(b"Content-Type: text/plain\r\n\r\nYes")
        + b"\r\n--m--\r\n",
    ],
    ids=["signature-first", "opaque-inside", "octet-stream-p7m", "signed-in-mixed"],
)
def test_without_signature_refuses_a_signature_it_would_send_as_it_is(raw: bytes) -> None:
    assert without_signature(split_message(raw)) is None


def test_without_signature_keeps_a_p7m_file_the_member_attached() -> None:
    # GIVEN an unsigned answer with an attached signed document (an Italian e-invoice is a .xml.p7m)
    raw = (
        TOP + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nHere\r\n'
        b'--m\r\nContent-Type: application/pkcs7-mime; name="invoice.xml.p7m"\r\n\r\nMIIB\r\n--m--\r\n'
    )
    message = split_message(raw)
    assert without_signature(message) is message


def test_without_signature_of_a_large_answer_copies_its_content_once() -> None:
    # GIVEN a 40 MB signed answer
    content = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b"QUJD" * 10_000_000
    message = split_message(TOP + _signed(content))
    # WHEN its signature is taken off
    tracemalloc.start()
    bare = without_signature(message)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # THEN at most one copy of it was made
    assert bare is not None and len(bare.body) == 40_000_000
    assert peak < 41_000_000
