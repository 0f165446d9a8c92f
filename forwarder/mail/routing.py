"""Routing: which members receive a message, and under which alias, from the envelope recipients."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
_ADDRESS = re.compile(rf"^(?P<local>{_LOCAL})@(?P<domain>{_DOMAIN})\Z")
_MAX_ADDRESS = 254
_MAX_LOCAL = 64
# An alias name: the local part of an alias address, as the alias lists in SSM name it (`team`, the
# catch-all `_catchall`); lower case, at most a local part's 64 octets, a dot-atom (RFC 5322: no dot first, last
# or twice in a row), since the forwards are sent from it.
ALIAS_NAME = re.compile(r"^(?=.{1,64}\Z)[a-z0-9_\-]+(?:\.[a-z0-9_\-]+)*\Z")


@dataclass(frozen=True, slots=True)
class Delivery:
    """The members who get the message under one alias (the alias names the From address)."""

    alias: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SkippedMember:
    """A member entry that is not sent to, and why."""

    alias: str
    member: str
    reason: str


@dataclass(frozen=True, slots=True)
class Routing:
    """The result of routing one message."""

    deliveries: tuple[Delivery, ...]
    unknown: tuple[str, ...]
    foreign: tuple[str, ...]
    skipped: tuple[SkippedMember, ...]

    @property
    def member_count(self) -> int:
        return sum(len(delivery.members) for delivery in self.deliveries)


def combine(routings: Iterable[Routing]) -> Routing:
    """One routing for a message handled in parts (a relayed reply and the recipients forwarded beside it)."""
    parts = list(routings)
    return Routing(
        deliveries=tuple(d for r in parts for d in r.deliveries),
        unknown=tuple(u for r in parts for u in r.unknown),
        foreign=tuple(f for r in parts for f in r.foreign),
        skipped=tuple(s for r in parts for s in r.skipped),
    )


def is_valid_address(address: str) -> bool:
    """True for a plain ASCII `local@domain` address that SES can send to."""
    match = _ADDRESS.match(address)
    return match is not None and len(address) <= _MAX_ADDRESS and len(match["local"]) <= _MAX_LOCAL


NOT_AN_ADDRESS = "not a valid address"
ON_OUR_DOMAIN = "on the forwarding domain (loop)"


def skip_reason(member: str, domain: str | None) -> str | None:
    """Why the forwarder never sends to `member`: not a valid address, or on `domain` itself (a loop)."""
    if not is_valid_address(member):
        return NOT_AN_ADDRESS
    if domain and member.rpartition("@")[2].lower() == domain:
        return ON_OUR_DOMAIN
    return None


def split_members(value: str) -> list[str]:
    """The entries of an alias value: comma-separated, white space around each ignored."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def alias_of(recipient: str, domain: str) -> str | None:
    """The alias a recipient on `domain` addresses (`Team+x@domain` -> `team`), else None."""
    local, at, recipient_domain = recipient.strip().rpartition("@")
    if not at or not local or recipient_domain.lower().rstrip(".") != domain:
        return None
    return local.split("+", 1)[0].lower() or None


def resolve_routes(
    recipients: Iterable[str],
    aliases: Mapping[str, str],
    domain: str,
    catch_all: str | None = None,
) -> Routing:
    """Route envelope recipients to alias members.

    `aliases` maps a lower-case alias name to its raw value (comma-separated members). A recipient
    without an alias goes to the `catch_all` alias when that exists, under its own local part.
    Each member is delivered once, under the first addressed alias that lists it; members that are
    not valid addresses or that live on `domain` itself (a loop) are skipped.
    """
    deliveries: list[Delivery] = []
    unknown: list[str] = []
    foreign: list[str] = []
    skipped: list[SkippedMember] = []
    seen_members: set[str] = set()
    seen_aliases: set[str] = set()

    for recipient in recipients:
        alias = alias_of(recipient, domain)
        if alias is None:
            foreign.append(recipient)
            continue
        value = aliases.get(alias)
        if value is None and catch_all is not None:
            value = aliases.get(catch_all)
        if value is None:
            unknown.append(recipient)
            continue
        if alias in seen_aliases:
            continue
        seen_aliases.add(alias)
        members: list[str] = []
        for member in split_members(value):
            key = member.lower()
            if reason := skip_reason(member, domain):
                skipped.append(SkippedMember(alias, member, reason))
            elif key not in seen_members:
                seen_members.add(key)
                members.append(member)
        if members:
            deliveries.append(Delivery(alias, tuple(members)))
    return Routing(tuple(deliveries), tuple(unknown), tuple(foreign), tuple(skipped))


def without(routing: Routing, reached: Collection[str]) -> Routing:
    """`routing` less the members in `reached` (lower case), and the deliveries left with none: a message
    handled in parts (a relayed reply, then the aliases addressed beside it) reaches each member once."""
    deliveries = []
    for delivery in routing.deliveries:
        members = tuple(member for member in delivery.members if member.lower() not in reached)
        if members:
            deliveries.append(Delivery(delivery.alias, members))
    return replace(routing, deliveries=tuple(deliveries))


def batch(members: tuple[str, ...], size: int) -> list[tuple[str, ...]]:
    """Split members into consecutive batches of at most `size` (SES: 50 recipients per send)."""
    return [members[start : start + size] for start in range(0, len(members), size)]
