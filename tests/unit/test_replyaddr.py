"""Reply addresses: format, parsing, signature, binding to the alias, length."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forwarder.mail.replyaddr import (
    MAX_LOCAL,
    fits,
    format_reply_address,
    parse_reply_address,
    reply_id,
    verify_token,
)
from forwarder.mail.routing import alias_of, is_valid_address

DOMAIN = "dev.aws-educate.tw"
KEY = b"k" * 64
OTHER_KEY = b"o" * 64


def address(alias: str = "team", outside: str = "carol@customer.example", key: bytes = KEY) -> str:
    return format_reply_address(key, alias, reply_id(key, alias, outside), DOMAIN)


def test_reply_address_routes_to_its_alias_and_verifies() -> None:
    # GIVEN the reply address of (team, carol)
    made = address()
    # THEN it is a valid address that plus-addressing routes to team, and its token verifies with the key
    assert is_valid_address(made)
    assert alias_of(made, DOMAIN) == "team"
    token = parse_reply_address(made, DOMAIN)
    assert token is not None and token.alias == "team"
    assert verify_token(token, [KEY])
    assert not verify_token(token, [OTHER_KEY])
    assert verify_token(token, [OTHER_KEY, KEY])  # the previous key after a rotation


def test_reply_address_is_stable_per_alias_and_sender_and_hides_the_sender() -> None:
    assert address() == address(outside="Carol@Customer.example")
    assert address() != address(outside="dave@customer.example")
    assert address("team").split("+")[1] != address("tech").split("+")[1]
    assert "carol" not in address() and "customer" not in address()


def test_reply_address_is_case_insensitive() -> None:
    token = parse_reply_address(address().upper(), DOMAIN)
    assert token is not None and verify_token(token, [KEY])


def test_token_moved_to_another_alias_does_not_verify() -> None:
    moved = address("team").replace("team+", "tech+", 1)
    token = parse_reply_address(moved, DOMAIN)
    assert token is not None and token.alias == "tech"
    assert not verify_token(token, [KEY])


@pytest.mark.parametrize(
    "recipient",
    [
        f"team@{DOMAIN}",
        f"team+news@{DOMAIN}",
        f"team+r-abc-def@{DOMAIN}",
        f"+r-aaaaaaaaaaaa-bbbbbbbbbbbbbbbb@{DOMAIN}",
        "team+r-aaaaaaaaaaaa-bbbbbbbbbbbbbbbb@other.example",
        f"team+r-aaaaaaaaaaa1-bbbbbbbbbbbbbbbb@{DOMAIN}",
    ],
)
def test_parse_reply_address_ignores_other_addresses(recipient: str) -> None:
    assert parse_reply_address(recipient, DOMAIN) is None


def test_long_alias_does_not_fit() -> None:
    assert fits("a" * 32) and not fits("a" * 33)
    assert len(address("a" * 32).partition("@")[0]) == MAX_LOCAL
    with pytest.raises(ValueError, match="too long"):
        address("a" * 33)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", min_size=16, max_size=16))
def test_random_mac_never_verifies(mac: str) -> None:
    made = address()
    forged = made.partition("@")[0].rpartition("-")[0] + "-" + mac + "@" + DOMAIN
    token = parse_reply_address(forged, DOMAIN)
    assert token is not None
    assert verify_token(token, [KEY]) == (forged == made)
