"""The pure parts of send-as: the SMTP password, user names, policies, and the plans alias edits make."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from forwarder_ops.aliases import Change
from forwarder_ops.sendas import (
    Grant,
    GrantChange,
    plan_revocations,
    policy_document,
    read_policy,
    stale_grants,
    user_name,
)
from forwarder_ops.smtp_password import smtp_password, smtp_server
from tests.cli.test_sendas import documented_password

IAM_USER_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
SECRET = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", min_size=40, max_size=40)


@given(secret=SECRET, region=st.sampled_from(["us-east-1", "us-west-1", "eu-central-2", "ap-northeast-1"]))
def test_smtp_password_equals_the_sigv4_key_chain_derivation(secret: str, region: str) -> None:
    # GIVEN any 40-character secret and a region; THEN our derivation equals botocore's SigV4 chain's
    assert smtp_password(secret, region) == documented_password(secret, region)


def test_smtp_password_is_version_4_and_per_region() -> None:
    # GIVEN the IAM documentation's example secret
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

    password = smtp_password(secret, "us-east-1")

    # THEN 33 bytes (version byte 0x04 and a SHA-256), base64, and another region gives another password
    raw = base64.b64decode(password)
    assert raw[0] == 0x04 and len(raw) == 33
    assert password != smtp_password(secret, "ap-northeast-1")
    assert smtp_server("ap-northeast-1") == "email-smtp.ap-northeast-1.amazonaws.com"


@given(environment=st.sampled_from(["dev", "prod", "local-dev"]), member=st.emails())
def test_user_name_is_a_valid_iam_name(environment: str, member: str) -> None:
    assert IAM_USER_NAME.match(user_name(environment, member))


def test_user_name_is_unique_per_member_and_environment_and_ignores_case() -> None:
    long = "a" * 60 + "@example.org"

    assert user_name("dev", "Alice@Gmail.com") == user_name("dev", "alice@gmail.com")
    assert user_name("dev", "alice@gmail.com") != user_name("prod", "alice@gmail.com")
    # sanitising and cutting make these look alike; the hash keeps them apart
    assert user_name("dev", "a!b@example.org") != user_name("dev", "a#b@example.org")
    assert user_name("dev", long) != user_name("dev", long.replace("@", "b@"))
    assert len(user_name("local-dev", long)) == 64


def test_read_policy_reads_back_what_policy_document_writes_even_url_encoded() -> None:
    document = policy_document(["arn:aws:ses:r:1:identity/d"], ["tech@d", "team@d"])

    assert read_policy(document) == (("arn:aws:ses:r:1:identity/d",), ("team@d", "tech@d"))
    assert read_policy(quote(json.dumps(document))) == read_policy(document)


def grant(member: str, *aliases: str) -> Grant:
    return Grant(member, f"user-{member}", tuple(f"{a}@d" for a in aliases), ("arn",))


def test_plan_revocations_takes_only_the_aliases_a_member_leaves() -> None:
    # GIVEN alice with team and tech, bob with team, carol with tech
    grants = [grant("alice@gmail.com", "team", "tech"), grant("bob@gmail.com", "team"), grant("carol@x.org", "tech")]
    # WHEN Alice (any case) and Bob leave team, and tech gains a member
    changes = [
        Change("team", ("Alice@Gmail.com", "bob@gmail.com", "dave@x.org"), ("dave@x.org",)),
        Change("tech", ("alice@gmail.com", "carol@x.org"), ("alice@gmail.com", "carol@x.org", "erin@x.org")),
    ]

    planned = plan_revocations(grants, changes)

    # THEN alice keeps tech, bob's grant goes, carol is untouched
    assert [(p.grant.member, p.revoked, p.remaining, p.deletes_user) for p in planned] == [
        ("alice@gmail.com", ("team",), ("tech@d",), False),
        ("bob@gmail.com", ("team",), (), True),
    ]


def test_grant_change_of_a_user_without_a_policy_says_so() -> None:
    # GIVEN a user left without a policy (a grant that failed half-way); WHEN revoking it whole
    change = GrantChange(grant("alice@gmail.com"), ())

    # THEN the line says it has no alias, not "may no longer send as : ..."
    assert change.deletes_user
    assert change.line() == "  - alice@gmail.com  has no alias granted: its IAM user and keys go"


def test_plan_revocations_of_a_deleted_alias_revokes_it_from_every_member() -> None:
    planned = plan_revocations([grant("bob@gmail.com", "team")], [Change("team", ("bob@gmail.com",), ())])

    assert [p.deletes_user for p in planned] == [True]


def test_stale_grants_names_aliases_the_member_is_no_longer_in() -> None:
    grants = [grant("alice@gmail.com", "team", "tech"), grant("bob@gmail.com", "team")]
    aliases = {"team": ["Bob@gmail.com"], "tech": ["alice@gmail.com"]}

    assert [(g.member, outlived) for g, outlived in stale_grants(grants, aliases)] == [("alice@gmail.com", ["team"])]
