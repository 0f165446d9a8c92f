"""Reply addresses: `<alias>+r-<id>-<mac>@<domain>`, one per (alias, outside sender and the other outside people
of the conversation, forwarder/mail/participants.py).

A member who answers forwarded mail writes to this address; the relay (forwarder/relay.py) sends the answer
on to the outside sender the address stands for, from the alias. Its parts:

- `<alias>+`: our plus-addressing routes `team+anything@` to `team`, so the address stays the alias's own.
- `<id>`: 12 base32 characters naming the record (outside address, alias, expiry) in the reply table. It is
  an HMAC of alias and outside address, so a thread keeps one reply address and nothing in the address
  spells out whom it stands for; a new signing key gives new ids after a rotation.
- `<mac>`: 16 base32 characters (80 bits) of HMAC-SHA256 over alias and id: without the key nobody can
  make a valid address, and changing the alias of a valid one (another alias's token) invalidates it.

Lower-case base32 throughout: some mail systems lower-case local parts, and the check lower-cases first.
`+r-` plus 12 + 1 + 16 characters is 32 octets, leaving 32 for the alias within a local part's 64 octets;
a longer alias gets no reply address (direct replies).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

ID_LENGTH = 12
MAC_LENGTH = 16
MARK = "r-"
MAX_LOCAL = 64
_SUFFIX = re.compile(rf"^{MARK}(?P<id>[a-z2-7]{{{ID_LENGTH}}})-(?P<mac>[a-z2-7]{{{MAC_LENGTH}}})$")
# Domain separation: the same key also signs download links (forwarder/links.py).
_ID_CONTEXT = b"reply-address-id\0"
_MAC_CONTEXT = b"reply-address-mac\0"


@dataclass(frozen=True, slots=True)
class ReplyToken:
    """The alias and the token parts of a recipient that has the reply address form (not yet verified)."""

    alias: str
    reply_id: str
    mac: str


def _digest(key: bytes, context: bytes, *parts: str) -> str:
    message = context + b"\0".join(part.encode() for part in parts)
    return base64.b32encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii").lower()


def reply_id(key: bytes, alias: str, outside_address: str) -> str:
    """The record id of (alias, outside sender): the same for every mail of that sender to that alias."""
    return _digest(key, _ID_CONTEXT, alias.lower(), outside_address.lower())[:ID_LENGTH]


def reply_mac(key: bytes, alias: str, rid: str) -> str:
    """The truncated HMAC that makes `<alias>+r-<rid>-...` unforgeable and bound to the alias."""
    return _digest(key, _MAC_CONTEXT, alias.lower(), rid)[:MAC_LENGTH]


def fits(alias: str) -> bool:
    """Whether a reply address for `alias` fits in a local part (64 octets)."""
    return len(alias) + 1 + len(MARK) + ID_LENGTH + 1 + MAC_LENGTH <= MAX_LOCAL


def format_reply_address(key: bytes, alias: str, rid: str, domain: str) -> str:
    """`<alias>+r-<rid>-<mac>@<domain>`, signed with `key`."""
    if not fits(alias):
        raise ValueError(f"alias {alias!r} is too long for a reply address")
    return f"{alias.lower()}+{MARK}{rid}-{reply_mac(key, alias, rid)}@{domain}"


def parse_reply_address(recipient: str, domain: str) -> ReplyToken | None:
    """The token parts when `recipient` is `<alias>+r-<id>-<mac>@<domain>` (any case), else None."""
    local, at, recipient_domain = recipient.strip().lower().rpartition("@")
    if not at or recipient_domain.rstrip(".") != domain:
        return None
    alias, plus, suffix = local.partition("+")
    match = _SUFFIX.match(suffix) if plus and alias else None
    if match is None:
        return None
    return ReplyToken(alias, match["id"], match["mac"])


def verify_token(token: ReplyToken, keys: Sequence[bytes]) -> bool:
    """True when one of `keys` signed the token for its alias (constant-time comparison)."""
    return any(hmac.compare_digest(token.mac, reply_mac(key, token.alias, token.reply_id)) for key in keys)
