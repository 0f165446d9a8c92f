"""Routing by envelope recipients: aliases, plus-addressing, catch-all, dedup, invalid and looping members."""

from __future__ import annotations

import pytest

from forwarder.mail.routing import ALIAS_NAME, alias_of, batch, is_valid_address, resolve_routes, split_members, without

DOMAIN = "dev.aws-educate.tw"


@pytest.mark.parametrize(
    ("recipient", "alias"),
    [
        ("team@dev.aws-educate.tw", "team"),
        ("Team@DEV.aws-educate.tw", "team"),
        ("team+github@dev.aws-educate.tw", "team"),
        ("team+a+b@dev.aws-educate.tw", "team"),
        ("team@aws-educate.tw", None),
        ("team@evil-dev.aws-educate.tw", None),
        ("not-an-address", None),
        ("+tag@dev.aws-educate.tw", None),
    ],
)
def test_alias_of_recipient(recipient: str, alias: str | None) -> None:
    assert alias_of(recipient, DOMAIN) == alias


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("alice@gmail.com", True),
        ("a.b+c@example.co.uk", True),
        ("alice@localhost", False),
        ("alice", False),
        ("alice@@example.com", False),
        ("al ice@example.com", False),
        ('"x"@example.com', False),
        ("alice@example.com\r\nBcc: x@y.com", False),
        ("alice@example.com\n", False),  # `$` alone matched before a last newline
        ("a" * 65 + "@example.com", False),
        ("alice@-example.com", False),
    ],
)
def test_is_valid_address(address: str, valid: bool) -> None:
    assert is_valid_address(address) is valid


def test_split_members_ignores_whitespace_and_empty_entries() -> None:
    assert split_members(" a@x.org ,b@y.org,, \n c@z.org ") == ["a@x.org", "b@y.org", "c@z.org"]


def test_resolve_routes_unions_aliases_and_sends_each_member_once() -> None:
    # GIVEN two aliases sharing a member, the shared one spelled in another case
    aliases = {"mkt": "x@example.com, shared@example.com", "event": "SHARED@example.com, y@example.com"}
    # WHEN a mail addresses both
    routing = resolve_routes(["mkt@dev.aws-educate.tw", "event@dev.aws-educate.tw"], aliases, DOMAIN)
    # THEN each member appears once, under the first alias that lists them
    assert [(d.alias, d.members) for d in routing.deliveries] == [
        ("mkt", ("x@example.com", "shared@example.com")),
        ("event", ("y@example.com",)),
    ]
    assert routing.member_count == 3


def test_resolve_routes_same_alias_twice_via_plus_addressing() -> None:
    routing = resolve_routes(["team@dev.aws-educate.tw", "team+x@dev.aws-educate.tw"], {"team": "a@x.org"}, DOMAIN)
    assert [(d.alias, d.members) for d in routing.deliveries] == [("team", ("a@x.org",))]


def test_resolve_routes_skips_invalid_and_own_domain_members() -> None:
    routing = resolve_routes(
        ["team@dev.aws-educate.tw"], {"team": "good@x.org, bad address, loop@dev.aws-educate.tw"}, DOMAIN
    )
    assert routing.deliveries[0].members == ("good@x.org",)
    assert [(s.member, s.reason) for s in routing.skipped] == [
        ("bad address", "not a valid address"),
        ("loop@dev.aws-educate.tw", "on the forwarding domain (loop)"),
    ]


def test_resolve_routes_unknown_and_foreign_recipients() -> None:
    routing = resolve_routes(["nobody@dev.aws-educate.tw", "x@other.org"], {"team": "a@x.org"}, DOMAIN)
    assert routing.deliveries == ()
    assert routing.unknown == ("nobody@dev.aws-educate.tw",)
    assert routing.foreign == ("x@other.org",)


def test_resolve_routes_catch_all_keeps_the_addressed_local_part() -> None:
    routing = resolve_routes(["random@dev.aws-educate.tw"], {"_catchall": "ops@x.org"}, DOMAIN, catch_all="_catchall")
    assert [(d.alias, d.members) for d in routing.deliveries] == [("random", ("ops@x.org",))]


def test_resolve_routes_alias_with_no_valid_member_is_not_a_delivery() -> None:
    routing = resolve_routes(["team@dev.aws-educate.tw"], {"team": "nonsense"}, DOMAIN)
    assert routing.deliveries == ()
    assert routing.unknown == ()
    assert len(routing.skipped) == 1


def test_batch_splits_into_fifties() -> None:
    members = tuple(f"m{i}@x.org" for i in range(120))
    batches = batch(members, 50)
    assert [len(b) for b in batches] == [50, 50, 20]
    assert sum(batches, ()) == members


def test_without_leaves_out_members_already_reached_and_aliases_left_empty() -> None:
    # GIVEN a routing of two aliases, and the members another part of the mail reached (lower case)
    routing = resolve_routes(
        ["tech@dev.aws-educate.tw", "ops@dev.aws-educate.tw"],
        {"tech": "Alice@x.org, erin@x.org", "ops": "bob@x.org"},
        DOMAIN,
    )
    # WHEN those are left out
    rest = without(routing, {"alice@x.org", "bob@x.org"})
    # THEN only the others remain, under their alias; an alias with nobody left has no delivery
    assert [(d.alias, d.members) for d in rest.deliveries] == [("tech", ("erin@x.org",))]


@pytest.mark.parametrize("name", ["team", "_catchall", "yating.chen"])
def test_alias_name_pattern_takes_a_name_and_nothing_after_it(name: str) -> None:
    # `$` alone matched before a last newline: `_catchall\n` (FORWARDER_CATCH_ALL_ALIAS from a file) passed the
    # settings check and then named no alias
    assert ALIAS_NAME.match(name)
    assert not ALIAS_NAME.match(name + "\n")
