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


def test_advice_flags_carry_the_region_and_stack_given_over_the_environments() -> None:
    # GIVEN dev's section (us-east-1) with the region overridden, and the stack given as the section names it
    moved = resolve_target("dev", HERE / "samconfig.toml", region="us-west-2")
    same = resolve_target("dev", HERE / "samconfig.toml", region="us-east-1", stack_name="email-forwarder-dev")
    renamed = resolve_target("dev", HERE / "samconfig.toml", stack_name="other-stack")
    # THEN an advice names the environment and what was given over it, so that it acts where the command looked
    assert moved.command_flags == " --config-env dev --region us-west-2"
    assert same.command_flags == " --config-env dev"
    assert renamed.command_flags == " --config-env dev --stack-name other-stack"
    # AND without an environment, the region and stack themselves
    assert (
        resolve_target(None, None, region="eu-west-1", stack_name="s").command_flags
        == " --region eu-west-1 --stack-name s"
    )


def test_default_alias_path_follows_the_environment_name() -> None:
    target = resolve_target("local-dev", HERE / "samconfig.toml")

    assert target.alias_path == "/email-forwarder/local-dev/aliases"
    assert target.environment_name == "local-dev"


def test_environment_wins_over_samconfig_and_flags_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN FORWARDER_OPS_* variables for the stack and the domain, and a flag for the domain
    monkeypatch.setenv("FORWARDER_OPS_STACK_NAME", "stack-from-env")
    monkeypatch.setenv("FORWARDER_OPS_DOMAIN", "env.example.org")
    # WHEN the target is resolved for a samconfig environment
    target = resolve_target("dev", HERE / "samconfig.toml", domain="flag.example.org")
    # THEN each setting comes from the highest layer that gives it
    assert target.stack_name == "stack-from-env"  # environment over samconfig
    assert target.domain == "flag.example.org"  # flag over environment
    assert target.region == "us-east-1"  # samconfig, as nothing above gives one


def test_samconfig_region_wins_over_the_aws_cli_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the AWS CLI's region in the shell (it is not one of the target's own variables)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    # WHEN the target of a samconfig environment is resolved THEN its region is the environment's
    assert resolve_target("prod", HERE / "samconfig.toml").region == "us-east-1"
    # AND without a samconfig environment the AWS CLI's region is used
    assert resolve_target(None, None, stack_name="s").region == "eu-west-1"


@pytest.mark.parametrize(
    ("flags", "variables", "message"),
    [
        ({"region": "east"}, {}, "--region: 'east' is not an AWS region such as us-east-1"),
        ({}, {"FORWARDER_OPS_REGION": "Tokyo"}, "FORWARDER_OPS_REGION: 'Tokyo' is not an AWS region such as us-east-1"),
        ({"stack_name": "1stack"}, {}, "--stack-name: '1stack' is not a CloudFormation stack name"),
        (
            {"alias_path": "aliases"},
            {},
            "--alias-path: 'aliases' is not an SSM path such as /email-forwarder/dev/aliases",
        ),
        ({}, {"FORWARDER_OPS_DOMAIN": "not a domain"}, "FORWARDER_OPS_DOMAIN: 'not a domain' is not a domain name"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, flags: dict[str, str], variables: dict[str, str], message: str
) -> None:
    # GIVEN a bad value in a flag or a variable
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    # WHEN the target is resolved
    with pytest.raises(CommandError) as error:
        resolve_target("dev", HERE / "samconfig.toml", **flags)
    # THEN the error is one line naming the setting where it was given
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_a_bad_samconfig_value_names_the_file(tmp_path: Path) -> None:
    # GIVEN a samconfig environment whose DomainName parameter is not a domain
    path = tmp_path / "samconfig.toml"
    path.write_text('[dev.deploy.parameters]\nregion = "us-east-1"\nparameter_overrides = "DomainName=not_a_domain"\n')
    # WHEN the target is resolved THEN the error names the parameter, the environment and the file
    with pytest.raises(CommandError, match=rf"^DomainName in \[dev\] of {path}: 'not_a_domain' is not a domain name"):
        resolve_target("dev", path)
