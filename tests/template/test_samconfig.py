"""samconfig.toml: four environments, each deployable with `sam deploy --config-env <env>`."""

from __future__ import annotations

import re
from typing import Any

from tests.template.cloudformation import ENVIRONMENTS, SAMCONFIG, Environment

EXPECTED = {
    "prod": ("ap-northeast-1", "aws-educate.tw"),
    "preview": ("us-west-1", "preview.aws-educate.tw"),
    "dev": ("us-east-1", "dev.aws-educate.tw"),
    "local-dev": ("us-west-2", "local-dev.aws-educate.tw"),
}


def test_samconfig_environments_are_the_four_of_the_team(environments: dict[str, Environment]) -> None:
    # GIVEN samconfig.toml WHEN its deployable sections are read THEN they are exactly the team's environments
    assert sorted(environments) == sorted(ENVIRONMENTS)


def test_samconfig_environment_region_domain_and_stack(env: Environment) -> None:
    # GIVEN one environment THEN it has the team's region and domain, and a stack of its own
    region, domain = EXPECTED[env.name]
    assert env.region == region
    assert env.parameters["DomainName"] == domain
    assert env.parameters["EnvironmentName"] == env.name
    assert env.stack_name == f"email-forwarder-{env.name}"


def test_samconfig_deploy_settings(env: Environment) -> None:
    # GIVEN one environment THEN deploying it needs no prompt but the change set (prod), uploads to the
    # SAM-managed bucket and may create the IAM roles and expand the transform
    assert set(env.deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert env.deploy["resolve_s3"] is True
    assert env.deploy["confirm_changeset"] is (env.name == "prod")
    assert env.validate == {"lint": True}
    assert env.build, "a [<env>.build.parameters] section"


def test_samconfig_parameters_are_the_template_parameters(env: Environment, template: dict[str, Any]) -> None:
    # GIVEN one environment's parameter_overrides THEN each names a template parameter and passes its constraints
    declared = template["Parameters"]
    for name, value in env.parameters.items():
        assert name in declared, f"{env.name}: {name} is not a template parameter"
        spec = declared[name]
        if "AllowedValues" in spec:
            assert value in spec["AllowedValues"], f"{env.name}: {name}={value}"
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), f"{env.name}: {name}={value!r} breaks its pattern"
        if spec["Type"] == "Number":
            assert spec.get("MinValue", float("-inf")) <= float(value) <= spec.get("MaxValue", float("inf"))
    required = {name for name, spec in declared.items() if "Default" not in spec}
    assert required <= set(env.parameters), f"{env.name} lacks {required - set(env.parameters)}"


def test_samconfig_zone_ids_are_looked_up_not_written_by_hand(env: Environment) -> None:
    # GIVEN zone ids are the account's (`forwarder adopt` / `forwarder init` look them up by name and write them)
    # THEN the checked-in samconfig holds none, and no placeholder that passes for one
    assert "HostedZoneId" not in env.parameters
    assert "ParentHostedZoneId" not in env.parameters
    assert "PLACEHOLDER" not in SAMCONFIG.read_text()


def test_samconfig_prod_leaves_organisation_records_and_concurrency_alone(env: Environment) -> None:
    # GIVEN prod is the apex WHEN deployed THEN it leaves the organisation's DMARC record and apex MX unmanaged,
    # reserves no concurrency the account may not afford, and has no AlarmEmail yet (the template rule stops the
    # deploy until the team adds theirs); the subdomains manage their own records
    if env.name == "prod":
        assert env.parameters["DmarcRecordMode"] == "existing"
        assert env.parameters["MxRecordMode"] == "existing"
        assert env.parameters["ReservedConcurrency"] == "0"
        assert "AlarmEmail" not in env.parameters
    else:
        assert env.parameters.get("DmarcRecordMode", "create") == "create"
        assert env.parameters.get("MxRecordMode", "create") == "create"


def test_samconfig_subject_prefix_marks_non_prod(env: Environment) -> None:
    # GIVEN mail forwarded by a non-prod environment THEN its subject says which one
    assert env.parameters.get("SubjectPrefix", "") == ("" if env.name == "prod" else f"[{env.name}]")


def test_samconfig_template_parameters_documented(template: dict[str, Any]) -> None:
    # GIVEN the template's parameters THEN each says what it is and constrains its values
    for name, spec in template["Parameters"].items():
        assert spec.get("Description"), name
        constrained = {"AllowedPattern", "AllowedValues", "MinValue"} & set(spec)
        assert constrained, f"{name} has no AllowedPattern/AllowedValues/MinValue"
