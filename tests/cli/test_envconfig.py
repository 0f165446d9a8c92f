"""samconfig.toml environments and the flags that override them."""

from __future__ import annotations

from pathlib import Path

import pytest

from forwarder_ops.envconfig import load_samconfig, parse_overrides, resolve_target
from forwarder_ops.errors import CommandError
from tests.cli.conftest import HERE


@pytest.mark.parametrize(
    "value",
    [
        'EnvironmentName=dev DomainName=dev.aws-educate.tw SubjectPrefix="[dev forwarder]"',
        ["EnvironmentName=dev", "DomainName=dev.aws-educate.tw", "SubjectPrefix=[dev forwarder]"],
        "ParameterKey=EnvironmentName,ParameterValue=dev ParameterKey=DomainName,ParameterValue=dev.aws-educate.tw "
        '"ParameterKey=SubjectPrefix,ParameterValue=[dev forwarder]"',
    ],
    ids=["string", "list", "cloudformation"],
)
def test_parse_overrides_accepts_each_form_sam_accepts(value: str | list[str]) -> None:
    assert parse_overrides(value) == {
        "EnvironmentName": "dev",
        "DomainName": "dev.aws-educate.tw",
        "SubjectPrefix": "[dev forwarder]",
    }


def test_parse_overrides_refuses_an_item_without_a_value() -> None:
    with pytest.raises(CommandError, match="'DomainName' is not Key=Value"):
        parse_overrides("EnvironmentName=dev DomainName")


def test_load_samconfig_merges_global_and_deploy_parameters() -> None:
    config = load_samconfig(HERE / "samconfig.toml", "dev")

    # deploy parameters win over the environment's global ones (region us-west-2 there)
    assert config.region == "us-east-1"
    assert config.stack_name == "email-forwarder-dev"
    assert config.parameters["DomainName"] == "dev.aws-educate.tw"


def test_load_samconfig_of_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "samconfig.toml"
    path.write_text("[dev.deploy.parameters\n")

    with pytest.raises(CommandError, match="is not valid TOML"):
        load_samconfig(path, "dev")


def test_flags_win_over_samconfig() -> None:
    target = resolve_target(
        "dev",
        HERE / "samconfig.toml",
        region="eu-west-1",
        stack_name="other-stack",
        alias_path="/elsewhere/aliases/",
        domain="Other.Example.ORG.",
    )

    assert (target.region, target.stack_name) == ("eu-west-1", "other-stack")
    assert target.alias_path == "/elsewhere/aliases"
    assert target.domain == "other.example.org"


def test_default_alias_path_follows_the_environment_name() -> None:
    target = resolve_target("local-dev", HERE / "samconfig.toml")

    assert target.alias_path == "/email-forwarder/local-dev/aliases"
    assert target.environment_name == "local-dev"
