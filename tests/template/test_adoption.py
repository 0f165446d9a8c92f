"""Issue 9, Done when: with the parameters `forwarder adopt` writes for the team's hand-made account, the transformed
template creates none of the resources that already exist (identity, zones, record sets, the rule set).

The account is moto seeded like the team's (tests/cli/team_account.py); adopt runs on a copy of the repository's
samconfig.toml, and the template is transformed with the environment's parameters as written.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from typing import Any

import pytest
from moto import mock_aws

from forwarder_ops.cli import main
from forwarder_ops.envconfig import Target, parse_overrides
from tests.cli.team_account import APEX, DEV, TEAM_RULE_SET, Account, BelowMoto, seed_team_account
from tests.template.cloudformation import SAMCONFIG, Stack, transform

ENVIRONMENTS = {"prod": APEX, "dev": DEV}


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Account, dict[str, dict[str, Any]]]:
    """Seed the account, run `forwarder adopt --yes` for prod and dev; the account and each environment's config."""
    path = tmp_path_factory.mktemp("adopt") / "samconfig.toml"
    shutil.copy(SAMCONFIG, path)
    answers = BelowMoto()
    original = Target.client
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch.setattr(Target, "client", lambda self, service: answers.install(original(self, service)))
        account = seed_team_account()
        for environment in ENVIRONMENTS:
            argv = ["adopt", "--config-env", environment, "--config-file", str(path), "--yes"]
            code = main([*argv, "--alarm-email", "ops@aws-educate.tw"] if environment == "prod" else argv)
            assert code == 0, f"adopt {environment} left findings that stop a deploy"
    document = tomllib.loads(path.read_text())
    configs = {}
    for environment in ENVIRONMENTS:
        sections = document[environment]
        merged = {**sections.get("global", {}).get("parameters", {}), **sections["deploy"]["parameters"]}
        configs[environment] = merged
    return account, configs


def _stack(template: dict[str, Any], config: dict[str, Any]) -> Stack:
    parameters = parse_overrides(config["parameter_overrides"])
    return Stack(transform(template, parameters, config["region"]), parameters, config["region"], config["stack_name"])


def _record_sets(stack: Stack) -> list[tuple[str, str, str]]:
    """(zone id, name, type) of every record set the stack would create."""
    found = []
    for resource_type in ("AWS::Route53::RecordSet", "AWS::Route53::RecordSetGroup"):
        for logical_id in stack.resources(resource_type):
            properties = stack.properties(logical_id)
            records = properties.get("RecordSets", [properties])
            for record in records:
                zone = str(record.get("HostedZoneId") or properties.get("HostedZoneId"))
                found.append((zone, str(record["Name"]).rstrip(".").lower(), str(record["Type"])))
    return found


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_adoption_creates_none_of_the_existing_resources(
    template: dict[str, Any], adopted: tuple[Account, dict[str, dict[str, Any]]], environment: str
) -> None:
    # GIVEN the parameters adopt wrote for the hand-made account
    account, configs = adopted
    stack = _stack(template, configs[environment])
    domain = ENVIRONMENTS[environment]

    # WHEN CloudFormation would create the stack
    # THEN the template's rules accept the parameters (no placeholder, prod has AlarmEmail)
    assert stack.rule_failures() == []
    # AND it creates no identity, no zone and no record set that exists, and no rule set
    identities = [stack.properties(i)["EmailIdentity"] for i in stack.resources("AWS::SES::EmailIdentity")]
    assert domain not in identities
    zones = [str(stack.properties(i)["Name"]).rstrip(".") for i in stack.resources("AWS::Route53::HostedZone")]
    assert domain not in zones
    existing = {(zone, name, kind) for zone, records in account.records.items() for name, kind in records}
    assert [record for record in _record_sets(stack) if record in existing] == []
    assert stack.resources("AWS::SES::ReceiptRuleSet") == {}
    # AND its rule joins the team's active set under the stack's own name
    rules = [stack.properties(i) for i in stack.resources("AWS::SES::ReceiptRule")]
    joined = [(_rule_set_name(stack, r["RuleSetName"]), r["Rule"]["Name"]) for r in rules]
    assert joined == [(TEAM_RULE_SET, stack.pseudo["AWS::StackName"])]


def _rule_set_name(stack: Stack, value: Any) -> Any:
    """The set a rule names: a parameter's value, or (through a Ref, or its RuleSetName attribute, which the custom
    resource answers with the set's name) the RuleSetName of the resource it names."""
    match = re.fullmatch(r"<Ref:(\w+)>|<(\w+)\.RuleSetName>", str(value))
    return stack.properties(match.group(1) or match.group(2)).get("RuleSetName") if match else value
