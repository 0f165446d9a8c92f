"""Signed download links: valid until they expire, useless when forged or altered."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from forwarder.links import LinkError, sign_link, verify_link

KEY = b"k" * 64
NOW = 1_800_000_000


def query(link: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(link).query))


def test_signed_link_verifies_until_it_expires() -> None:
    link = sign_link("https://dl.example.on.aws/", KEY, "o3vrnil0e2ic28", 7 * 86_400, now=NOW)
    assert link.startswith("https://dl.example.on.aws/?m=o3vrnil0e2ic28&e=")
    token = verify_link(query(link), KEY, now=NOW + 7 * 86_400 - 1)
    assert token.message_id == "o3vrnil0e2ic28"
    with pytest.raises(LinkError) as expired:
        verify_link(query(link), KEY, now=NOW + 7 * 86_400 + 1)
    assert expired.value.status == 410


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"m": "another-message"}, 403),
        ({"e": str(NOW + 365 * 86_400)}, 403),
        ({"s": "0" * 64}, 403),
        ({"m": "../../etc/passwd"}, 400),
        ({"e": "soon"}, 400),
        ({"s": ""}, 400),
    ],
)
def test_altered_links_are_refused(change: dict[str, str], status: int) -> None:
    params = query(sign_link("https://dl.example/", KEY, "msg-1", 86_400, now=NOW))
    with pytest.raises(LinkError) as error:
        verify_link({**params, **change}, KEY, now=NOW)
    assert error.value.status == status


def test_link_signed_with_another_key_is_refused() -> None:
    params = query(sign_link("https://dl.example/", b"other key", "msg-1", 86_400, now=NOW))
    with pytest.raises(LinkError):
        verify_link(params, KEY, now=NOW)


def test_sign_link_refuses_a_message_id_that_is_not_one() -> None:
    with pytest.raises(ValueError, match="message id"):
        sign_link("https://dl.example/", KEY, "a/b", 60)
