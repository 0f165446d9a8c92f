"""Alias members on the SES account-level suppression list: they receive nothing, silently.

SES accepts a send to a suppressed address and then reports a bounce with the subtype
`OnAccountSuppressionList` instead of delivering; the list is per account and region. `doctor` lists
the suppressed members of an environment's aliases; `forwarder suppression remove ADDRESS` takes one
off the list (after the operator confirms that the address works again).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from forwarder.mail.routing import skip_reason
from forwarder_ops.errors import CommandError, aws_code

if TYPE_CHECKING:
    from forwarder_ops.doctor import Check, Doctor

_REASONS = {"BOUNCE": "hard bounce", "COMPLAINT": "complaint"}


@dataclass(frozen=True, slots=True)
class Suppressed:
    """One suppressed address: why SES put it there and when."""

    address: str
    reason: str
    since: str

    def line(self) -> str:
        return f"{self.address} ({_REASONS.get(self.reason, self.reason.lower())} since {self.since})"


def _day(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, datetime) else str(value or "?")[:10]


def lookup(sesv2: Any, address: str) -> Suppressed | None:
    """The suppression entry of `address` in the client's region, or None when it is not suppressed."""
    try:
        found = sesv2.get_suppressed_destination(EmailAddress=address)["SuppressedDestination"]
    except Exception as error:
        if aws_code(error) == "NotFoundException":
            return None
        raise
    return Suppressed(address, str(found.get("Reason", "?")), _day(found.get("LastUpdateTime")))


# Up to this many members are looked up one by one (GetSuppressedDestination); more are matched against
# the listed suppression list, unless that is longer than _LIST_PAGES pages (an account shared with bulk
# senders), where one look-up per member is again the cheaper way.
_GET_EACH = 20
_LIST_PAGES = 10


def _member_addresses(aliases: dict[str, list[str]], domain: str | None) -> dict[str, list[str]]:
    """Member -> its aliases, for the members the forwarder sends to (the others are skipped anyway)."""
    members: dict[str, list[str]] = {}
    for alias, listed in aliases.items():
        for member in listed:
            if skip_reason(member, domain) is None:
                members.setdefault(member.lower(), []).append(alias)
    return members


def _listed(sesv2: Any) -> dict[str, Suppressed] | None:
    """The whole suppression list of the region, or None when it is longer than `_LIST_PAGES` pages."""
    found: dict[str, Suppressed] = {}
    request: dict[str, Any] = {"PageSize": 1000}
    for _ in range(_LIST_PAGES):
        page = sesv2.list_suppressed_destinations(**request)
        for summary in page.get("SuppressedDestinationSummaries", []):
            address = str(summary["EmailAddress"]).lower()
            found[address] = Suppressed(address, str(summary.get("Reason", "?")), _day(summary.get("LastUpdateTime")))
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]
    return None


def suppressed(sesv2: Any, members: Iterable[str]) -> list[Suppressed]:
    """The entries of the suppression list among `members`, in address order."""
    wanted = sorted({m.lower() for m in members})
    listed = _listed(sesv2) if len(wanted) > _GET_EACH else None
    if listed is not None:
        return [listed[m] for m in wanted if m in listed]
    return [entry for m in wanted if (entry := lookup(sesv2, m)) is not None]


def check_suppressed_members(doctor: Doctor) -> Check:
    """The doctor's row: alias members on the account-level suppression list of the environment's region."""
    from forwarder_ops.doctor import Check, Status

    members = _member_addresses(doctor._aliases(), doctor.domain)
    entries = suppressed(doctor.target.client("sesv2"), members)
    if not entries:
        return Check(
            "suppressed members",
            Status.OK,
            f"none of {len(members)} members is on the suppression list of {doctor.region}",
        )
    shown = "; ".join(f"{e.line()} in {', '.join(members[e.address])}" for e in entries)
    env = doctor._env_flag
    return Check(
        "suppressed members",
        Status.FAIL,
        f"{len(entries)} member(s) receive nothing (SES suppresses them in {doctor.region}): {shown}",
        "once an address works again (mailbox fixed, complaint resolved with the member): "
        + "; ".join(f"`forwarder suppression remove {e.address}{env}`" for e in entries)
        + "; otherwise remove it from the alias (`forwarder aliases remove ALIAS ADDRESS`)",
    )


# command ----------------------------------------------------------------------------------------


def add_parser(commands: Any, environment: argparse.ArgumentParser) -> None:
    suppression = commands.add_parser(
        "suppression",
        help="the SES account-level suppression list: list it, take an address off it",
        description="SES does not deliver to an address on the account-level suppression list of a region "
        "(it reports a bounce with the subtype OnAccountSuppressionList). Take an address off the list only "
        "once it works again: a second hard bounce puts it back and counts against the account's reputation.",
    ).add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = suppression.add_parser("list", parents=[environment], help="suppressed alias members")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_list)

    remove = suppression.add_parser(
        "remove", parents=[environment], help="take an address off the suppression list (asks first)"
    )
    remove.add_argument("address", metavar="ADDRESS", help="the suppressed address, e.g. bob@gmail.com")
    remove.add_argument("-y", "--yes", action="store_true", help="remove without asking")
    remove.set_defaults(func=cmd_remove)


def cmd_list(args: argparse.Namespace) -> int:
    from forwarder_ops.aliases import AliasStore
    from forwarder_ops.cli import OK, PROBLEM, _target
    from forwarder_ops.console import print_json

    target = _target(args)
    path = target.alias_path
    members = _member_addresses(AliasStore(target.client("ssm"), path).read(), target.domain)
    entries = suppressed(target.client("sesv2"), members)
    if args.json:
        found = {e.address: {"reason": e.reason, "since": e.since, "aliases": members[e.address]} for e in entries}
        print_json({"region": target.region, "alias_path": path, "members": len(members), "suppressed": found})
    elif not members:
        # No member was checked: "none is suppressed" would reassure about a wrong path or region.
        print(f"no alias members under {path} in {target.region}: nothing to check (is it the right environment?)")
    elif not entries:
        print(f"none of {len(members)} alias members is on the suppression list of {target.region}")
    else:
        for entry in entries:
            print(f"{entry.line()}  in {', '.join(members[entry.address])}")
    return PROBLEM if entries else OK


def cmd_remove(args: argparse.Namespace) -> int:
    from forwarder_ops.cli import OK, PROBLEM, _target
    from forwarder_ops.console import Declined, confirm

    address = args.address.strip().lower()
    if skip_reason(address, None) is not None:
        raise CommandError(f"{args.address!r} is not an e-mail address")
    target = _target(args)
    sesv2 = target.client("sesv2")
    entry = lookup(sesv2, address)
    if entry is None:
        print(f"{address} is not on the suppression list of {target.region}: nothing to do")
        return OK
    print(f"{entry.line()} is on the suppression list of {target.region}")
    try:
        confirm(
            f"take {address} off the list? SES will send to it again; a new hard bounce puts it back",
            assume_yes=args.yes,
        )
    except Declined:
        print("nothing changed")
        return PROBLEM
    sesv2.delete_suppressed_destination(EmailAddress=address)
    print(f"removed {address} from the suppression list of {target.region}")
    return OK
