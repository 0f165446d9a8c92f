"""`forwarder links rotate-key`: a new random link key, the previous one still accepted, nothing printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forwarder.keyring import read_keyring
from tests.cli.conftest import STACK, Cli, client

OLD_KEY = "o" * 64


@pytest.fixture
def secret(aws: None, workdir: Path) -> str:
    """A deployed stack whose LinkSecretArn output names the link key's secret (moto)."""
    arn = client("secretsmanager").create_secret(Name="LinkSecret-dev", SecretString=OLD_KEY)["ARN"]
    template = {
        "Parameters": {"Secret": {"Type": "String"}},
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"LinkSecretArn": {"Value": {"Ref": "Secret"}}},
    }
    client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "Secret", "ParameterValue": arn}],
    )
    return str(arn)


def value(secret: str, stage: str) -> str:
    return str(client("secretsmanager").get_secret_value(SecretId=secret, VersionStage=stage)["SecretString"])


def test_links_rotate_key_puts_a_new_random_key_and_keeps_the_previous(cli: Cli, secret: str) -> None:
    # GIVEN a deployed environment and its link key
    # WHEN the key is rotated
    result = cli("links", "rotate-key", "--config-env", "dev", "--yes")
    # THEN the secret has a new current key, as long as the generated one, and the old key is the previous one
    assert result.code == 0, result.err
    new = value(secret, "AWSCURRENT")
    assert new != OLD_KEY
    assert len(new) == 64
    assert value(secret, "AWSPREVIOUS") == OLD_KEY
    # AND the functions' key ring signs with the new key and still accepts the old one
    ring = read_keyring(client("secretsmanager"), secret)
    assert ring.accepted == (new.encode(), OLD_KEY.encode())
    # AND the key is printed nowhere
    assert new not in result.out + result.err
    assert "rotated: the current version of" in result.out
    # AND a second rotation within the grace period warns that it ends the oldest key
    again = cli("links", "rotate-key", "--config-env", "dev", "--yes")
    assert "rotating now ends the links and reply addresses signed with that one" in again.err
    assert value(secret, "AWSPREVIOUS") == new


def test_links_rotate_key_asks_first(cli: Cli, secret: str) -> None:
    # GIVEN no --yes: at a terminal the operator is asked, and "no" changes nothing (exit 1)
    declined = cli("links", "rotate-key", "--config-env", "dev", stdin="n\n", tty=True)
    assert declined.code == 1
    assert value(secret, "AWSCURRENT") == OLD_KEY
    # AND without a terminal nobody can confirm: one line, exit 2
    unattended = cli("links", "rotate-key", "--config-env", "dev")
    assert unattended.code == 2
    assert unattended.err == "forwarder: stdin is not a terminal, so nobody can confirm: re-run with --yes to apply\n"
    assert value(secret, "AWSCURRENT") == OLD_KEY


def test_links_rotate_key_of_a_stack_without_the_output_says_to_redeploy(cli: Cli, aws: None, workdir: Path) -> None:
    client("cloudformation").create_stack(
        StackName=STACK, TemplateBody=json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    )
    result = cli("links", "rotate-key", "--config-env", "dev", "--yes")
    assert result.code == 2
    assert result.err.startswith(f"forwarder: stack {STACK} has no output LinkSecretArn: redeploy it")


def test_links_rotate_key_has_help(cli: Cli) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli("links", "rotate-key", "--help")
    assert exit_.value.code == 0


def test_links_rotate_key_warns_while_reply_addresses_of_the_key_before_may_still_live(cli: Cli, secret: str) -> None:
    import time

    from forwarder_ops.linkkeys import previous_key_age

    # GIVEN a key rotated once
    assert cli("links", "rotate-key", "--config-env", "dev", "--yes").code == 0
    sm = client("secretsmanager")
    # WHEN another rotation is considered 60 days on THEN it would still end something: the reply addresses
    # signed with the first key live 90 days (their records), though its links (30 days) are over
    sixty = previous_key_age(sm, secret, now=time.time() + 60 * 86_400)
    assert sixty is not None and round(sixty / 86_400) == 60
    # WHEN 91 days on THEN nothing signed with the first key is still accepted: no warning
    assert previous_key_age(sm, secret, now=time.time() + 91 * 86_400) is None
