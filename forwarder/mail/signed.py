"""A member's signed answer without its signature, before it goes out as the team.

A mail program that signs (S/MIME or PGP/MIME, RFC 1847 `multipart/signed`) sends two parts: the signed
content, and the signature. An S/MIME signature carries the member's certificate, which names the member's
own address; a PGP signature names the member's key. Relayed as the alias, the signature would give away
whom the team's answer came from (the promise is that nothing of the member's address goes out), and it
would not verify anyway: its signer is the member, the From is the alias. So the relay sends the signed
content alone, as the whole message: its content fields (Content-Type, Content-Transfer-Encoding, ...)
take the place of the message's, and its bytes are the body, unchanged.

A signed part inside the signed content (signed twice) loses its signature too. An opaque S/MIME message
(`application/pkcs7-mime`, or Outlook's `application/octet-stream` named `smime.p7m`: the content is inside the
signature's or envelope's DER blob) cannot be taken apart without reading that blob, and a signature part anywhere
else (a first part that is the signature, a signed part inside `multipart/mixed`) would go out as it is: neither is
relayed (the caller forwards it to the members marked).
"""

from __future__ import annotations

from email.message import Message
from email.utils import collapse_rfc2231_value

from forwarder.mail.message import SplitMessage, split_message
from forwarder.mail.mime import MAX_DEPTH, content_type, part_spans, walk_leaves

SIGNED = "multipart/signed"
OPAQUE = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
# A detached signature: as the first part of `multipart/signed` (a mailer that wrote the parts the other way round)
# it is no signed content, and as a part anywhere in the answer it names the member.
SIGNATURES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"})
# Outlook sometimes types opaque S/MIME `application/octet-stream`, named `smime.p7m` (a signature `.p7s`).
_UNTYPED = "application/octet-stream"
_OPAQUE_NAMES = (".p7m",)
_SIGNATURE_NAMES = (".p7s",)
_CONTENT = "content-"
# A part header block longer than this is taken as body (as forwarder/mail/mime.py walks parts).
_HEADER_LIMIT = 256 * 1024


def without_signature(message: SplitMessage) -> SplitMessage | None:
    """`message` itself when it is not signed; its signed content as the message when it is `multipart/signed`
    (nested ones too); None when its signature cannot be taken off: opaque S/MIME, a `multipart/signed` without a
    readable first part or whose first part is the signature, or a signature part elsewhere in the answer."""
    raw = message.raw
    fields, start, end, was = message.fields, message.body_start, len(raw), message.newline
    for _ in range(MAX_DEPTH):
        kind = content_type(fields)
        if _is_opaque(kind) or _is_signature(kind):
            return None
        if kind.get_content_type() != SIGNED:
            break
        boundary = kind.get_boundary()
        spans = part_spans(raw, boundary, start, end) if boundary else []
        if not spans:
            return None
        part_start, end = spans[0]
        head = split_message(bytes(raw[part_start : min(end, part_start + _HEADER_LIMIT)]))
        fields, start, was = head.fields, min(part_start + head.body_start, end), head.newline
    else:
        return None  # signed that deep: no mail program writes it
    if any(_is_signature(content_type(leaf.fields)) for leaf in walk_leaves(fields, raw, start, end)):
        return None
    if fields is message.fields:
        return message
    newline = message.newline
    head_lines = [field.raw for field in message.fields if not field.key.startswith(_CONTENT)]
    # The part's own content fields, in the message's line endings (a signed part is often CRLF in an LF file).
    head_lines += [_ended(field.raw, was, newline) for field in fields if field.key.startswith(_CONTENT)]
    # One copy: the new header block and the signed content's bytes, straight from the received message.
    return split_message(b"".join((*head_lines, newline, memoryview(raw)[start:end])))


def _name(kind: Message) -> str:
    name = kind.get_filename() or kind.get_param("name")
    if isinstance(name, tuple):
        name = collapse_rfc2231_value(name)
    return name.lower() if isinstance(name, str) else ""


def _is_opaque(kind: Message) -> bool:
    media = kind.get_content_type()
    return media in OPAQUE or (media == _UNTYPED and _name(kind).endswith(_OPAQUE_NAMES))


def _is_signature(kind: Message) -> bool:
    media = kind.get_content_type()
    return media in SIGNATURES or (media == _UNTYPED and _name(kind).endswith(_SIGNATURE_NAMES))


def _ended(raw: bytes, was: bytes, newline: bytes) -> bytes:
    if was == newline:
        return raw
    return raw.replace(b"\r\n", b"\n") if newline == b"\n" else raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
