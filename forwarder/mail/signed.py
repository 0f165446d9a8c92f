"""A member's signed answer without its signature, before it goes out as the team.

A mail program that signs (S/MIME or PGP/MIME, RFC 1847 `multipart/signed`) sends two parts: the signed
content, and the signature. An S/MIME signature carries the member's certificate, which names the member's
own address; a PGP signature names the member's key. Relayed as the alias, the signature would give away
whom the team's answer came from (the promise is that nothing of the member's address goes out), and it
would not verify anyway: its signer is the member, the From is the alias. So the relay sends the signed
content alone, as the whole message: its content fields (Content-Type, Content-Transfer-Encoding, ...)
take the place of the message's, and its bytes are the body, unchanged.

An opaque S/MIME message (`application/pkcs7-mime`: the content is inside the signature's or envelope's
DER blob) cannot be taken apart without reading that blob: it is not relayed (the caller forwards it to
the members marked).
"""

from __future__ import annotations

from forwarder.mail.message import SplitMessage, split_message
from forwarder.mail.mime import content_type, part_spans

SIGNED = "multipart/signed"
OPAQUE = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_CONTENT = "content-"


def without_signature(message: SplitMessage) -> SplitMessage | None:
    """`message` itself when it is not signed; its signed content as the message when it is `multipart/signed`;
    None when its signature cannot be taken off (opaque S/MIME, or a `multipart/signed` without a readable
    first part)."""
    kind = content_type(message.fields)
    media = kind.get_content_type()
    if media in OPAQUE:
        return None
    if media != SIGNED:
        return message
    boundary = kind.get_boundary()
    spans = part_spans(message.raw, boundary, message.body_start, len(message.raw)) if boundary else []
    if not spans:
        return None
    start, end = spans[0]
    part = split_message(bytes(message.raw[start:end]))
    newline = message.newline
    head = [field.raw for field in message.fields if not field.key.startswith(_CONTENT)]
    # The part's own content fields, in the message's line endings (a signed part is often CRLF in an LF file).
    head += [_ended(field.raw, part.newline, newline) for field in part.fields if field.key.startswith(_CONTENT)]
    return split_message(b"".join(head) + newline + bytes(part.body))


def _ended(raw: bytes, was: bytes, newline: bytes) -> bytes:
    if was == newline:
        return raw
    return raw.replace(b"\r\n", b"\n") if newline == b"\n" else raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
